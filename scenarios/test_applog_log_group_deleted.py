"""Delete the ECS application's log group, and every event in it; security must be told."""

from harness import faults
from harness.scenario import APPLOG_CHAIN, Scenario

SCENARIO = Scenario(
    id="applog-log-group-deleted",
    title="Application log group deleted",
    feature="Application logging",
    mitre=["T1070", "T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=None,
    requires=APPLOG_CHAIN,
)


def test_applog_log_group_deleted(gameday, stack):
    group = stack.app_log_groups[0]  # the ECS application's
    with gameday.inject(faults.applogs.delete_log_group(group)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteLogGroup",
                                              "detail.requestParameters.logGroupName": group})
