"""Auto Scaling as the plane runs it: alarm actions naming scaling policies execute them, and activities are kept."""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections import defaultdict, deque
from datetime import datetime, timezone
from typing import Any

from harness.emulator import motoadapter as moto
from harness.emulator.apicall import ApiCall
from harness.emulator.clock import PlaneClock

# AWS seconds between invocations of an Auto Scaling action while its alarm stays in the state (CloudWatch docs).
REPEAT_S = 60.0
ACTIVITY_LIMIT = 1000  # per group; AWS keeps six weeks of activities
MAX_RECORDS = 100
_ADJUSTMENTS = ("ChangeInCapacity", "ExactCapacity", "PercentChangeInCapacity")
# The calls whose capacity changes Auto Scaling records as activities "in response to a user request".
_USER_CALLS = {"CreateAutoScalingGroup", "SetDesiredCapacity", "UpdateAutoScalingGroup", "DetachInstances",
               "TerminateInstanceInAutoScalingGroup"}


class ScalingError(Exception):
    """A policy the plane cannot execute (its alarm history records the action as failed)."""


class Scaling:
    """Executes simple and step scaling policies for alarm actions, with cooldowns, warm-up and bounds."""

    def __init__(self, *, clock: PlaneClock):
        self.clock = clock
        self._activities: dict[tuple[str, str, str], deque] = defaultdict(lambda: deque(maxlen=ACTIVITY_LIMIT))
        self._cooldown_until: dict[tuple[str, str, str], float] = {}  # simple scaling, AWS time
        self._step: dict[tuple[str, str, str], tuple[float, int]] = {}  # warm-up end, capacity the step started from
        self._invoked: dict[tuple[str, str], tuple[str, float]] = {}  # (alarm, policy) -> (state, AWS time)
        self._seen: dict[tuple[str, str, str], tuple[int, frozenset[str]]] = {}  # desired and instances last seen
        self._lock = threading.RLock()

    # -- alarm actions -------------------------------------------------------------------

    def execute(self, account: str, region: str, policy_arn: str, spec: Any, evaluation: Any) -> str:
        """An alarm action: run the policy for the alarm's new state (spec: AlarmSpec, evaluation: Evaluation)."""
        return self._run(account, region, policy_arn, alarm=spec.name, alarm_arn=spec.arn, state=evaluation.state,
                         threshold=spec.threshold, value=_latest(evaluation.reason_data))

    def tick(self, places: list[tuple[str, str]]) -> None:
        """Invoke again the Auto Scaling actions of alarms still in their state, once a minute."""
        now = self.clock.now()
        for account, region in places:
            for alarm in moto.alarms(account, region):
                state = moto.alarm_state(alarm)
                actions = {"ALARM": state["alarm_actions"], "OK": state["ok_actions"],
                           "INSUFFICIENT_DATA": state["insufficient_data_actions"]}.get(state["value"], [])
                for arn in actions:
                    if not arn.startswith(f"arn:{moto.PARTITION}:autoscaling:") or not state["actions_enabled"]:
                        continue
                    with self._lock:
                        last = self._invoked.get((alarm.alarm_arn, arn))
                        if last is None or last[0] != state["value"]:
                            # Its transition ran the action (or the plane just started): count from now.
                            self._invoked[(alarm.alarm_arn, arn)] = (state["value"], now)
                            continue
                        if now - last[1] < REPEAT_S:
                            continue
                    fields = moto.alarm_fields(alarm)
                    try:
                        # Known difference: repeated invocations are not written to the alarm's history.
                        self._run(account, region, arn, alarm=alarm.name, alarm_arn=alarm.alarm_arn,
                                  state=state["value"], threshold=fields["threshold"],
                                  value=_latest(_json(state["reason_data"])))
                    except (ScalingError, LookupError):
                        pass

    def _run(self, account: str, region: str, policy_arn: str, *, alarm: str, alarm_arn: str, state: str,
             threshold: float, value: float | None) -> str:
        policy = moto.scaling_policy(account, region, policy_arn)
        if policy is None:
            raise LookupError(f"scaling policy {policy_arn} does not exist")
        now = self.clock.now()
        with self._lock:
            self._invoked[(alarm_arn, policy_arn)] = (state, now)
            group = moto.autoscaling_group(account, region, policy.group)
            if group is None:
                raise LookupError(f"Auto Scaling group {policy.group} does not exist")
            if "AlarmNotification" in group.suspended:
                return f"{group.name} does not take alarm notifications (AlarmNotification suspended)"
            key = (account, region, group.name)
            if policy.policy_type == "SimpleScaling":
                if now < self._cooldown_until.get(key, float("-inf")):
                    return f"{group.name} is in its cooldown"
                target = _adjust(policy.adjustment_type, policy.scaling_adjustment, group.desired,
                                 policy.min_adjustment_magnitude)
            elif policy.policy_type == "StepScaling":
                step = _step(policy.step_adjustments, threshold, value)
                if step is None:
                    return f"no step of {policy.name} covers the metric value {value}"
                warm_until, started_from = self._step.get(key, (float("-inf"), group.desired))
                warming = now < warm_until
                # While launched instances warm up, AWS counts them in: a repeated breach at the same step adds
                # nothing, a larger step adds only the difference (the capacity is computed from where it started).
                base = started_from if warming else group.desired
                target = _adjust(policy.adjustment_type, int(step["ScalingAdjustment"]), base,
                                 policy.min_adjustment_magnitude)
                if warming and target <= group.desired:
                    return f"{group.name} is warming up"
            else:
                raise ScalingError(f"{policy.policy_type} policies are run by Auto Scaling's own alarms; not emulated")
            target = max(group.min_size, min(group.max_size, target))
            if target == group.desired:
                return f"{group.name} stays at {target}"
            cause = (f"At {_stamp()} a monitor alarm {alarm} in state {state} triggered policy {policy.name} "
                     f"changing the desired capacity from {group.desired} to {target}.")
            self._change(account, region, group, target, cause)
            if policy.policy_type == "SimpleScaling":
                self._cooldown_until[key] = now + float(policy.cooldown or group.default_cooldown)
            else:
                warmup = policy.estimated_instance_warmup or group.default_cooldown
                self._step[key] = (now + float(warmup), base)
            return f"{group.name} {group.desired} -> {target}"

    def _change(self, account: str, region: str, group: moto.GroupView, target: int, cause: str) -> None:
        launched, terminated = moto.set_group_capacity(account, region, group.name, target)
        self._record(account, region, group, cause, launched, terminated, group.desired, target)
        after = moto.autoscaling_group(account, region, group.name)
        if after is not None:
            self._remember(account, region, after)

    # -- what users change -----------------------------------------------------------------

    def follow(self, call: ApiCall, account: str) -> None:
        """A successful Auto Scaling call: record the activities AWS would for a user request."""
        if call.service != "autoscaling" or call.operation not in _USER_CALLS or call.error_code:
            return
        params = call.params
        name = params.get("AutoScalingGroupName", "")
        with self._lock:
            group = moto.autoscaling_group(account, call.region, name)
            if call.operation == "TerminateInstanceInAutoScalingGroup":
                group = next((g for g in moto.autoscaling_groups(account, call.region)
                              if (account, call.region, g.name) in self._seen
                              and params.get("InstanceId") in self._seen[(account, call.region, g.name)][1]), group)
            if group is None:
                return
            before, ids = self._seen.get((account, call.region, group.name), (0, frozenset()))
            now_ids = {i for i, _, _ in group.instances}
            at = _stamp()
            if call.operation == "DetachInstances":
                for instance in params.get("InstanceIds") or []:
                    shrink = f", shrinking the capacity from {before} to {group.desired}" \
                        if group.desired < before else ""
                    self._add(account, call.region, group, f"Detaching EC2 instance: {instance}",
                              f"At {at} instance {instance} was detached in response to a user request{shrink}.",
                              instance)
            elif call.operation == "TerminateInstanceInAutoScalingGroup":
                instance = params.get("InstanceId", "")
                shrink = f", shrinking the capacity from {before} to {group.desired}" if group.desired < before else ""
                self._add(account, call.region, group, f"Terminating EC2 instance: {instance}",
                          f"At {at} instance {instance} was taken out of service in response to a user request"
                          f"{shrink}.", instance)
            elif group.desired != before or now_ids != ids:
                request = {
                    "CreateAutoScalingGroup": "a user request created an AutoScalingGroup",
                    "SetDesiredCapacity": "a user request explicitly set group desired capacity",
                    "UpdateAutoScalingGroup": f"a user request update of AutoScalingGroup constraints to min: "
                                              f"{group.min_size}, max: {group.max_size}, desired: {group.desired}",
                }[call.operation]
                cause = f"At {at} {request} changing the desired capacity from {before} to {group.desired}."
                self._record(account, call.region, group, cause, sorted(now_ids - ids), sorted(ids - now_ids),
                             before, group.desired)
            self._remember(account, call.region, group)

    def _remember(self, account: str, region: str, group: moto.GroupView) -> None:
        with self._lock:
            self._seen[(account, region, group.name)] = (group.desired, frozenset(i for i, _, _ in group.instances))

    # -- activities --------------------------------------------------------------------------

    def _record(self, account: str, region: str, group: moto.GroupView, cause: str, launched: list[str],
                terminated: list[str], before: int, after: int) -> None:
        at = _stamp()
        for instance in launched:
            self._add(account, region, group, f"Launching a new EC2 instance: {instance}",
                      f"{cause}  At {at} an instance was started in response to a difference between desired and "
                      f"actual capacity, increasing the capacity from {before} to {after}.", instance)
        for instance in terminated:
            self._add(account, region, group, f"Terminating EC2 instance: {instance}",
                      f"{cause}  At {at} an instance was taken out of service in response to a difference between "
                      f"desired and actual capacity, shrinking the capacity from {before} to {after}.  At {at} "
                      f"instance {instance} was selected for termination.", instance)

    def _add(self, account: str, region: str, group: moto.GroupView, description: str, cause: str,
             instance: str) -> None:
        where = next((v for v in moto.ec2_instances(account, region) if v.id == instance), None)
        details = {"Subnet ID": where.subnet_id, "Availability Zone": where.availability_zone} if where else {}
        now = datetime.now(timezone.utc)
        with self._lock:
            self._activities[(account, region, group.name)].appendleft({
                "ActivityId": str(uuid.uuid4()), "AutoScalingGroupName": group.name, "Description": description,
                "Cause": cause, "StartTime": now, "EndTime": now, "StatusCode": "Successful", "Progress": 100,
                "Details": json.dumps(details), "AutoScalingGroupARN": group.arn})

    def describe_activities(self, account: str, region: str, params: dict) -> dict:
        """DescribeScalingActivities (moto answers it with nothing): newest first, pages of up to 100."""
        name = params.get("AutoScalingGroupName")
        wanted = set(params.get("ActivityIds") or [])
        size = min(int(params.get("MaxRecords") or MAX_RECORDS), MAX_RECORDS)
        start = int(params.get("NextToken") or 0)
        with self._lock:
            found = [dict(a) for (acct, reg, group), items in self._activities.items()
                     if acct == account and reg == region and (not name or group == name) for a in items
                     if not wanted or a["ActivityId"] in wanted]
        found.sort(key=lambda a: a["StartTime"], reverse=True)
        out: dict[str, Any] = {"Activities": found[start:start + size]}
        if start + size < len(found):
            out["NextToken"] = str(start + size)
        return out


