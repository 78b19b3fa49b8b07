"""An alarm with its actions disabled, repairs held: gameday trace must name alarm.actions_enabled and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-alarm-actions-enabled",
    title="Trace finds an alarm with its actions disabled",
    feature="gameday trace",
    mitre=["T1562.001"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_alarm_actions_enabled(gameday, stack):
    broken = faults.cloudwatch.disable_alarm_actions(stack.alarm_names["4.5"])
    with gameday.inject(faults.trace.break_hop("alarm.actions_enabled", broken, stack)):
        gameday.expect_trace("alarm.actions_enabled")
