"""Route the monitored subnet's traffic to a new internet gateway; reported and the route removed."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Scenario

SCENARIO = Scenario(
    id="route-table-changed",
    title="Route to an internet gateway added",
    feature="Network exposure",
    mitre=["T1562.007"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN,
)


def test_route_table_changed(gameday, stack):
    table = stack.route_table_id
    with gameday.inject(faults.network.route_to_internet(table, stack.vpc_id)):
        gameday.expect_notification(matching={"detail.requestParameters.routeTableId": table,
                                              "detail.requestParameters.destinationCidrBlock": "0.0.0.0/0"})
        gameday.expect_restored(probes.network.no_internet_route(table))
