"""Mute a CIS alarm's actions; it would still change state but tell nobody: reported and re-enabled."""

from harness import faults, probes
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="alarm-actions-disabled",
    title="Monitoring alarm actions disabled",
    feature="Alarm tampering",
    mitre=["T1562.001"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=CIS_CHAIN,
)


def test_alarm_actions_disabled(gameday, stack):
    alarm = stack.alarm_names["4.10"]
    with gameday.inject(faults.cloudwatch.disable_alarm_actions(alarm)):
        gameday.expect_notification(matching={"detail.eventName": "DisableAlarmActions",
                                              "detail.requestParameters.alarmNames": alarm})
        gameday.expect_restored(probes.cloudwatch.alarm_armed(alarm, threshold=1.0))
