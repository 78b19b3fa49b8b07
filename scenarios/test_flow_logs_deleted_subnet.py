"""Delete the flow log of the monitored subnet, leaving its traffic unrecorded; reported and recreated."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Scenario

SCENARIO = Scenario(
    id="flow-logs-deleted-subnet",
    title="Flow logs deleted: the monitored subnet",
    feature="VPC flow logs",
    mitre=["T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN,
)


def test_flow_logs_deleted_subnet(gameday, stack):
    with gameday.inject(faults.flowlogs.delete_flow_logs(stack.subnet_id)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteFlowLogs"})
        gameday.expect_restored(probes.flowlogs.enabled(stack.subnet_id))
