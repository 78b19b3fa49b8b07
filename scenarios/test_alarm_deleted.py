"""Delete a CIS alarm; the deletion must be reported and the alarm recreated from the desired state."""

from harness import faults, probes
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="alarm-deleted",
    title="Monitoring alarm deleted",
    feature="Alarm tampering",
    mitre=["T1562.001"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=CIS_CHAIN,
)


def test_alarm_deleted(gameday, stack):
    alarm = stack.alarm_names["4.5"]
    with gameday.inject(faults.cloudwatch.delete_alarm(alarm)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteAlarms",
                                              "detail.requestParameters.alarmNames": alarm})
        gameday.expect_restored(probes.cloudwatch.alarm_armed(alarm, threshold=1.0))
