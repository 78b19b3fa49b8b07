"""CloudWatch as the plane runs it: stored alarms evaluated on the plane's clock, their actions, events and history."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict, deque
from datetime import datetime, timezone
from typing import Any, Callable

from harness.emulator import alarms as evaluation
from harness.emulator import motoadapter as moto
from harness.emulator.clock import PlaneClock

log = logging.getLogger("gameday.plane.cloudwatch")

HISTORY_LIMIT = 1000  # per alarm; AWS keeps two weeks


class AlarmService:
    """Evaluates every metric alarm when its data arrives (instant profile) and on a ticking clock.

    Periods run on the plane's clock (a 300 s period lasts 5 wall seconds at scale 60). In the
    instant profile the current, still-open period counts, so a breach alarms at once; AWS waits for
    the period to close and then some (the aws profile, scaled, is a later part).
    """

    def __init__(self, *, clock: PlaneClock, publish: Callable[[str, str, str], None],
                 put_event: Callable[[dict], None], invoke_lambda: Callable[[str, bytes], None],
                 closed_periods_only: bool = False, scale: Callable[..., Any] | None = None):
        self.clock = clock
        self._scale = scale  # runs a scaling policy an alarm action names (harness.emulator.autoscaling)
        self.closed_periods_only = closed_periods_only
        self._last: dict[str, evaluation.Evaluation] = {}
        self._seen: dict[str, tuple] = {}  # alarm arn -> (alarm object, anchor, state) of its last evaluation
        self._publish = publish
        self._put_event = put_event
        self._invoke_lambda = invoke_lambda
        self._history: dict[str, deque] = defaultdict(lambda: deque(maxlen=HISTORY_LIMIT))
        self._lock = threading.RLock()
        self.failures: list[str] = []

    # -- triggers ------------------------------------------------------------------------

    def metric_arrived(self, account: str, region: str, namespace: str, name: str) -> None:
        for alarm in moto.alarms(account, region):
            if alarm.namespace == namespace and alarm.metric_name == name:
                self._evaluate(account, region, alarm)

    def alarm_configured(self, account: str, region: str, names: list[str]) -> None:
        """PutMetricAlarm: a new alarm starts at INSUFFICIENT_DATA; an updated one keeps its state (AWS's API
        reference says so; moto stores a fresh alarm either way). Then it is evaluated."""
        for alarm in moto.alarms(account, region):
            if alarm.name in names:
                with self._lock:
                    kept = self._last.get(alarm.alarm_arn)
                    if kept is None:
                        moto.set_alarm_state(alarm, "INSUFFICIENT_DATA", evaluation.INITIAL_REASON, "{}")
                    else:
                        moto.set_alarm_state(alarm, kept.state, kept.reason, json.dumps(kept.reason_data))
                    self._history[alarm.alarm_arn].appendleft(_history(alarm.name, "ConfigurationUpdate",
                                                                       f"Alarm \"{alarm.name}\" updated", {}))
                self._evaluate(account, region, alarm)

    def alarms_deleted(self, account: str, region: str, names: list[str]) -> None:
        """DeleteAlarms: an alarm put again under the same name is a new alarm."""
        with self._lock:
            gone = {f":{region}:{account}:alarm:{name}" for name in names}
            for arn in [arn for arn in self._last.keys() | self._seen.keys()
                        if any(arn.endswith(suffix) for suffix in gone)]:
                self._last.pop(arn, None)
                self._seen.pop(arn, None)

    def tick(self, accounts_regions: list[tuple[str, str]]) -> None:
        for account, region in accounts_regions:
            for alarm in moto.alarms(account, region):
                self._evaluate(account, region, alarm, unless_unchanged=True)

    # -- evaluation ----------------------------------------------------------------------

    def _evaluate(self, account: str, region: str, alarm: Any, *, unless_unchanged: bool = False) -> None:
        """Evaluate the alarm now. `unless_unchanged` (the clock's tick): skip it when nothing it depends on moved
        since its last evaluation: the same alarm, state and evaluation anchor (new data evaluates at once)."""
        with self._lock:
            fields = moto.alarm_fields(alarm)
            try:
                spec = evaluation.AlarmSpec(**fields)
                count = evaluation.lookback(spec)
                if self.closed_periods_only:
                    # aws profile: only closed periods, windows ending on the last whole minute, as AWS does.
                    anchor, align = self.clock.now(), 60
                else:
                    # instant profile: the open period counts, as if it had just closed.
                    anchor, align = (self.clock.now() // spec.period + 1) * spec.period, None
                seen = (id(alarm), anchor, alarm.state_value)
                if unless_unchanged and self._seen.get(alarm.alarm_arn) == seen:
                    return
                since_wall = self.clock.origin + (anchor - (count + 1) * spec.period - self.clock.origin) / \
                    self.clock.time_scale
                points = [(self.clock.aws(at), value) for at, value in moto.metric_points(
                    account, region, spec.namespace, spec.metric_name, dict(spec.dimensions), since=since_wall)]
                periods = evaluation.bucket(points, period=spec.period, now=anchor, count=count, align=align)
                state = moto.alarm_state(alarm)
                result = evaluation.evaluate(spec, periods, state["value"], now=anchor, align=align)
            except NotImplementedError as exc:
                self._note_failure(alarm.name, str(exc))
                return
            self._seen[alarm.alarm_arn] = (id(alarm), anchor, result.state if result.changed else state["value"])
            if not result.changed:
                return
            old = state["value"]
            old_evaluation = self._last.get(alarm.alarm_arn)
            self._last[alarm.alarm_arn] = result
            moto.set_alarm_state(alarm, result.state, result.reason, json.dumps(result.reason_data))
            stamp = _now_iso()
            self._history[alarm.alarm_arn].appendleft(evaluation.history_item(
                spec, old_state=old, evaluation=result, timestamp=stamp, old_evaluation=old_evaluation))
        self._changed(account, region, spec, alarm, state, old, old_evaluation, result, stamp)

    def state_set(self, account: str, region: str, name: str, value: str, reason: str, reason_data: str | None) -> None:
        """SetAlarmState, after moto stored it: AWS records the change, emits its event and runs the actions
        when the state differs; the next evaluation may change it back."""
        alarm = next((a for a in moto.alarms(account, region) if a.name == name), None)
        if alarm is None:
            return
        with self._lock:
            old = moto.alarm_state_replaced(alarm, value, reason)
            if old is None or old == value:
                return
            spec = evaluation.AlarmSpec(**moto.alarm_fields(alarm))
            state = moto.alarm_state(alarm)
            old_evaluation = self._last.get(alarm.alarm_arn)
            result = evaluation.Evaluation(value, reason, json.loads(reason_data) if reason_data else {}, True)
            self._last[alarm.alarm_arn] = result
            stamp = _now_iso()
            self._history[alarm.alarm_arn].appendleft(evaluation.history_item(
                spec, old_state=old, evaluation=result, timestamp=stamp, old_evaluation=old_evaluation))
        self._changed(account, region, spec, alarm, state, old, old_evaluation, result, stamp)

    def _changed(self, account, region, spec, alarm, state, old, old_evaluation, result, stamp) -> None:
        """What follows a state change: the EventBridge event, then the new state's actions if enabled."""
        self._emit_event(account, region, spec, old, old_evaluation, state, result, stamp)
        if state["actions_enabled"]:
            actions = {"ALARM": state["alarm_actions"], "OK": state["ok_actions"],
                       "INSUFFICIENT_DATA": state["insufficient_data_actions"]}[result.state]
            for arn in actions:
                self._act(account, region, spec, alarm, state, old, result, arn, stamp)

    def _emit_event(self, account, region, spec, old, old_evaluation, state, result, stamp) -> None:
        try:
            event = evaluation.state_change_event(
                spec, old_state=old, old_evaluation=old_evaluation, evaluation=result,
                account_id=account, region=region, time=stamp, description=state["description"])
            self._put_event(event)
        except Exception as exc:  # an event failure must not block the alarm's actions
            self._note_failure(spec.name, f"state change event: {exc}")

    def _act(self, account, region, spec, alarm, state, old, result, arn: str, stamp: str) -> None:
        service = arn.split(":")[2] if arn.count(":") >= 2 else ""
        try:
            if service == "sns":
                message = evaluation.sns_notification(
                    spec, old_state=old, evaluation=result, account_id=account, region=region,
                    actions={"ALARM": state["alarm_actions"], "OK": state["ok_actions"],
                             "INSUFFICIENT_DATA": state["insufficient_data_actions"]},
                    description=state["description"], updated_at=_iso(state["updated"]), state_change_time=stamp)
                self._publish(arn, json.dumps(message), evaluation.sns_subject(spec, state=result.state, region=region))
            elif service == "lambda":
                self._invoke_lambda(arn, json.dumps(evaluation.state_change_event(
                    spec, old_state=old, old_evaluation=None, evaluation=result, account_id=account,
                    region=region, time=stamp, description=state["description"])).encode())
            elif service == "autoscaling" and self._scale is not None:
                self._scale(account, region, arn, spec, result)
            else:
                raise NotImplementedError(f"alarm action {arn} is not emulated")
        except Exception as exc:  # the alarm still changed state; the failed action is history, as on AWS
            with self._lock:
                self._history[alarm.alarm_arn].appendleft(evaluation.action_history_item(
                    spec, action_arn=arn, ok=False, error=str(exc), timestamp=_now_iso()))
            return
        with self._lock:
            self._history[alarm.alarm_arn].appendleft(evaluation.action_history_item(
                spec, action_arn=arn, ok=True, error=None, timestamp=_now_iso()))

    def _note_failure(self, name: str, message: str) -> None:
        if len(self.failures) < 1000:
            self.failures.append(f"alarm {name}: {message}")

    # -- DescribeAlarmHistory -----------------------------------------------------------

    def describe_history(self, account: str, region: str, params: dict) -> dict:
        name = params.get("AlarmName")
        kind = params.get("HistoryItemType")
        start, end = _as_dt(params.get("StartDate")), _as_dt(params.get("EndDate"))
        limit = int(params.get("MaxRecords") or 100)
        with self._lock:
            items = [item for arn, entries in self._history.items()
                     if arn.split(":")[3] == region and arn.split(":")[4] == account for item in entries]
        chosen = []
        for item in items:
            at = _as_dt(item["Timestamp"])
            if name and item["AlarmName"] != name or kind and item["HistoryItemType"] != kind:
                continue
            if start and at < start or end and at > end:
                continue
            chosen.append({**item, "Timestamp": at})
        chosen.sort(key=lambda i: i["Timestamp"], reverse=params.get("ScanBy") != "TimestampAscending")
        return {"AlarmHistoryItems": chosen[:limit]}


def _history(name: str, kind: str, summary: str, data: dict) -> dict:
    return {"AlarmName": name, "AlarmType": "MetricAlarm", "Timestamp": _now_iso(), "HistoryItemType": kind,
            "HistorySummary": summary, "HistoryData": json.dumps(data)}


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def _as_dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
