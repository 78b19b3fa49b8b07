"""EC2 instances as the plane runs them: CPUUtilization as EC2 publishes it, and the load of a CPU stress command."""

from __future__ import annotations

import functools
import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from harness.emulator import motoadapter as moto
from harness.emulator.apicall import ApiCall
from harness.emulator.clock import PlaneClock

Response = tuple[int, dict[str, str], bytes]

# The AWS-owned Run Command document AWS FIS uses for CPU stress (stress-ng on the instance); the plane runs it.
STRESS_DOCUMENT = "AWSFIS-Run-CPU-Stress"
IDLE_CPU_PERCENT = 2.0  # an idle Linux instance's CPUUtilization
DETAILED_PERIOD_S = 60  # detailed monitoring publishes every minute, basic every five
BASIC_PERIOD_S = 300
CATCH_UP = 10  # a stalled clock publishes at most this many missed periods per instance
# Known difference: the plane keeps three hours (AWS time) of EC2 datapoints, CloudWatch fifteen days; alarms look back
# minutes, and every evaluation reads through what is kept.
KEEP_S = 3 * 3600
PRUNE_EVERY_S = 600  # AWS seconds between two prunings


@dataclass(frozen=True)
class Load:
    """CPU a command keeps busy on an instance: `share` of its vCPUs at `percent`, between two AWS times."""

    command_id: str
    start: float
    end: float
    percent: float
    share: float


