"""The run of one scenario: steady state, inject (journaled), detection, remediation, revert, steady state."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from harness import reporting
from harness.errors import (DetectionMissing, DetectionSlaBreached, HarnessBroken, PreventionMissing,
                            RemediationMissing, RemediationSlaBreached, SteadyStateViolated, UnwantedNotification)
from harness.faults import Fault
from harness.journal import Journal
from harness.poll import interval_for, wait_for
from harness.probes import Probe
from harness.scenario import Scenario
from harness.sink import Notification, Sink
from harness.sla import SlaClock

# How long past an SLA we keep looking, to tell "late" from "missing" (a fraction of the SLA).
LATE_GRACE = 0.5
# AWS seconds allowed for the target to settle back to steady state after revert (eventual consistency).
SETTLE_AWS_S = 30.0
# How AWS services say a policy refused a call (SNS says AuthorizationError).
ACCESS_DENIED = ("AuthorizationError", "AccessDenied", "AccessDeniedException")
# Seconds SQS's SentTimestamp may lag the harness's clock (a message older than injection minus this is stale).
INBOX_SKEW_S = 1.0
_QUIET = object()  # the sink stayed quiet for the whole window
# Attempts at a revert the backend refused (each looks again first), and the wall seconds between them.
REVERT_ATTEMPTS = 3
REVERT_RETRY_WAIT_S = 0.2


class GameDay:
    """What a scenario test drives: `inject`, `expect_notification`, `expect_restored`."""

    def __init__(self, *, backend: Any, stack: Any, scenario: Scenario, journal: Journal, run_id: str | None = None):
        self.aws = backend
        self.stack = stack
        self.scenario = scenario
        self.journal = journal
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.clock = SlaClock(backend.time_scale)
        self.sink = Sink(backend.client("sqs"), stack.sink_queue_url)
        self.timeline: list[dict] = []
        self.detection: Notification | None = None
        self._injected = False
        self._inboxes: dict[str, Sink] = {}  # queues other than the sink (an ops inbox), read from injection on

    @property
    def injected_at(self) -> float | None:
        """Epoch seconds the current fault was injected (a probe made after it looks no further back)."""
        return self.clock.injected_at

    # -- the scenario's verbs ----------------------------------------------------------

    @contextmanager
    def inject(self, fault: Fault) -> Iterator[Fault]:
        """Apply a fault for the body of the `with`; always revert it, then check steady state again."""
        steady, before = fault.steady(), fault.precondition()
        with reporting.phase(f"steady state before: {before.description}"):
            # e.g. an alarm still in ALARM from earlier activity must recover before a new breach can show.
            ok, evidence = self._holds_within(before, self.clock.wall_limit(fault.settle_within))
            self._note("steady state before", evidence=evidence, holds=ok)
            if not ok:
                raise SteadyStateViolated(f"before injecting {fault.describe()}: {evidence}")
        self.sink.drain()
        snapshot = self._call(lambda: fault.snapshot(self.aws), f"snapshot for {fault.name}")
        entry = self.journal.begin(run_id=self.run_id, fault=fault.name, params=fault.params,
                                   snapshot=snapshot, backend=self.aws.describe())
        in_flight: BaseException | None = None
        try:
            try:
                with reporting.phase(f"inject: {fault.describe()}"):
                    self.clock.start()
                    self._injected = True
                    self._note("injected", fault=fault.describe())
                    self._call(lambda: fault.apply(self.aws, snapshot), f"apply {fault.name}")
                self.journal.mark(entry, "applied")
                yield fault
            except BaseException as exc:
                in_flight = exc
                raise
            finally:
                self._revert(fault, snapshot, entry, in_flight)
            self._settle(fault, steady)
        finally:
            reporting.attach_json("timeline", self.report())

    def expect_denied(self, fault: Fault) -> str:
        """Prevention: the fault, tried by the harness's own (ordinary) principal, is refused and changes nothing."""
        steady = fault.steady()
        with reporting.phase(f"prevent: {fault.describe()} is refused"):
            ok, evidence = self._observe(steady)
            if not ok:
                raise SteadyStateViolated(f"before trying {fault.describe()}: {evidence}")
            snapshot = self._call(lambda: fault.snapshot(self.aws), f"snapshot for {fault.name}")
            entry = self.journal.begin(run_id=self.run_id, fault=fault.name, params=fault.params,
                                       snapshot=snapshot, backend=self.aws.describe())
            try:
                fault.apply(self.aws, snapshot)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ACCESS_DENIED:
                    self._revert(fault, snapshot, entry, exc)
                    raise HarnessBroken(f"trying {fault.describe()}: {exc}") from exc
                refused = f"{exc.response['Error']['Code']}: {exc.response['Error'].get('Message', '')}"
            except BaseException as exc:
                self._revert(fault, snapshot, entry, exc)
                raise
            else:
                self.journal.mark(entry, "applied")
                self._revert(fault, snapshot, entry, None)
                raise PreventionMissing(fault.describe())
            self.journal.mark(entry, "reverted", "refused: nothing was applied")
            ok, evidence = self._observe(steady)
            self._note("refused", fault=fault.describe(), error=refused, unchanged=ok)
            reporting.attach_text("refusal", refused)
            if not ok:
                raise PreventionMissing(f"{fault.describe()} (refused, yet something changed: {evidence})")
            return refused

    def answer_confirmation(self, topic: str, endpoint: str, *, within: float | None = None) -> None:
        """Act as the endpoint's owner: confirm the subscription from a confirmation sent since injection."""
        limit = within if within is not None else self.scenario.remediate_within
        mailbox = getattr(self.aws, "mailbox", None)
        if mailbox is None or limit is None:
            raise HarnessBroken(f"backend {self.aws.name} cannot read {endpoint}'s mailbox: confirm it by hand")
        since = self.clock.injected_at or 0.0
        with reporting.phase(f"remediate: a fresh confirmation reaches {endpoint} within {limit:g} s"):
            found = self._poll_until(lambda: mailbox.confirmation(endpoint, topic, since=since), limit,
                                     f"a subscription confirmation sent to {endpoint}")
            if found is None:
                raise RemediationMissing(f"the subscription of {endpoint} (no confirmation was sent to it again)",
                                         limit, self.clock.wall_limit(limit))
            self._call(lambda: self.aws.client("sns").confirm_subscription(TopicArn=topic, Token=found["Token"]),
                       f"confirming {endpoint}")
            self._note("confirmed by the endpoint's owner", endpoint=endpoint)

    def expect_notification(self, matching: dict[str, Any], *, within: float | None = None, inbox: str | None = None,
                            meanwhile: Probe | None = None) -> Notification:
        """A notification about the fault reaches the sink (or the `inbox` queue) within the detection SLA (AWS s).

        When none does, `meanwhile` says what happened instead (e.g. the group only scaled out) in the failure.
        """
        limit = within if within is not None else self.scenario.detect_within
        what = ", ".join(f"{k}={v}" for k, v in matching.items())
        where = f" in {inbox.rsplit('/', 1)[-1]}" if inbox else ""
        with reporting.phase(f"detect: notification about {what}{where} within {limit:g} s"):
            found = self._poll_until(lambda: next((n for n in self._receive(inbox) if n.matches(matching)), None),
                                     limit, what)
            if found is None:
                missing = f"no notification about {what} reached {inbox}" if inbox else None
                if meanwhile is not None:
                    _, evidence = self._observe(meanwhile)
                    missing = f"no notification about {what} reached {inbox or 'the sink'}; meanwhile {evidence}"
                raise DetectionMissing(what, limit, self.clock.wall_limit(limit), missing=missing)
            self.clock.detected(found.sent_at)
            self.detection = found
            self._note("notification received", sent_at=found.sent_at, message_id=found.message_id)
            reporting.attach_json("matched notification", found.payload)
            reporting.parameter("TTD (AWS s)", _ms(self.clock.ttd_aws))
            reporting.parameter("TTD (wall s)", _ms(self.clock.ttd_wall))
            if self.clock.ttd_aws is not None and self.clock.ttd_aws > limit:
                raise DetectionSlaBreached(what, self.clock.ttd_aws, limit)
            return found

    def expect_no_notification(self, matching: dict[str, Any] | None = None, *, within: float) -> None:
        """The false-positive guard: nothing matching (anything, by default) reaches the sink from injection until
        `within` AWS seconds from now; the sink is read for the whole window."""
        what = ", ".join(f"{k}={v}" for k, v in (matching or {}).items()) or "anything"
        with reporting.phase(f"detect: no notification about {what} for {within:g} s"):
            wall = self.clock.wall_limit(within)
            deadline = time.monotonic() + wall

            def unwanted() -> Notification | None:
                # Sent before injection (after the drain) is a late delivery about something else.
                found = next((n for n in self.sink.receive() if n.matches(matching or {})
                              and n.sent_at >= (self.clock.injected_at or 0.0)), None)
                return found if found is not None or time.monotonic() < deadline else _QUIET

            seen = self._call(lambda: wait_for(unwanted, timeout=wall * 1.5 + 1.0, interval=interval_for(wall),
                                               describe=f"the sink quiet for {within:g} s"), what)
            if isinstance(seen, Notification):
                elapsed = self.clock.to_aws(seen.sent_at - (self.clock.injected_at or seen.sent_at))
                reporting.attach_json("unwanted notification", seen.payload)
                raise UnwantedNotification(what, elapsed, within)
            self._note("no notification", window_aws_s=within)

    def expect_observed(self, probe: Probe, *, within: float | None = None) -> str:
        """Part of detection: the probe holds within the detection SLA (e.g. the group scaled out)."""
        limit = within if within is not None else self.scenario.detect_within
        with reporting.phase(f"detect: {probe.description} within {limit:g} s"):
            def held() -> str | None:
                ok, evidence = probe(self.aws)
                return evidence if ok else None

            seen = self._poll_until(held, limit, probe.description)
            if seen is None:
                _, evidence = self._observe(probe)
                raise DetectionMissing(probe.description, limit, self.clock.wall_limit(limit),
                                       missing=f"{probe.description}: never (last seen: {evidence})")
            self._note("observed", evidence=seen)
            return seen

    def expect_alarm(self, alarm: str, *, within: float | None = None) -> Notification:
        """The alarm goes to ALARM (its history says so) and its notification reaches the sink within the SLA."""
        found = self.expect_notification(matching={"AlarmName": alarm, "NewStateValue": "ALARM"}, within=within)
        assert self.clock.injected_at is not None
        history = self._call(lambda: self.aws.client("cloudwatch").describe_alarm_history(
            AlarmName=alarm, HistoryItemType="StateUpdate",
            StartDate=datetime.fromtimestamp(self.clock.injected_at - 1, timezone.utc))["AlarmHistoryItems"],
            f"history of {alarm}")
        if not any(item["HistorySummary"].endswith("to ALARM") for item in history):
            raise DetectionMissing(f"a StateUpdate to ALARM in the history of {alarm} (notified, but not recorded)",
                                   within or self.scenario.detect_within,
                                   self.clock.wall_limit(within or self.scenario.detect_within))
        self._note("alarm history shows ALARM", alarm=alarm)
        return found

    def expect_trace(self, hop: str, *, within: float | None = None, also: tuple[str, ...] = ()) -> Any:
        """`gameday trace` names `hop` as the first broken hop, and no other hop as broken, within the SLA.

        `also`: later hops the fault may break as well, as a consequence (they may show, never before `hop`).
        """
        from harness.trace import trace
        from harness.trace.report import TROUBLE

        limit = within if within is not None else self.scenario.detect_within
        seen: dict[str, Any] = {}

        def named() -> Any:
            report = seen["report"] = trace(self.aws, self.stack)
            troubled = [h.id for h in report.hops if h.status in TROUBLE]
            return report if troubled[:1] == [hop] and set(troubled[1:]) <= set(also) else None

        with reporting.phase(f"detect: gameday trace names {hop} within {limit:g} s"):
            found = self._poll_until(named, limit, f"a trace naming {hop}")
            if found is None:
                last = seen.get("report")
                others = ", ".join(f"{h.id} {h.status}" for h in last.hops if h.status in TROUBLE) \
                    if last else "none"
                alone = f"first (with at most {', '.join(also)})" if also else "alone"
                missing = f"gameday trace did not name {hop} {alone} (last trace: {others or 'all ok'})"
                raise DetectionMissing(hop, limit, self.clock.wall_limit(limit), missing=missing)
            self.clock.detected(time.time())
            broken = found.first_broken
            self._note("trace named the hop", hop=hop, evidence=broken.evidence, fix=broken.fix)
            reporting.attach_json("trace", json.loads(found.to_json()))
            reporting.parameter("TTD (AWS s)", _ms(self.clock.ttd_aws))
            reporting.parameter("TTD (wall s)", _ms(self.clock.ttd_wall))
            if self.clock.ttd_aws is not None and self.clock.ttd_aws > limit:
                raise DetectionSlaBreached(f"a trace naming {hop}", self.clock.ttd_aws, limit)
            return found

    def expect_restored(self, probe: Probe, *, within: float | None = None) -> str:
        """The stack restores the control (the probe holds again) within the remediation SLA."""
        limit = within if within is not None else self.scenario.remediate_within
        if limit is None:
            raise HarnessBroken(f"scenario {self.scenario.id} expects remediation but declares no remediate_within")
        with reporting.phase(f"remediate: {probe.description} within {limit:g} s"):
            def restored() -> tuple[float, str] | None:
                ok, evidence = probe(self.aws)
                return (time.time(), evidence) if ok else None

            seen = self._poll_until(restored, limit, probe.description)
            if seen is None:
                _, evidence = self._observe(probe)
                raise RemediationMissing(f"'{probe.description}' (last seen: {evidence}){self._function_errors()}",
                                         limit, self.clock.wall_limit(limit))
            at, evidence = seen
            self.clock.remediated(at)
            self._note("restored", evidence=evidence)
            reporting.parameter("TTR (AWS s)", _ms(self.clock.ttr_aws))
            reporting.parameter("TTR (wall s)", _ms(self.clock.ttr_wall))
            if self.clock.ttr_aws is not None and self.clock.ttr_aws > limit:
                raise RemediationSlaBreached(probe.description, self.clock.ttr_aws, limit)
            return evidence

    # -- internals -------------------------------------------------------------------

    def _receive(self, inbox: str | None) -> list[Notification]:
        """What arrived in the sink, or in another queue since injection (that one was not drained before it)."""
        if not inbox or inbox == self.sink.queue_url:
            return self.sink.receive()
        sink = self._inboxes.setdefault(inbox, Sink(self.aws.client("sqs"), inbox))
        since = (self.clock.injected_at or 0.0) - INBOX_SKEW_S
        return [n for n in sink.receive() if n.sent_at >= since]

    def _poll_until(self, probe: Any, limit_aws: float, describe: str) -> Any:
        """Poll until the SLA (measured from injection) plus grace; late findings are still returned."""
        deadline_wall = self.clock.wall_limit(limit_aws) * (1 + LATE_GRACE)
        remaining = max(deadline_wall - self.clock.elapsed_wall, 0.0)
        # wait_for retries throttling and dropped connections; anything else is the harness failing: broken.
        return self._call(lambda: wait_for(probe, timeout=remaining,
                                           interval=interval_for(self.clock.wall_limit(limit_aws)),
                                           describe=describe, ramp=True), describe)

    def _revert(self, fault: Fault, snapshot: dict | None, entry: str, in_flight: BaseException | None) -> None:
        # A revert reads what is there before it acts, so one that lost a race with the stack's own repair (the
        # route it meant to delete already gone, say) is tried again: the next look sees what the stack did.
        retrying = Retrying(stop=stop_after_attempt(REVERT_ATTEMPTS), wait=wait_fixed(REVERT_RETRY_WAIT_S),
                            retry=retry_if_exception_type(ClientError), reraise=True,
                            before_sleep=lambda state: self._note("revert retried",
                                                                  error=str(state.outcome.exception())))
        with reporting.phase(f"revert: {fault.describe()}"), _shielded_from_interrupts():
            try:
                retrying(fault.revert, self.aws, snapshot)
            except Exception as exc:
                self.journal.mark(entry, "revert_failed", f"{type(exc).__name__}: {exc}")
                self._note("revert failed", error=str(exc))
                if in_flight is None:
                    raise HarnessBroken(f"could not revert {fault.describe()}: {exc}; run `gameday cleanup`") from exc
                return
            self.journal.mark(entry, "reverted")
            self._note("reverted")

    def _settle(self, fault: Fault, steady: Probe) -> None:
        with reporting.phase(f"steady state after: {steady.description}"):
            held, evidence = self._holds_within(steady, self.clock.wall_limit(SETTLE_AWS_S))
            self._note("steady state after", evidence=evidence, holds=held)
            if not held:
                raise SteadyStateViolated(f"after reverting {fault.describe()}: {evidence}")

    def _holds_within(self, probe: Probe, limit: float) -> tuple[bool, str]:
        """Look at `probe` until it holds or `limit` wall seconds pass (0: one look); the last look's verdict."""
        last: list[tuple[bool, str]] = [(False, "not looked at")]

        def look() -> tuple[bool, str] | None:
            last[0] = probe(self.aws)
            return last[0] if last[0][0] else None

        self._call(lambda: wait_for(look, timeout=limit, interval=interval_for(limit), describe=probe.description,
                                    ramp=True), probe.description)
        return last[0]

    def _observe(self, probe: Probe) -> tuple[bool, str]:
        return self._call(lambda: probe(self.aws), probe.description)

    def _call(self, fn: Any, describe: str) -> Any:
        """Backend errors mean the harness could not observe or act: the verdict is broken, not failed."""
        try:
            return fn()
        except (BotoCoreError, ClientError) as exc:
            raise HarnessBroken(f"{describe}: {exc}") from exc

    def _function_errors(self) -> str:
        """Errors the stack's remediation functions logged since injection, so a missing remediation says why."""
        if self.clock.injected_at is None:
            return ""
        found = []
        for name in filter(None, (getattr(self.stack, "function_name", None),
                                  getattr(self.stack, "alarms_function_name", None))):
            try:
                events = self.aws.client("logs").filter_log_events(
                    logGroupName=f"/aws/lambda/{name}", startTime=int(self.clock.injected_at * 1000)).get("events", [])
            except (BotoCoreError, ClientError):
                continue
            found += [(name, e["message"]) for e in events
                      if any(m in e["message"] for m in ("ERROR", "Traceback", "errorMessage"))]
        if not found:
            return ""
        reporting.attach_text("remediation function errors", "\n".join(f"{n}: {m}" for n, m in found))
        name, message = found[-1]
        return f"; remediation function {name} logged errors: {message.strip()[:300]}"

    def _note(self, what: str, **details: Any) -> None:
        now = time.time()
        offset = None if self.clock.injected_at is None or not self._injected else now - self.clock.injected_at
        self.timeline.append({
            "event": what,
            "at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds"),
            "wall_s": _ms(offset),
            "aws_s": _ms(None if offset is None else self.clock.to_aws(offset)),
            **details,
        })

    def report(self) -> dict:
        return {"scenario": self.scenario.id, "run_id": self.run_id, "backend": self.aws.describe(),
                "sla": {"detect_within_aws_s": self.scenario.detect_within,
                        "remediate_within_aws_s": self.scenario.remediate_within, **self.clock.summary()},
                "timeline": self.timeline}


@contextmanager
def _shielded_from_interrupts() -> Iterator[None]:
    """Ctrl-C during a revert is held until the revert is done, so monitoring is never left half-restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)
