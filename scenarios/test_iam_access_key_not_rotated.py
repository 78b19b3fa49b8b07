"""A user's access key outlives the rotation limit; the Config rule's finding must page security."""

from harness import faults
from harness.scenario import CONFIG_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="iam-access-key-not-rotated",
    title="Access key not rotated",
    feature="IAM hygiene",
    mitre=["T1078.004", "T1098"],
    severity="medium",
    detect_within=900,
    remediate_within=None,  # deleting a key breaks whoever uses it: people rotate it
    requires=CONFIG_CHAIN | {Capability.ACCOUNT_FACTS},
)


def test_iam_access_key_not_rotated(gameday, stack):
    rule = stack.config_rule_names["ACCESS_KEYS_ROTATED"]
    # AWS runs the rule once a day; the fault asks for that run at once. Other users' keys are not this fault's.
    stale = faults.config.evaluated(faults.iam.stale_access_key(days=120, max_age_days=90), [rule],
                                    compliant_before=False)
    with gameday.inject(stale):
        gameday.expect_notification(matching={"detail-type": "Config Rules Compliance Change",
                                              "detail.configRuleName": rule,
                                              "detail.resourceType": "AWS::IAM::User",
                                              "detail.newEvaluationResult.complianceType": "NON_COMPLIANT"})
