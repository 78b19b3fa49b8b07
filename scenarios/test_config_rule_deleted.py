"""Delete the Config rule that checks the multi-region trail; reported and recreated from the desired state."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Scenario

SCENARIO = Scenario(
    id="config-rule-deleted",
    title="AWS Config rule deleted",
    feature="AWS Config tampering",
    mitre=["T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=180,  # recreated from the desired state, like a deleted trail or detector
    requires=INFRA_CHAIN,
)


def test_config_rule_deleted(gameday, stack):
    rule = stack.config_rule_names["MULTI_REGION_CLOUD_TRAIL_ENABLED"]
    with gameday.inject(faults.config.delete_rule(rule)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteConfigRule",
                                              "detail.requestParameters.configRuleName": rule})
        gameday.expect_restored(probes.config.rule_exists(rule, "MULTI_REGION_CLOUD_TRAIL_ENABLED"))
