"""An alarm whose last action failed, repairs held: gameday trace must name alarm.history and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="trace-alarm-history",
    title="Trace finds an alarm whose last action failed",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES, TRAIL_CHANGES),  # the CIS 4.5 alarm must be able to go to ALARM
)


def test_trace_alarm_history(gameday, stack):
    broken = faults.cloudwatch.fail_alarm_action(stack.alarm_names["4.5"], key=stack.topic_key_arn)
    with gameday.inject(faults.trace.break_hop("alarm.history", broken, stack)):
        gameday.expect_trace("alarm.history")
