"""Raise a CIS alarm's threshold so it can never fire; the change must be reported and undone."""

from harness import faults, probes
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="alarm-threshold-raised",
    title="Monitoring alarm altered so it can never fire",
    feature="Alarm tampering",
    mitre=["T1562.001"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=CIS_CHAIN,
)


def test_alarm_threshold_raised(gameday, stack):
    alarm = stack.alarm_names["4.4"]
    with gameday.inject(faults.cloudwatch.raise_alarm_threshold(alarm)):
        gameday.expect_notification(matching={"detail.eventName": "PutMetricAlarm",
                                              "detail.requestParameters.alarmName": alarm})
        gameday.expect_restored(probes.cloudwatch.alarm_armed(alarm, threshold=1.0))
