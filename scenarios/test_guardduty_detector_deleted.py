"""Delete the GuardDuty detector and its findings; reported and a detector enabled again."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="guardduty-detector-deleted",
    title="GuardDuty detector deleted",
    feature="GuardDuty tampering",
    mitre=["T1562.001"],
    severity="critical",
    detect_within=60,
    remediate_within=180,
    requires=INFRA_CHAIN | {Capability.GUARDDUTY},
)


def test_guardduty_detector_deleted(gameday, stack):
    with gameday.inject(faults.guardduty.delete_detector()):
        gameday.expect_notification(matching={"detail.eventName": "DeleteDetector"})
        gameday.expect_restored(probes.guardduty.enabled())
