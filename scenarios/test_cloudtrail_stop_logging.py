"""Stop the trail's logging; security must be paged and logging restarted."""

from harness import faults, probes
from harness.scenario import CLOUDTRAIL_CHAIN, TRAIL_CHANGES, Scenario

SCENARIO = Scenario(
    id="cloudtrail-stop-logging",
    title="CloudTrail logging stopped",
    feature="CloudTrail tampering",
    mitre=["T1562.008"],
    severity="critical",
    detect_within=60,
    remediate_within=120,
    requires=CLOUDTRAIL_CHAIN,
    aftermath=(TRAIL_CHANGES,),
)


def test_cloudtrail_stop_logging(gameday, stack):
    with gameday.inject(faults.cloudtrail.stop_logging(stack.trail_name)):
        gameday.expect_notification(matching={"detail.eventName": "StopLogging",
                                              "detail.requestParameters.name": stack.trail_name})
        gameday.expect_restored(probes.cloudtrail.is_logging(stack.trail_name))
