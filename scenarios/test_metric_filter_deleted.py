"""Delete the metric filter behind a CIS alarm, blinding it; reported and recreated."""

from harness import faults, probes
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="metric-filter-deleted",
    title="Metric filter behind a monitoring alarm deleted",
    feature="Alarm tampering",
    mitre=["T1562.001"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=CIS_CHAIN,
)


def test_metric_filter_deleted(gameday, stack):
    name = stack.metric_filter_names["4.10"]
    with gameday.inject(faults.cloudwatch.delete_metric_filter(stack.log_group_name, name)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteMetricFilter",
                                              "detail.requestParameters.filterName": name})
        gameday.expect_restored(probes.cloudwatch.metric_filter_exists(stack.log_group_name, name))
