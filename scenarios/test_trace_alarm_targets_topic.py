"""An alarm notifying a missing topic, repairs held: gameday trace must name alarm.targets_topic and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-alarm-targets-topic",
    title="Trace finds an alarm notifying a topic that does not exist",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_alarm_targets_topic(gameday, stack):
    broken = faults.cloudwatch.redirect_alarm_actions(stack.alarm_names["4.5"], to=f"{stack.topic_arn}-gone")
    with gameday.inject(faults.trace.break_hop("alarm.targets_topic", broken, stack)):
        gameday.expect_trace("alarm.targets_topic")