def _adjust(kind: str | None, adjustment: int | None, current: int, magnitude: int | None) -> int:
    """The capacity an adjustment asks for, before the group's bounds (AWS's rounding for percentages)."""
    if kind not in _ADJUSTMENTS or adjustment is None:
        raise ScalingError(f"adjustment type {kind!r} with adjustment {adjustment!r} cannot be executed")
    if kind == "ExactCapacity":
        return int(adjustment)
    if kind == "ChangeInCapacity":
        return current + int(adjustment)
    change = current * adjustment / 100.0
    # Between -1 and 1 rounds away from zero; beyond, toward zero.
    change = math.copysign(1, change) if 0 < abs(change) < 1 else math.trunc(change)
    if magnitude and 0 < abs(change) < magnitude:
        change = math.copysign(magnitude, change)
    return current + int(change)


def _step(steps: tuple[dict, ...], threshold: float, value: float | None) -> dict | None:
    """The step adjustment whose bounds (relative to the threshold) hold the metric value.

    Above the threshold a lower bound is inclusive and an upper bound exclusive; below it, the reverse.
    """
    if value is None:
        return None
    delta = value - threshold
    for step in steps:
        low = step.get("MetricIntervalLowerBound")
        high = step.get("MetricIntervalUpperBound")
        low = float("-inf") if low in (None, "") else float(low)
        high = float("inf") if high in (None, "") else float(high)
        inside = low <= delta < high if delta >= 0 else low < delta <= high
        if inside:
            return step
    return None


def _latest(reason_data: dict | None) -> float | None:
    """The breaching value a policy sees: the alarm's most recent datapoint."""
    points = (reason_data or {}).get("recentDatapoints") or []
    return float(points[-1]) if points else None


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
