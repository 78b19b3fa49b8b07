"""pytest plugin: options, markers and fixtures that wire the harness into pytest."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness import config as gdconfig, reporting
from harness.errors import GamedayError, verdict_of
from harness.runner import GameDay
from harness.scenario import Scenario, run_order
from harness.session import start_session

_OPTIONS = {
    "backend": "where scenarios run: embedded (default), localstack or aws",
    "endpoint": "LocalStack URL (localstack backend)",
    "region": "AWS region (default us-east-1)",
    "profile": "AWS profile for the aws backend (default: boto3's credential chain)",
    "allowed_accounts": "comma-separated account ids the aws backend may touch",
    "time_scale": "divide SLAs by this factor (default 60 embedded, 1 aws)",
    "sabotage": "negative control: deploy the stack without its 'detection', 'remediation' or 'prevention'",
    "latency_profile": "emulator latency: instant (as soon as possible) or aws (AWS-like delays, scaled)",
    "stack_prefix": "name prefix of the reference stack's resources (default gameday)",
    "stack_file": "JSON description of your own stack (as printed by `gameday up`) instead of deploying ours",
    "journal": "fault journal path (default ~/.local/state/gameday/journal.jsonl)",
    "reports_dir": "where summaries go (default reports)",
}
_VERDICTS = pytest.StashKey[dict]()
_SETTINGS = pytest.StashKey[gdconfig.Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gameday", "Gameday: verify AWS security monitoring")
    for name, help_text in _OPTIONS.items():
        group.addoption(f"--gameday-{name.replace('_', '-')}", dest=f"gameday_{name}", default=None, help=help_text)
        parser.addini(f"gameday_{name}", help_text, default=None)
    parser.addini("gameday_scenarios", "folder holding the scenario catalog", default="scenarios")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gameday(id): a Gameday scenario test (set from the module's SCENARIO)")
    try:
        settings = gdconfig.resolve(
            {n: config.getoption(f"gameday_{n}") for n in _OPTIONS},
            ini={n: config.getini(f"gameday_{n}") for n in _OPTIONS})
    except GamedayError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_SETTINGS] = settings
    config.stash[_VERDICTS] = {}
    if _runs_scenarios(config) and getattr(config.option, "allure_report_dir", "unset") is None:
        # Scenario runs always leave evidence for auditors; unit-test runs do not pollute it.
        config.option.allure_report_dir = str(Path(settings.reports_dir) / "allure-results")
        config.option.clean_alluredir = not hasattr(config, "workerinput")
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # A CI job killed with SIGTERM unwinds like Ctrl-C, so every fault is reverted.
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _runs_scenarios(config: pytest.Config) -> bool:
    folder = (Path(config.rootpath) / config.getini("gameday_scenarios")).resolve()
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slots, scenarios, groups = [], {}, {}
    for i, item in enumerate(items):
        scenario = _scenario_of(item)
        if scenario is not None:
            item.add_marker(pytest.mark.gameday(scenario.id))
            slots.append(i)
            scenarios[scenario.id] = scenario
            groups.setdefault(scenario.id, []).append(item)
    # Scenarios run in run_order's arrangement (aftermaths spaced out); other tests keep their places.
    ordered = [item for scenario in run_order(list(scenarios.values())) for item in groups[scenario.id]]
    for i, item in zip(slots, ordered):
        items[i] = item


def _scenario_of(item: pytest.Item) -> Scenario | None:
    scenario = getattr(getattr(item, "module", None), "SCENARIO", None)
    return scenario if isinstance(scenario, Scenario) else None


@pytest.fixture(scope="session")
def gameday_session(pytestconfig: pytest.Config) -> Iterator[Any]:
    """The started backend with the stack deployed (once per session, per xdist worker)."""
    try:
        session = start_session(pytestconfig.stash[_SETTINGS])
    except GamedayError as exc:
        pytest.exit(f"gameday: {exc}", returncode=2)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="session")
def stack(gameday_session: Any) -> Any:
    """Names and ARNs of the stack under test."""
    return gameday_session.stack


@pytest.fixture
def gameday(request: pytest.FixtureRequest, gameday_session: Any) -> Iterator[GameDay]:
    """The scenario's run: inject faults, expect detection and remediation within its SLAs."""
    scenario = getattr(request.module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise pytest.UsageError(f"{request.module.__name__} uses the gameday fixture but defines no SCENARIO")
    missing = gameday_session.backend.missing(scenario.requires)
    if missing:
        pytest.skip(f"backend {gameday_session.backend.name} lacks: {'; '.join(c.value for c in missing)}")
    reporting.label_scenario(scenario, backend=gameday_session.backend.name,
                             latency_profile=gameday_session.backend.latency_profile)
    reporting.parameter("sabotage", gameday_session.settings.sabotage or "none")
    run = GameDay(backend=gameday_session.backend, stack=gameday_session.stack, scenario=scenario,
                  journal=gameday_session.journal, run_id=gameday_session.run_id)
    request.node.stash[_RUN] = run
    yield run


_RUN = pytest.StashKey[GameDay]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    run = item.stash.get(_RUN, None)
    if run is not None and report.when == "call" or run is not None and report.failed:
        verdicts = item.config.stash[_VERDICTS]
        if report.skipped:
            verdict = "skipped"
        else:
            verdict = verdict_of(call.excinfo.value if call.excinfo else None)
        if verdicts.get(item.nodeid, {}).get("verdict") in (None, "passed"):
            verdicts[item.nodeid] = {"scenario": run.scenario.id, "verdict": verdict,
                                     "reason": str(call.excinfo.value).splitlines()[0] if call.excinfo else "",
                                     **run.report()}
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        # An xdist worker hands its verdicts to the controller, which reports them all.
        session.config.workeroutput["gameday_verdicts"] = json.dumps(session.config.stash.get(_VERDICTS, {}))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    verdicts = json.loads(getattr(node, "workeroutput", {}).get("gameday_verdicts", "{}"))
    node.config.stash[_VERDICTS].update(verdicts)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    verdicts = config.stash.get(_VERDICTS, {})
    if not verdicts or hasattr(config, "workerinput"):
        return
    counts = {v: sum(1 for r in verdicts.values() if r["verdict"] == v) for v in ("passed", "failed", "broken")}
    terminalreporter.section("gameday verdicts")
    for result in verdicts.values():
        sla = result["sla"]
        terminalreporter.write_line(
            f"{result['verdict'].upper():7} {result['scenario']:32} TTD {_fmt(sla['ttd_aws_s'])} AWS-s "
            f"({_fmt(sla['ttd_wall_s'])} wall)  TTR {_fmt(sla['ttr_aws_s'])} AWS-s ({_fmt(sla['ttr_wall_s'])} wall)"
            + (f"  {result['reason']}" if result["verdict"] != "passed" else ""))
    terminalreporter.write_line(
        f"gameday: {counts['passed']} passed, {counts['failed']} failed, {counts['broken']} broken")
    settings = config.stash[_SETTINGS]
    out = Path(settings.reports_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"counts": counts, "results": list(verdicts.values())}, indent=2))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"

