"""Delete the trail; security must be paged and the trail recreated, logging, from the desired state."""

from harness import faults, probes
from harness.scenario import CLOUDTRAIL_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="cloudtrail-delete-trail",
    title="CloudTrail trail deleted",
    feature="CloudTrail tampering",
    mitre=["T1562.008"],
    severity="critical",
    detect_within=60,
    remediate_within=180,
    requires=CLOUDTRAIL_CHAIN,
    aftermath=(TRAIL_CHANGES,),
)


def test_cloudtrail_delete_trail(gameday, stack):
    with gameday.inject(faults.cloudtrail.delete_trail(stack.trail_name)):
        gameday.expect_notification(matching={"detail.eventName": "DeleteTrail",
                                              "detail.requestParameters.name": stack.trail_name})
        gameday.expect_restored(probes.cloudtrail.healthy(stack.trail_name, stack.bucket_name))
