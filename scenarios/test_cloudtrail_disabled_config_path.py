"""Stop the trail with the EventBridge path held: the Config rule must report it and its remediation restart it."""

from harness import faults, probes
from harness.scenario import CONFIG_CHAIN, TRAIL_CHANGES, Capability, Scenario

SCENARIO = Scenario(
    id="cloudtrail-disabled-config-path",
    title="CloudTrail logging stopped, caught by AWS Config",
    feature="CloudTrail tampering",
    mitre=["T1562.008"],
    severity="critical",
    detect_within=900,
    # The fault asks for the evaluation at once (not the rule's One_Hour run): the evaluation's 900 s,
    # then the remediation's retry window (5 attempts, 60 s apart).
    remediate_within=900 + 300,
    requires=CONFIG_CHAIN | {Capability.LAMBDA_EXECUTION},
    aftermath=(TRAIL_CHANGES,),
)


def test_cloudtrail_disabled_config_path(gameday, stack):
    rule = stack.config_rule_names["CLOUD_TRAIL_ENABLED"]
    # AWS runs the periodic rule within its One_Hour frequency; the fault asks for that run at once.
    stopped = faults.config.evaluated(faults.cloudtrail.stop_logging(stack.trail_name), [rule],
                                      hold=[stack.function_name])
    with gameday.inject(stopped):
        gameday.expect_notification(matching={"detail-type": "Config Rules Compliance Change",
                                              "detail.configRuleName": rule,
                                              "detail.newEvaluationResult.complianceType": "NON_COMPLIANT"})
        gameday.expect_restored(probes.all_of(f"trail {stack.trail_name} restarted by {stack.trail_logging_document}",
                                              probes.cloudtrail.is_logging(stack.trail_name),
                                              probes.config.remediated(rule)))
