"""The root user loses its MFA; the Config rule's finding must page security."""

from harness import faults
from harness.scenario import CONFIG_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="root-mfa-disabled",
    title="Root user without MFA",
    feature="IAM hygiene",
    mitre=["T1078.004"],
    severity="critical",
    detect_within=900,
    remediate_within=None,  # only the account's owner can put an MFA device on the root user
    requires=CONFIG_CHAIN | {Capability.ROOT_MFA},
)


def test_root_mfa_disabled(gameday, stack):
    rule = stack.config_rule_names["ROOT_ACCOUNT_MFA_ENABLED"]
    # AWS runs the rule once a day; the fault asks for that run at once.
    with gameday.inject(faults.config.evaluated(faults.iam.root_mfa_off(), [rule])):
        gameday.expect_notification(matching={"detail-type": "Config Rules Compliance Change",
                                              "detail.configRuleName": rule,
                                              "detail.newEvaluationResult.complianceType": "NON_COMPLIANT"})
