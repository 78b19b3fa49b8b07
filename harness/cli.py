"""The `gameday` command: up (serve the emulator with the stack), cleanup (undo a killed run), list, trace."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from harness import config
from harness.errors import GamedayError, HarnessBroken


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except GamedayError as exc:
        print(f"gameday: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gameday", description="Verify that AWS security monitoring works.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the embedded endpoint, deploy the reference stack, serve until Ctrl-C")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument("--region", default=None)
    up.add_argument("--sabotage", default=None, choices=config.SABOTAGE)
    up.add_argument("--stack-prefix", default=None)
    up.set_defaults(func=_up)

    cleanup = sub.add_parser("cleanup", help="revert every fault a killed run left applied")
    cleanup.add_argument("--journal", default=None, help="journal path (default: GAMEDAY_JOURNAL or ~/.local/state)")
    cleanup.add_argument("--dry-run", action="store_true", help="list what would be reverted, change nothing")
    cleanup.set_defaults(func=_cleanup)

    listing = sub.add_parser("list", help="the scenario catalog")
    listing.add_argument("--markdown", action="store_true", help="as the README's table")
    listing.add_argument("--scenarios", default="scenarios", help="catalog folder (default scenarios)")
    listing.set_defaults(func=_list)

    trace = sub.add_parser(
        "trace", help="walk the alarm notification chain and name the first broken hop",
        description="Check each hop from the trail to the sink for one CIS control's alarm, as an engineer would "
                    "when no notification arrived, and name the first broken hop with evidence and a fix.",
        epilog=TRACE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    trace.add_argument("--backend", default=None, help="embedded (default), localstack or aws")
    trace.add_argument("--endpoint", default=None,
                       help="a running `gameday up` endpoint (embedded) or LocalStack URL; embedded without it "
                            "starts its own endpoint with the reference stack")
    trace.add_argument("--stack-file", default=None, help="JSON outputs of your stack (default: the reference stack)")
    trace.add_argument("--control", default="4.5", help="CIS monitoring control whose alarm to trace (default 4.5)")
    trace.add_argument("--canary", action="store_true",
                       help="also send one synthetic tampering record through the chain and wait for it in the sink")
    trace.add_argument("--canary-timeout", default=None, metavar="S",
                       help="wall seconds to wait for the canary (default: the alarm's evaluation range, scaled)")
    trace.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    trace.set_defaults(func=_trace)
    return parser


TRACE_EXIT_CODES = """exit codes:
  0  every hop is ok (and, with --canary, the canary arrived)
  1  a hop is broken, or the canary missed
  2  bad input (nothing changed), or the harness could not trace (a hop is unknown)"""


def _up(args: argparse.Namespace) -> int:
    settings = config.resolve({"backend": "embedded", "region": args.region, "sabotage": args.sabotage,
                               "stack_prefix": args.stack_prefix})
    if args.port < 0 or args.port > 65535:
        raise config.ConfigError(f"port {args.port} is out of range; pick 0-65535 (0: a free port)")
    session = _start_embedded(settings, args.port)
    backend = session.backend
    print(json.dumps({"endpoint": backend.endpoint_url, "region": backend.region, "account": backend.account_id,
                      "stack": json.loads(session.stack.to_json())}), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        session.close()
    return 0


def _start_embedded(settings: config.Settings, port: int) -> Any:
    from harness.session import start_session

    try:
        return start_session(settings, port=port)
    except OSError as exc:
        raise config.ConfigError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror}); choose another --port") from None


def _cleanup(args: argparse.Namespace) -> int:
    from harness.cleanup import cleanup
    from harness.journal import Journal, default_journal_path

    journal = Journal(Path(args.journal) if args.journal else default_journal_path())
    results = cleanup(journal, dry_run=args.dry_run)
    for line in results.lines:
        print(line)
    print(f"gameday cleanup: {results.reverted} reverted, {results.abandoned} abandoned, "
          f"{results.failed} failed{' (dry run)' if args.dry_run else ''}")
    return 1 if results.failed else 0


def _list(args: argparse.Namespace) -> int:
    from harness.scenario import load_catalog, markdown_table

    folder = Path(args.scenarios)
    if not folder.is_dir():
        raise config.ConfigError(f"scenario folder {folder} does not exist; run from the repo root or pass --scenarios")
    catalog = load_catalog(folder)
    if args.markdown:
        print(markdown_table(catalog))
    else:
        for scenario, _, doc in catalog:
            print(f"{scenario.id:36} {scenario.severity:9} {', '.join(scenario.mitre):12} "
                  f"{doc.splitlines()[0] if doc else scenario.title}")
    return 0


def _trace(args: argparse.Namespace) -> int:
    import gc

    from harness import trace

    settings = config.resolve({"backend": args.backend, "endpoint": args.endpoint, "stack_file": args.stack_file})
    if settings.endpoint and settings.backend == "aws":
        raise config.ConfigError("--endpoint names an embedded or LocalStack endpoint; drop it for the aws backend")
    trace.check_control(args.control)
    timeout = _canary_timeout(args.canary_timeout)
    try:
        with trace.open_target(settings) as (aws, stack):
            report = trace.trace(aws, stack, control=args.control, canary=args.canary, canary_timeout=timeout)
    except HarnessBroken as exc:  # e.g. the reference stack would not deploy: nothing was traced
        print(f"gameday: could not trace: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else trace.render(report))
    # The process ends here: spare its shutdown the full collections over the emulator's heap (about 3 s).
    gc.freeze()
    return report.exit_code


def _canary_timeout(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise config.ConfigError(f"--canary-timeout {text!r} is not a positive number of wall seconds; "
                                 "pass e.g. --canary-timeout 30")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
