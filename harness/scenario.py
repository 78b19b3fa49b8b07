"""Scenario metadata, and the catalog built from the scenario files."""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from enum import Enum

SEVERITIES = ("critical", "high", "medium", "low")


class Capability(str, Enum):
    """Machinery a scenario depends on; a backend without it skips the scenario with the reason."""

    CLOUDTRAIL_EVENTS = "CloudTrail records API calls and delivers them to EventBridge"
    EVENTBRIDGE_TARGETS = "EventBridge delivers to SNS topics and Lambda functions"
    LAMBDA_EXECUTION = "Lambda functions execute"
    SNS_TO_SQS = "SNS delivers to SQS subscriptions"
    METRIC_FILTERS = "CloudWatch Logs metric filters emit metrics"
    ALARMS = "CloudWatch alarms are evaluated and notify SNS"
    SNS_SEMANTICS = "SNS enforces topic policies and KMS, counts failed deliveries and suspends e-mail endpoints"
    MAILBOX = "the harness can read what SNS sends to e-mail endpoints (to confirm a subscription)"
    CONFIG_RULES = "AWS Config evaluates managed rules and runs remediations"
    GUARDDUTY = "GuardDuty produces findings"
    ACCOUNT_FACTS = "the backend can set account facts no API can (an access key's age)"
    ROOT_MFA = "an emulated root user (Gameday will not touch the root user's MFA on a real account)"
    CLOUDFRONT = "CloudFront distributions with standard logging"
    AUTOSCALING = "alarm actions run Auto Scaling policies, and a CPU stress command drives the instances' metrics"
    INSPECTOR_ON_DEMAND = "the backend can make Inspector report a vulnerable package on a chosen instance"
    PATCH_COMPLIANCE = "SSM patch compliance changes reach EventBridge"


# What the CloudTrail-tampering scenarios need from a backend.
CLOUDTRAIL_CHAIN = frozenset({Capability.CLOUDTRAIL_EVENTS, Capability.EVENTBRIDGE_TARGETS,
                              Capability.LAMBDA_EXECUTION, Capability.SNS_TO_SQS})
# A CIS control tripped by a real call: the record, its metric filter, its alarm, the page.
CIS_CHAIN = frozenset({Capability.CLOUDTRAIL_EVENTS, Capability.METRIC_FILTERS, Capability.ALARMS,
                       Capability.SNS_TO_SQS, Capability.EVENTBRIDGE_TARGETS, Capability.LAMBDA_EXECUTION})
# The notification chain: tampering with SNS reported through the fallback topic, and the guard restoring it.
SNS_CHAIN = frozenset({*CIS_CHAIN, Capability.SNS_SEMANTICS})
# The tracer's acceptance: it reads the chain through public APIs and holds the stack's functions while a hop is broken.
TRACE_CHAIN = frozenset({Capability.SNS_SEMANTICS, Capability.LAMBDA_EXECUTION})
# A CIS control tripped by writing a record to the log group: no CloudTrail machinery needed.
CIS_RECORD_CHAIN = frozenset({Capability.METRIC_FILTERS, Capability.ALARMS, Capability.SNS_TO_SQS})
# Tampering with Config, flow logs, GuardDuty or the network: the record, the rule, the page, the repairing function.
INFRA_CHAIN = CLOUDTRAIL_CHAIN
# A Config rule's compliance change, routed by EventBridge to the security topic.
CONFIG_CHAIN = frozenset({Capability.CONFIG_RULES, Capability.EVENTBRIDGE_TARGETS, Capability.SNS_TO_SQS})
# A GuardDuty finding, routed by EventBridge to the security topic.
GUARDDUTY_CHAIN = frozenset({Capability.GUARDDUTY, Capability.EVENTBRIDGE_TARGETS, Capability.SNS_TO_SQS})
# A CPU spike on the workload: the alarm, its scale-out policy, the classifier, the page or the ops report.
WORKLOAD_CHAIN = frozenset({Capability.AUTOSCALING, Capability.ALARMS, Capability.EVENTBRIDGE_TARGETS,
                            Capability.LAMBDA_EXECUTION, Capability.SNS_TO_SQS})
# Application logging switched off or shortened: the record, the rule, the page (detection only).
APPLOG_CHAIN = frozenset({Capability.CLOUDTRAIL_EVENTS, Capability.EVENTBRIDGE_TARGETS, Capability.SNS_TO_SQS})
# Aftermaths: what a correct run leaves behind for a while, and a later scenario's precondition may wait out.
FAILED_DELIVERIES = "failed deliveries keep the stack's delivery alarm in ALARM for its evaluation range (15 minutes)"
TRAIL_CHANGES = "a trail configuration change keeps the CIS 4.5 alarm in ALARM for its evaluation range (15 minutes)"
AFTERMATHS = (FAILED_DELIVERIES, TRAIL_CHANGES)
# Scenarios to run after one that leaves an aftermath before one that minds it. An alarm holds a lone breaching
# datapoint for its whole evaluation range (three 5-minute periods: 15 s at 60x); a calm scenario takes ~0.3 s.
QUIET_AFTER = 40
_MITRE = re.compile(r"^T\d{4}(\.\d{3})?$")


