"""Open SSH on the app's security group to the whole internet; reported and revoked."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Scenario

SCENARIO = Scenario(
    id="sg-open-ssh-to-world",
    title="SSH open to the world",
    feature="Network exposure",
    mitre=["T1562.007"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN,
)


def test_sg_open_ssh_to_world(gameday, stack):
    group = stack.security_group_id
    with gameday.inject(faults.network.open_ingress(group, 22, "0.0.0.0/0")):
        gameday.expect_notification(matching={"detail.eventName": "AuthorizeSecurityGroupIngress",
                                              "detail.requestParameters.groupId": group})
        gameday.expect_restored(probes.network.no_world_ingress(group, 22))
