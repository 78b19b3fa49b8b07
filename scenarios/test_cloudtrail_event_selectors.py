"""Blind the trail with event selectors that exclude management events; it must be noticed and undone."""

from harness import faults, probes
from harness.scenario import CLOUDTRAIL_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="cloudtrail-event-selectors",
    title="CloudTrail management events excluded",
    feature="CloudTrail tampering",
    mitre=["T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=CLOUDTRAIL_CHAIN,
    aftermath=(TRAIL_CHANGES,),
)


def test_cloudtrail_event_selectors(gameday, stack):
    with gameday.inject(faults.cloudtrail.exclude_management_events(stack.trail_name)):
        gameday.expect_notification(matching={"detail.eventName": "PutEventSelectors",
                                              "detail.requestParameters.trailName": stack.trail_name})
        gameday.expect_restored(probes.cloudtrail.logs_management_events(stack.trail_name))
