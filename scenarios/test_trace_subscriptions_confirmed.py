"""An e-mail suspended by an alert storm, repairs held: gameday trace must name subscriptions.confirmed first."""

from harness import faults
from harness.scenario import FAILED_DELIVERIES, TRACE_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="trace-subscriptions-confirmed",
    title="Trace finds an e-mail subscription suspended by an alert storm",
    feature="gameday trace",
    mitre=["T1562.006"],
    severity="medium",
    detect_within=300,
    remediate_within=None,
    requires=TRACE_CHAIN | {Capability.MAILBOX},
    aftermath=(FAILED_DELIVERIES,),
)
# The message that trips the suspension fails: the delivery alarm may name subscriptions.delivery too (so an
# earlier scenario's failed deliveries need not age out first).
CONSEQUENCES = ("subscriptions.delivery",)


def test_trace_subscriptions_confirmed(gameday, stack):
    broken = faults.sns.alert_storm(stack.topic_arn, stack.oncall_email)
    with gameday.inject(faults.trace.break_hop("subscriptions.confirmed", broken, stack, also=CONSEQUENCES)):
        gameday.expect_trace("subscriptions.confirmed", also=CONSEQUENCES)
