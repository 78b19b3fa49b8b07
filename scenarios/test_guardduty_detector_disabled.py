"""Disable the GuardDuty detector, so it analyses nothing; reported and enabled again."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="guardduty-detector-disabled",
    title="GuardDuty detector disabled",
    feature="GuardDuty tampering",
    mitre=["T1562.001"],
    severity="critical",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN | {Capability.GUARDDUTY},
)


def test_guardduty_detector_disabled(gameday, stack):
    with gameday.inject(faults.guardduty.disable_detector()):
        gameday.expect_notification(matching={"detail.eventName": "UpdateDetector",
                                              "detail.requestParameters.enable": False})
        gameday.expect_restored(probes.guardduty.enabled())
