"""A disabled tampering rule, repairs held: gameday trace must name rules.enabled and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-rules-enabled",
    title="Trace finds a disabled tampering rule",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_rules_enabled(gameday, stack):
    broken = faults.events.disable_rule(stack.sns_rule_name)
    with gameday.inject(faults.trace.break_hop("rules.enabled", broken, stack)):
        gameday.expect_trace("rules.enabled")