class InstanceMetrics:
    """Publishes each running instance's CPUUtilization when its period closes, with the load commands put on it."""

    def __init__(self, *, clock: PlaneClock, run_later: Callable[[Callable[[], None]], None],
                 metric_arrived: Callable[[str, str, str, str], None], note_failure: Callable[[str], None]):
        self.clock = clock
        self._run_later = run_later  # on the plane's delivery thread
        self._metric_arrived = metric_arrived
        self._note_failure = note_failure
        self._pruned = clock.now()
        self._loads: dict[tuple[str, str, str], list[Load]] = {}
        self._next: dict[tuple[str, str, str], float] = {}  # instance -> start of the next period to publish
        self._running: dict[tuple[str, str, str], float] = {}  # (account, region, command id) -> AWS end time
        self._lock = threading.Lock()

    # -- Run Command -----------------------------------------------------------------------

    def follow(self, call: ApiCall, account: str) -> None:
        """SendCommand with the stress document: the agent starts stress-ng on each instance for DurationSeconds."""
        if call.service != "ssm" or call.operation != "SendCommand" or call.error_code or not call.response:
            return
        command = call.response.get("Command") or {}
        if command.get("DocumentName") != STRESS_DOCUMENT:
            return
        params = command.get("Parameters") or {}
        try:
            duration = float(_one(params, "DurationSeconds"))
            percent = float(_one(params, "LoadPercent", "100"))
            stressors = int(_one(params, "CPU", "0"))
        except (TypeError, ValueError) as exc:
            # Known difference: AWS refuses parameters the document does not accept; moto took them.
            self._note_failure(f"{STRESS_DOCUMENT}: bad parameters {params}: {exc}")
            return
        now = self.clock.now()
        views = {v.id: v for v in moto.ec2_instances(account, call.region)}
        with self._lock:
            for instance in command.get("InstanceIds") or []:
                view = views.get(instance)
                if view is None or view.state != "running":
                    continue  # the agent of a stopped or missing instance runs nothing
                share = 1.0 if stressors <= 0 else min(stressors, view.vcpus) / view.vcpus
                self._loads.setdefault((account, call.region, instance), []).append(
                    Load(command["CommandId"], now, now + duration, max(0.0, min(percent, 100.0)), share))
            self._running[(account, call.region, command["CommandId"])] = now + duration
        # Known difference: moto reports every command Success at once; the stress runs for its duration.
        moto.ssm_set_command_status(account, call.region, command["CommandId"], "InProgress")

    def serve(self, target: str, body: bytes, account: str, region: str) -> Response | None:
        """CancelCommand (moto lacks it): stress-ng is stopped on the instances named, or on all of them."""
        if target != "AmazonSSM.CancelCommand":
            return None
        params = json.loads(body or b"{}")
        command_id = params.get("CommandId", "")
        if moto.ssm_command(account, region, command_id) is None:
            return 400, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "InvalidCommandId"}, \
                json.dumps({"__type": "InvalidCommandId", "message": "Invalid command id."}).encode()
        only = set(params.get("InstanceIds") or [])
        now = self.clock.now()
        with self._lock:
            self._running.pop((account, region, command_id), None)
            for (acct, reg, instance), loads in self._loads.items():
                if acct != account or reg != region or only and instance not in only:
                    continue
                loads[:] = [Load(x.command_id, x.start, min(x.end, now), x.percent, x.share)
                            if x.command_id == command_id else x for x in loads]
        moto.ssm_set_command_status(account, region, command_id, "Cancelled")
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, b"{}"

    def busy(self, account: str, region: str, instance: str) -> bool:
        """A stress command still runs on the instance."""
        now = self.clock.now()
        with self._lock:
            return any(x.start <= now < x.end for x in self._loads.get((account, region, instance), []))

    # -- publication ------------------------------------------------------------------------

    def tick(self, places: list[tuple[str, str]]) -> None:
        now = self.clock.now()
        with self._lock:
            done = [key for key, end in self._running.items() if end <= now]
            for key in done:
                del self._running[key]
        for account, region, command_id in done:
            moto.ssm_set_command_status(account, region, command_id, "Success")
        for account, region in places:
            batch = []
            for view in moto.ec2_instances(account, region):
                if view.state != "running":
                    continue
                period = DETAILED_PERIOD_S if view.detailed_monitoring else BASIC_PERIOD_S
                key = (account, region, view.id)
                with self._lock:
                    start = self._next.setdefault(key, math.floor(now / period) * period)
                    start = max(start, math.floor(now / period) * period - CATCH_UP * period)
                    while start + period <= now:
                        batch.append((view, start, self._cpu(key, start, start + period)))
                        start += period
                    self._next[key] = start
            if batch:
                # One delivery and one alarm evaluation per tick, however many instances published.
                self._run_later(functools.partial(self._publish, account, region, batch))
        if now - self._pruned >= PRUNE_EVERY_S:
            self._pruned = now
            before = self._wall(now - KEEP_S)
            for account, region in places:
                self._run_later(functools.partial(moto.forget_metric_points, account, region, "AWS/EC2", before))

    def _cpu(self, key: tuple[str, str, str], start: float, end: float) -> float:
        """The period's average CPUUtilization: idle, plus each load for the part of the period it ran."""
        busy = 0.0
        for load in self._loads.get(key, []):
            overlap = max(0.0, min(end, load.end) - max(start, load.start)) / (end - start)
            busy += max(0.0, load.percent - IDLE_CPU_PERCENT) * load.share * overlap
        self._loads[key] = [x for x in self._loads.get(key, []) if x.end > start]
        return round(min(100.0, IDLE_CPU_PERCENT + busy), 3)

    def _publish(self, account: str, region: str, batch: list[tuple[moto.InstanceView, float, float]]) -> None:
        for view, begin, value in batch:
            # EC2 stamps a datapoint with its period's start and publishes it once the period is over.
            at = datetime.fromtimestamp(self._wall(begin), tz=timezone.utc)
            series = [{"InstanceId": view.id}]
            if view.group:
                series.append({"AutoScalingGroupName": view.group})  # the group's aggregate, as EC2 publishes it
            for dimensions in series:
                moto.put_metric(account, region, "AWS/EC2", "CPUUtilization", value, dimensions=dimensions,
                                unit="Percent", timestamp=at)
        self._metric_arrived(account, region, "AWS/EC2", "CPUUtilization")

    def _wall(self, aws: float) -> float:
        return self.clock.origin + (aws - self.clock.origin) / self.clock.time_scale


def _one(params: dict[str, Any], name: str, default: str | None = None) -> str | None:
    """A Run Command parameter (each is a list of strings)."""
    value = params.get(name)
    if isinstance(value, list):
        return value[0] if value else default
    return default if value is None else str(value)
