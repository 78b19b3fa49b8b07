"""Make a function's log group expire its events after one day; security must be told."""

from harness import faults
from harness.scenario import APPLOG_CHAIN, Scenario

SCENARIO = Scenario(
    id="applog-log-retention-cut",
    title="Application log retention cut to 1 day",
    feature="Application logging",
    mitre=["T1070"],
    severity="medium",
    detect_within=60,
    remediate_within=None,
    requires=APPLOG_CHAIN,
)


def test_applog_log_retention_cut(gameday, stack):
    group = stack.app_log_groups[-1]  # a Lambda function's, the ECS application's listed first
    with gameday.inject(faults.applogs.cut_log_retention(group, days=1)):
        gameday.expect_notification(matching={"detail.eventName": "PutRetentionPolicy",
                                              "detail.requestParameters.logGroupName": group,
                                              "detail.requestParameters.retentionInDays": 1})
