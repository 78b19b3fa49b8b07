"""A deleted metric filter, repairs held: gameday trace must name filter.exists and only it."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Scenario

SCENARIO = Scenario(
    id="trace-filter-exists",
    title="Trace finds a deleted metric filter",
    feature="gameday trace",
    mitre=["T1562.001"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN,
    minds=(FAILED_DELIVERIES,),
)


def test_trace_filter_exists(gameday, stack):
    broken = faults.cloudwatch.delete_metric_filter(stack.log_group_name, stack.metric_filter_names["4.5"])
    with gameday.inject(faults.trace.break_hop("filter.exists", broken, stack)):
        gameday.expect_trace("filter.exists")
