"""faults.trace.break_hop's precondition: the whole trace healthy, but for the later hops the fault may break too."""

from __future__ import annotations

import pytest

import harness.trace
from harness import faults
from harness.probes import Probe
from harness.stack.desired import desired_state
from harness.trace import Hop, TraceReport

STACK = desired_state(account_id="123456789012", region="us-east-1").outputs()


@pytest.fixture
def traced(monkeypatch):
    """Makes the trace report the given hops broken; the breaking fault's own precondition holds."""
    ready = Probe("storm ready", lambda aws: (True, ""))
    monkeypatch.setattr(faults.sns.AlertStorm, "precondition", lambda self: ready)

    def report(*broken: str) -> None:
        hops = [Hop(h, h, "broken" if h in broken else "ok", f"{h} evidence")
                for h in ("subscriptions.confirmed", "subscriptions.delivery", "rules.enabled")]
        monkeypatch.setattr(harness.trace, "trace", lambda aws, stack: TraceReport("4.5", "a", "embedded", hops, []))

    return report


def storm(**kwargs) -> faults.trace.BreakHop:
    return faults.trace.break_hop("subscriptions.confirmed", faults.sns.alert_storm(STACK.topic_arn, "o@example.com"),
                                  STACK, **kwargs)


def test_every_hop_must_be_healthy_before_the_fault(traced):
    traced("subscriptions.delivery")
    ok, evidence = storm().precondition()(None)
    assert not ok and "subscriptions.delivery: subscriptions.delivery evidence" in evidence


def test_a_hop_the_fault_may_break_too_need_not_be_healthy_before(traced):
    traced("subscriptions.delivery")
    probe = storm(also=("subscriptions.delivery",)).precondition()
    assert probe(None)[0]
    assert "every hop but subscriptions.delivery" in probe.description


def test_other_hops_still_must_be_healthy(traced):
    traced("subscriptions.delivery", "rules.enabled")
    ok, evidence = storm(also=("subscriptions.delivery",)).precondition()(None)
    assert not ok and "rules.enabled" in evidence and "subscriptions.delivery evidence" not in evidence


@pytest.mark.parametrize("hop, also, message", [
    ("subscriptions.confirmd", (), "'subscriptions.confirmd' is not a hop of gameday trace"),
    ("subscriptions.confirmed", ("subscriptions.delivry",), "'subscriptions.delivry' is not a hop of gameday trace"),
    ("subscriptions.confirmed", ("topic.exists",), "names the hops after subscriptions.confirmed in the chain; "
                                                   "topic.exists is not one"),
])
def test_a_hop_the_trace_does_not_have_is_refused_in_one_line(hop, also, message):
    with pytest.raises(ValueError, match=message):
        faults.trace.break_hop(hop, faults.sns.alert_storm(STACK.topic_arn, "o@example.com"), STACK, also=also)
