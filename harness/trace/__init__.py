"""`gameday trace`: walk the alarm notification chain as an engineer would and name the first broken hop.

report (the hops, the verdict, the table), records (the tampering record each control catches), facts (every API
answer, fetched once), hops (one check per link), policy and filterpolicy (topic, key and subscription filter
policies as the hops read them), canary (a record followed to the sink), target (which endpoint and stack to trace).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.stack.desired import StackOutputs
from harness.trace.canary import send_canary
from harness.trace.facts import Facts
from harness.trace.filterpolicy import filter_drops
from harness.trace.hops import HOPS, alarm_notification, run_hop
from harness.trace.records import check_control, sample_record
from harness.trace.report import CANARY_HOP_IDS, HOP_IDS, Canary, Hop, TraceReport, render
from harness.trace.target import open_target

__all__ = ["trace", "TraceReport", "Hop", "Canary", "HOP_IDS", "CANARY_HOP_IDS", "sample_record", "render",
           "open_target", "check_control", "filter_drops", "alarm_notification", "send_canary"]


def trace(aws: Any, stack: StackOutputs, *, control: str = "4.5", canary: bool = False,
          canary_timeout: float | None = None) -> TraceReport:
    """Check every hop of the control's notification chain (all of them, at once); optionally send a canary."""
    check_control(control, stack)
    facts = Facts(aws, stack, control)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="gameday-trace") as pool:
        futures = [pool.submit(run_hop, hop_id, title, check, facts) for hop_id, title, check in HOPS]
        hops = [future.result() for future in futures]
    report = TraceReport(control=control, alarm=stack.alarm_names[control], backend=aws.name, hops=hops,
                         advice=advice(stack))
    if canary:
        report.canary = send_canary(aws, stack, report, timeout=canary_timeout)
    return report


def advice(stack: StackOutputs) -> list[str]:
    """What no API can show: listed for a human to check, never reported as checked."""
    inbox = stack.oncall_email or "the on-call mailbox"
    items = [
        f"Mail filters: make sure mail from no-reply@sns.amazonaws.com reaches {inbox} and is not filtered to spam "
        "or a folder nobody reads.",
        "Pager escalation: check who is paged when the first responder does not acknowledge, and that the schedule "
        "has someone on call now.",
        f"A reader: a delivered notification nobody reads is a silent chain; make sure someone owns {inbox}"
        + (" and the tickets queue." if stack.tickets_queue_url else "."),
    ]
    if stack.fallback_topic_arn:
        items.append(f"Fallback path: {stack.fallback_topic_arn} is not traced here; check it pages through a "
                     "channel independent of the security topic.")
    return items