@dataclass(frozen=True)
class Scenario:
    """What a scenario breaks, how bad that is, and how fast the stack must notice and repair it."""

    id: str
    title: str
    mitre: tuple[str, ...]
    severity: str
    detect_within: float  # seconds of AWS time
    remediate_within: float | None  # seconds of AWS time; None for a detection-only control (e.g. a CIS alarm)
    epic: str = "Security monitoring"
    feature: str = ""
    requires: frozenset[Capability] = field(default_factory=frozenset)
    prevents: bool = False  # a policy must also refuse the fault to an ordinary principal
    aftermath: tuple[str, ...] = ()  # what a correct run still leaves behind for a while (AFTERMATHS)
    minds: tuple[str, ...] = ()  # the aftermaths its precondition waits out

    def __post_init__(self) -> None:
        object.__setattr__(self, "mitre", tuple(self.mitre))
        object.__setattr__(self, "requires", frozenset(self.requires))
        object.__setattr__(self, "aftermath", tuple(self.aftermath))
        object.__setattr__(self, "minds", tuple(self.minds))
        unknown = [a for a in (*self.aftermath, *self.minds) if a not in AFTERMATHS]
        if unknown:
            raise ValueError(f"scenario {self.id}: {unknown[0]!r} is not one of harness.scenario.AFTERMATHS")
        if self.severity not in SEVERITIES:
            raise ValueError(f"scenario {self.id}: severity must be one of {SEVERITIES}")
        bad = [t for t in self.mitre if not _MITRE.match(t)]
        if bad:
            raise ValueError(f"scenario {self.id}: {bad[0]} is not a MITRE ATT&CK technique id")
        if self.detect_within <= 0 or self.remediate_within is not None and self.remediate_within <= 0:
            raise ValueError(f"scenario {self.id}: SLAs must be positive seconds")

    @property
    def negative_controls(self) -> tuple[str, ...]:
        """The sabotage modes this scenario must fail under: remediation and prevention only if it expects them."""
        modes = ["detection"]
        if self.remediate_within is not None:
            modes.append("remediation")
        if self.prevents:
            modes.append("prevention")
        return tuple(modes)

    @property
    def story(self) -> str:
        return self.title

    @property
    def module_name(self) -> str:
        return "test_" + self.id.replace("-", "_")


def load_catalog(directory: Path) -> list[tuple[Scenario, Path, str]]:
    """Every scenario file's SCENARIO with its path and docstring, sorted by id (imports the files)."""
    found = []
    for path in sorted(Path(directory).glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"gameday_catalog.{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        scenario = getattr(module, "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found.append((scenario, path, (module.__doc__ or "").strip()))
    return sorted(found, key=lambda item: item[0].id)


def run_order(scenarios: list[Scenario]) -> list[Scenario]:
    """Catalog order, rearranged so that scenarios seldom wait out another's aftermath.

    Each step runs, of those whose minded aftermaths have cleared (QUIET_AFTER scenarios ago) and that would not leave
    again what another still waits out, first the ones that mind something (while it is quiet), then the ones whose
    own aftermath the fewest remaining scenarios mind.
    Only the order changes: a scenario run too soon still waits in its precondition.
    """
    pending = list(scenarios)
    since: dict[str, int] = {}  # aftermath -> scenarios run since one left it
    order = []
    while pending:
        fresh = {a for a, n in since.items() if n < QUIET_AFTER}

        def key(s: Scenario) -> tuple:
            # One that would leave again what another is waiting out waits too: it would restart that wait.
            waited_on = {a for other in pending if other is not s for a in other.minds if a in fresh}
            waits = bool(fresh & set(s.minds)) or bool(waited_on & set(s.aftermath))
            blocks = sum(1 for other in pending if other is not s and set(other.minds) & set(s.aftermath))
            return waits, not s.minds, blocks, pending.index(s)

        chosen = min(pending, key=key)
        pending.remove(chosen)
        order.append(chosen)
        since = {a: n + 1 for a, n in since.items()} | {a: 0 for a in chosen.aftermath}
    return order


def markdown_table(catalog: list[tuple[Scenario, Path, str]]) -> str:
    rows = ["| id | what it breaks | MITRE | severity | detect within | remediate within |",
            "|---|---|---|---|---|---|"]
    for s, _, doc in catalog:
        rows.append(f"| `{s.id}` | {doc.splitlines()[0] if doc else s.title} | {', '.join(s.mitre)} | "
                    f"{s.severity} | {s.detect_within:g} s | {_seconds(s.remediate_within)} |")
    return "\n".join(rows)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"
