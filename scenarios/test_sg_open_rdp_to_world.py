"""Open RDP on the app's security group to the whole IPv6 internet; reported and revoked."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Scenario

SCENARIO = Scenario(
    id="sg-open-rdp-to-world",
    title="RDP open to the world",
    feature="Network exposure",
    mitre=["T1562.007"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN,
)


def test_sg_open_rdp_to_world(gameday, stack):
    group = stack.security_group_id
    # ::/0, where the SSH scenario uses 0.0.0.0/0: IPv6 exposure must be caught as well.
    with gameday.inject(faults.network.open_ingress(group, 3389, "::/0")):
        gameday.expect_notification(matching={"detail.eventName": "AuthorizeSecurityGroupIngress",
                                              "detail.requestParameters.groupId": group})
        gameday.expect_restored(probes.network.no_world_ingress(group, 3389))
