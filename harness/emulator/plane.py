"""The monitoring plane: turns observed API calls into CloudTrail records and runs what AWS would run next."""

from __future__ import annotations

import functools
import json
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from harness.emulator import apicall, filterpattern, motoadapter as moto, records
from harness.emulator.cloudtrail import EventHistory, logging_trails
from harness.emulator.clock import PlaneClock
from harness.emulator.autoscaling import Scaling
from harness.emulator.cloudwatch import AlarmService
from harness.emulator.config_rules import ConfigService
from harness.emulator.events import EventBus, Schedules, cloudtrail_envelope, put_events_entries
from harness.emulator.findings import Findings
from harness.emulator.inspector import Inspector
from harness.emulator.instances import InstanceMetrics
from harness.emulator.logs import LogIngest
from harness.emulator.patching import Compliance
from harness.emulator.lambdas import FunctionSpec, InvalidRequestContent, InvokeResult, LambdaRuntime, UnsupportedRuntime
from harness.emulator.sns import NotificationService, sns_params

log = logging.getLogger("gameday.plane")

_LAMBDA_CODE_CHANGES = {"CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration"}
# Services whose API models are compiled before the first record, so the first scenario's TTD is not inflated.
_PRELOAD = ("cloudtrail", "s3", "sns", "sqs", "events", "lambda", "logs", "iam", "sts")


@dataclass
class Exchange:
    """One HTTP request/response pair that reached the endpoint, with trail state around it."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    status: int
    response_headers: Mapping[str, str]
    response_body: bytes
    remote_addr: str
    at: datetime
    trails_before: list[moto.TrailView]
    trails_after: list[moto.TrailView]


Response = tuple[int, dict[str, str], bytes]
# The aws latency profile's delays, in AWS seconds (scaled by the time scale): CloudTrail hands API events to
# EventBridge within seconds, and records reach CloudWatch Logs in about five minutes (AWS's typical figures).
CLOUDTRAIL_TO_EVENTBRIDGE_S = 5.0
_LIVE: list["Plane"] = []  # the running plane, if any (moto's state, and so the plane, is one per process)
CLOUDTRAIL_TO_LOGS_S = 300.0
MAX_EVENT_AGE_S = 6 * 3600  # AWS seconds Lambda keeps retrying an asynchronous event (the default maximum)
# How often the plane's clock re-evaluates alarms (wall seconds): well under a scaled period (5 s for 300 s at 60).
TICK_S = 0.25



class Plane:
    """State and machinery of the embedded monitoring plane; the HTTP middleware only observes and dispatches."""

    def __init__(self, *, time_scale: float = 60.0, latency_profile: str = "instant", prewarm: bool = True) -> None:
        self.latency_profile = latency_profile
        self.prewarm = prewarm  # warm each new function at once; a session that never invokes them skips it
        self.history = EventHistory()
        self.bus = EventBus(invoke_lambda=self._invoke_lambda_async, emit_metric=self._emit_metric_later)
        self.logs = LogIngest(emit_metric=self._emit_metric, invoke_lambda=self._invoke_lambda_async)
        self.clock = PlaneClock(time_scale)
        self.failures: list[str] = []
        # Alarm actions publish as CloudWatch's service principal (what a topic's KMS key policy must allow).
        self.scaling = Scaling(clock=self.clock)
        self.alarms = AlarmService(clock=self.clock,
                                   publish=functools.partial(moto.sns_publish, publisher="cloudwatch.amazonaws.com"),
                                   put_event=self.bus.put, invoke_lambda=self._invoke_lambda_async,
                                   closed_periods_only=latency_profile == "aws", scale=self.scaling.execute)
        self.instances = InstanceMetrics(clock=self.clock, run_later=lambda work: self._enqueue("run", work),
                                         metric_arrived=self.alarms.metric_arrived, note_failure=self.failures.append)
        self.compliance = Compliance(enqueue=self._enqueue)
        self.sns = NotificationService(clock=self.clock, enqueue=lambda work: self._enqueue("run", work),
                                       emit_metric=self._emit_metric_later, invoke_lambda=self._invoke_lambda_async)
        self.schedules = Schedules(self.clock, note_failure=self.failures.append)
        self.findings = Findings(enqueue=self._enqueue, delay=self._delay, put_event=self.bus.put)
        self.inspector = Inspector(enqueue=self._enqueue)
        self.config = ConfigService(clock=self.clock, run_later=lambda work: self._enqueue("run", work),
                                    put_event=lambda event: self._enqueue("event", (event, "default")),
                                    note_failure=self.failures.append)
        self.time_scale = time_scale
        self._places: set[tuple[str, str]] = set()
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self.runtime: LambdaRuntime | None = None
        self.endpoint_url = ""
        self.recorded = 0
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._credentials: dict[str, dict[str, str]] = {}
        self._holding: set[str] = set()  # functions being throttled: new events are held while running ones finish
        self._held: dict[str, list[tuple[float, bytes]]] = {}  # function arn -> (AWS time, event) kept while throttled
        self._thread: threading.Thread | None = None

    def start(self, endpoint_url: str) -> None:
        if _LIVE:
            raise RuntimeError("one embedded endpoint per process: moto's state is per process; stop the other first")
        _LIVE.append(self)
        moto.forget_every_account()  # nothing an earlier endpoint of this process left behind
        moto.remember_response_methods()
        self.endpoint_url = endpoint_url
        self.runtime = LambdaRuntime(endpoint_url, on_log=self._lambda_log)
        self._thread = threading.Thread(target=self._run, name="gameday-plane", daemon=True)
        self._enqueue("preload", _PRELOAD)
        self._thread.start()
        moto.listen_to_log_ingestion(self._on_log_batch)
        self.sns.start(endpoint_url)
        self.config.start(endpoint_url)
        moto.serve_operation("cloudwatch", "DescribeAlarmHistory", self.alarms.describe_history)
        moto.serve_autoscaling_operation("DescribeScalingActivities", self.scaling.describe_activities)
        moto.answer_put_scaling_policy_like_aws()
        self._stopping.clear()
        self._ticker = threading.Thread(target=self._tick, name="gameday-clock", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        moto.stop_listening_to_log_ingestion(self._on_log_batch)
        self.sns.stop()
        self.config.stop()
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None
        if self._thread is not None:
            self._work.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        if self.runtime is not None:
            self.runtime.close()

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every observed call has been recorded and delivered (not Lambda runs)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # -- called by the middleware on the request thread --------------------------------

    def trails_now(self, access_key_id: str | None) -> list[moto.TrailView]:
        return moto.trails(moto.account_for_access_key(access_key_id))

    def intercept(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
                  query: str = "") -> Response | None:
        """Serve the calls moto cannot (LookupEvents, PutEvents to SNS/Lambda, Invoke without Docker, SNS
        confirmations and topic-policy denials)."""
        scope = _credential_scope(headers)
        if scope[3:4] == ["sns"] or (method == "GET" and "Action=ConfirmSubscription" in query):
            # The unsigned GET is a confirmation's SubscribeURL being visited.
            return self.sns.serve(sns_params(method, query, body), access_key=scope[0] if scope else None)
        if scope[3:4] == ["guardduty"] and "/findings" in path:
            return self.findings.serve(method, path, body, moto.account_for_access_key(scope[0]), scope[2])
        if scope[3:4] == ["inspector2"] and path == "/findings/list":
            return self.inspector.list_findings(body, moto.account_for_access_key(scope[0]), scope[2])
        target = headers.get("X-Amz-Target", "")
        if target.startswith("AmazonSSM."):  # compliance and CancelCommand, which moto lacks
            where = (moto.account_for_access_key(scope[0] if scope else None), _region(headers))
            served = self.compliance.serve(target, body, *where) or self.instances.serve(target, body, *where)
            if served is not None:
                return served
        if target.startswith("StarlingDoveService."):
            served = self.config.serve(target[len("StarlingDoveService."):], moto.account_for_access_key(
                scope[0] if scope else None), scope[2] if len(scope) > 2 else "us-east-1", body)
            if served is not None:
                return served
        if target.endswith("CloudTrail_20131101.LookupEvents"):
            return self._lookup_events(body)
        if target == "AWSEvents.PutEvents":
            return self._put_events(headers, body)
        if target in ("Logs_20140328.PutMetricFilter", "Logs_20140328.PutSubscriptionFilter"):
            return self._validate_filter_pattern(body)
        if target == "Logs_20140328.TestMetricFilter":
            return self._test_metric_filter(body)
        if method == "PUT" and path.startswith("/2017-10-31/functions/") and path.endswith("/concurrency"):
            return self._quiesce(path[len("/2017-10-31/functions/"):-len("/concurrency")], headers, body)
        if method == "POST" and path.startswith("/2015-03-31/functions/") and path.endswith("/invocations"):
            name = path[len("/2015-03-31/functions/"):-len("/invocations")]
            return self._invoke(name, headers, body)
        return None

    def observe(self, exchange: Exchange) -> None:
        self._enqueue("call", exchange)

    # -- the delivery thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            kind, payload = item
            try:
                if kind == "call":
                    self._record(payload)
                elif kind == "logs":
                    self.logs.ingest(*payload)
                elif kind == "trail-logs":
                    self._deliver_trail_logs(*payload)
                elif kind == "preload":
                    apicall.preload(*payload)
                elif kind == "metric":
                    args, kw = payload
                    self._emit_metric(*args, **kw)
                elif kind == "scheduled":
                    self.bus.deliver_to(*payload)
                elif kind == "run":
                    payload()
                else:
                    event, bus = payload
                    self.bus.put(event, bus)
            except Exception as exc:  # the plane must outlive one bad call; the failure stays visible
                log.exception("plane failed on %s", kind)
                self.failures.append(f"{kind}: {type(exc).__name__}: {exc}")
            finally:
                with self._idle:
                    self._pending -= 1
                    if not self._pending:
                        self._idle.notify_all()

    def _record(self, ex: Exchange) -> None:
        call = apicall.resolve(ex.method, ex.path, ex.query, ex.headers, ex.body, ex.status,
                               ex.response_headers, ex.response_body, ex.remote_addr)
        if call is None:
            return
        self._follow(call)
        category = records.classify(call)
        if category is None:
            return
        account = moto.account_for_access_key(call.access_key_id)
        record = records.build_record(call, user_identity=moto.user_identity(call.access_key_id),
                                      account_id=account, event_time=ex.at)
        self.history.add(record)
        trails = logging_trails(ex.trails_before, ex.trails_after, record)
        if not trails:
            return
        self.recorded += 1
        # Known difference: records go to the trail's log group at once; AWS batches them (about 5 minutes)
        # and also writes gzipped log files to the trail's bucket, which the plane does not.
        line = json.dumps(record)
        stamp = int(ex.at.timestamp() * 1000)
        for trail in trails:
            if trail.log_group_arn:
                # CloudTrail names its streams <account>_CloudTrail_<region>.
                delivery = (trail.name, trail.log_group_arn, f"{account}_CloudTrail_{call.region}", account, stamp, line)
                self._enqueue("trail-logs", delivery, delay_aws=self._delay(CLOUDTRAIL_TO_LOGS_S))
        # One event per call, however many trails log it: EventBridge is fed once.
        self._enqueue("event", (cloudtrail_envelope(record), "default"),
                      delay_aws=self._delay(CLOUDTRAIL_TO_EVENTBRIDGE_S))

    def _deliver_trail_logs(self, trail: str, group_arn: str, stream: str, account: str, stamp: int,
                            line: str) -> None:
        group = moto.log_group_name_from_arn(group_arn)
        if not moto.put_log_lines(group, stream, [(stamp, line)], account_id=account, region=group_arn.split(":")[3]):
            self.failures.append(f"trail {trail}: log group {group} does not exist")

    def _delay(self, aws_seconds: float) -> float:
        return aws_seconds if self.latency_profile == "aws" else 0.0

    def _follow(self, call: apicall.ApiCall) -> None:
        """What AWS does next after some successful calls: run alarms on new data, warm new code."""
        if call.error_code:
            return
        account = moto.account_for_access_key(call.access_key_id)
        self._places.add((account, call.region))
        self.findings.follow(call, account)  # GuardDuty reads the calls themselves, whatever trails log
        self.config.follow(call, account)  # Config rules evaluate the resources the call changed
        self.scaling.follow(call, account)  # capacity changes users make are scaling activities too
        self.instances.follow(call, account)  # a CPU stress command loads its instances
        if call.service == "lambda":
            self._follow_lambda_changes(call)
        elif call.service == "cloudwatch" and call.operation == "PutMetricData":
            for name in {d.get("MetricName") for d in call.params.get("MetricData", [])}:
                self.alarms.metric_arrived(account, call.region, call.params.get("Namespace", ""), name)
        elif call.service == "cloudwatch" and call.operation == "PutMetricAlarm":
            self.alarms.alarm_configured(account, call.region, [call.params.get("AlarmName", "")])
        elif call.service == "cloudwatch" and call.operation == "DeleteAlarms":
            self.alarms.alarms_deleted(account, call.region, list(call.params.get("AlarmNames", [])))
        elif call.service == "cloudwatch" and call.operation == "SetAlarmState":
            p = call.params
            self.alarms.state_set(account, call.region, p.get("AlarmName", ""), p.get("StateValue", ""),
                                  p.get("StateReason", ""), p.get("StateReasonData"))
        elif call.service == "events" and call.operation in ("PutRule", "EnableRule"):
            self.schedules.arm(account, call.region, call.params.get("Name", ""))
        elif call.service == "logs" and call.operation == "PutMetricFilter":
            moto.replace_metric_filter(account, call.region, call.params.get("logGroupName", ""),
                                       call.params.get("filterName", ""))

    def _follow_lambda_changes(self, call: apicall.ApiCall) -> None:
        if self.runtime is None:
            return
        if call.operation in ("PutFunctionConcurrency", "DeleteFunctionConcurrency"):
            account = moto.account_for_access_key(call.access_key_id)
            self._release_held(account, call.region, call.params.get("FunctionName", ""))
        elif call.operation == "DeleteFunction":
            name = call.params.get("FunctionName", "")
            account = moto.account_for_access_key(call.access_key_id)
            self.runtime.forget(f"arn:aws:lambda:{call.region}:{account}:function:{name.split(':')[-1]}")
        elif call.operation in _LAMBDA_CODE_CHANGES:
            account = moto.account_for_access_key(call.access_key_id)
            spec = self._spec(account, call.region, call.params.get("FunctionName", ""))
            if spec is not None and self.prewarm:
                # Like provisioned concurrency: the first event should not pay a cold start.
                self.runtime.prewarm(spec)

    # -- logs, metrics, the clock ----------------------------------------------------------

    def _on_log_batch(self, account: str, region: str, group: str, stream: str, events: list[dict]) -> None:
        self._places.add((account, region))
        self._enqueue("logs", (account, region, group, stream, events))

    def _emit_metric(self, account: str, region: str, namespace: str, name: str, value: float, **kw: Any) -> None:
        moto.put_metric(account, region, namespace, name, value, **kw)
        self.alarms.metric_arrived(account, region, namespace, name)

    def _emit_metric_later(self, *args: Any, **kw: Any) -> None:
        """Emit from the delivery thread: the caller (a publish, a delivery) neither waits for nor re-enters alarms."""
        self._enqueue("metric", (args, kw))

    def _tick(self) -> None:
        """Re-evaluate alarms as scaled periods close, expire pending subscriptions, run scheduled rules."""
        while not self._stopping.wait(TICK_S):
            places = sorted(self._places)
            for name, work, args in (("alarm", self.alarms.tick, (places,)), ("sns", self.sns.tick, ()),
                                     ("schedule", self._run_schedules, (places,)),
                                     ("config", self.config.tick, (places,)),
                                     ("scaling", self.scaling.tick, (places,)),
                                     ("instances", self.instances.tick, (places,))):
                try:
                    work(*args)
                except Exception as exc:  # the clock keeps going; the failure stays visible
                    log.exception("%s tick failed", name)
                    self.failures.append(f"{name} tick: {type(exc).__name__}: {exc}")

    def _run_schedules(self, places: list[tuple[str, str]]) -> None:
        for rule, event in self.schedules.due(places):
            self._enqueue("scheduled", (rule, event))

    def _enqueue(self, kind: str, payload: Any, *, delay_aws: float = 0.0) -> None:
        """Queue work for the delivery thread, now or after `delay_aws` seconds of AWS time (the aws profile)."""
        with self._idle:
            self._pending += 1
        if delay_aws <= 0:
            self._work.put((kind, payload))
            return
        timer = threading.Timer(delay_aws / self.time_scale, self._work.put, args=((kind, payload),))
        timer.daemon = True
        timer.start()

    # -- Lambda ------------------------------------------------------------------------

    def _spec(self, account: str, region: str, name_or_arn: str) -> FunctionSpec | None:
        fn = moto.get_function(account, region, name_or_arn)
        return None if fn is None else self._spec_of(fn, region)

    def _spec_of(self, fn: Any, region: str) -> FunctionSpec:
        fields = moto.function_fields(fn)
        role = fields.pop("role")
        if role not in self._credentials:
            self._credentials[role] = moto.mint_role_credentials(role, fields["name"], region)
        return FunctionSpec(credentials=self._credentials[role], region=region, **fields)

    def _invoke_lambda_async(self, arn: str, payload: bytes) -> None:
        account, region = arn.split(":")[4], arn.split(":")[3]
        fn = moto.get_function(account, region, arn)
        if fn is None:
            raise LookupError(f"function {arn} does not exist")
        spec = self._spec_of(fn, region)
        if moto.throttled(fn) or spec.arn in self._holding:
            # Lambda keeps a throttled asynchronous event and retries it for up to six hours (MaximumEventAgeInSeconds).
            with self._idle:
                self._held.setdefault(spec.arn, []).append((self.clock.now(), payload))
            return
        assert self.runtime is not None
        self.runtime.invoke_async(spec, payload)

    def _quiesce(self, name: str, headers: Mapping[str, str], body: bytes) -> None:
        """PutFunctionConcurrency 0: hold new events at once and let the running ones finish before it takes effect.

        Known difference: AWS returns at once and lets running invocations finish afterwards; here the call waits
        for them, so whoever throttles a function knows it is quiet when the call returns.
        """
        from urllib.parse import unquote

        if json.loads(body or b"{}").get("ReservedConcurrentExecutions") != 0 or self.runtime is None:
            return None
        fn = moto.get_function(moto.account_for_access_key(access_key_of(headers)), _region(headers), unquote(name))
        if fn is None:
            return None
        fields = moto.function_fields(fn)
        with self._idle:
            self._holding.add(fields["arn"])
        self.runtime.wait_idle(fields["arn"], timeout=fields["timeout_s"] + 5)
        return None

    def _release_held(self, account: str, region: str, name: str) -> None:
        """Concurrency is back: run the events held while the function was throttled, unless they aged out."""
        fn = moto.get_function(account, region, name)
        if fn is not None:
            with self._idle:
                self._holding.discard(moto.function_fields(fn)["arn"])  # moto's own setting rules from now on
        if fn is None or moto.throttled(fn) or self.runtime is None:
            return
        arn = moto.function_fields(fn)["arn"]
        with self._idle:
            held = self._held.pop(arn, [])
        spec = self._spec(account, region, arn)
        for at, payload in held:
            if self.clock.now() - at <= MAX_EVENT_AGE_S and spec is not None:
                self.runtime.invoke_async(spec, payload)

    def _invoke(self, name: str, headers: Mapping[str, str], body: bytes) -> Response:
        from urllib.parse import unquote

        key = access_key_of(headers)
        account = moto.account_for_access_key(key)
        region = _region(headers)
        spec = self._spec(account, region, unquote(name))
        if spec is None:
            return _json_error(404, "ResourceNotFoundException",
                               f"Function not found: arn:aws:lambda:{region}:{account}:function:{unquote(name)}")
        assert self.runtime is not None
        kind = headers.get("X-Amz-Invocation-Type", "RequestResponse")
        fn = moto.get_function(account, region, unquote(name))
        if kind == "Event" and fn is not None and moto.throttled(fn):
            self._invoke_lambda_async(spec.arn, body or b"{}")  # accepted, held until the function may run
            return 202, {"x-amzn-RequestId": secrets.token_hex(16)}, b""
        if fn is not None and moto.throttled(fn):
            return 429, {"Content-Type": "application/json", "x-amzn-ErrorType": "TooManyRequestsException"}, \
                json.dumps({"Type": "User", "message": "Rate Exceeded.",
                            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}).encode()
        if kind == "DryRun":
            return 204, {}, b""
        try:
            if kind == "Event":
                self.runtime.invoke_async(spec, body or b"{}")
                return 202, {"x-amzn-RequestId": secrets.token_hex(16)}, b""
            result = self.runtime.invoke(spec, body or b"{}")
        except InvalidRequestContent as exc:
            return _json_error(400, "InvalidRequestContentException", str(exc))
        except UnsupportedRuntime as exc:
            return _json_error(400, "InvalidRuntimeException", str(exc))
        out = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": result.request_id,
               "Content-Type": "application/json"}
        if result.function_error:
            out["X-Amz-Function-Error"] = result.function_error
        if headers.get("X-Amz-Log-Type") == "Tail":
            import base64

            out["X-Amz-Log-Result"] = base64.b64encode(result.log.encode()[-4096:]).decode()
        return 200, out, result.payload

    def _lambda_log(self, spec: FunctionSpec, request_id: str, result: InvokeResult) -> None:
        account = spec.arn.split(":")[4]
        day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
        stream = result.log_stream or f"{day}/[$LATEST]{request_id.replace('-', '')[:32]}"
        now = int(time.time() * 1000)
        # An unhandled error is one log event whose lines are joined by \r, as in AWS: split on \n only.
        lines = [(now, line) for line in result.log.split("\n") if line]
        if lines:
            moto.put_log_lines(f"/aws/lambda/{spec.name}", stream, lines, account_id=account,
                               region=spec.region, create_group=True)
        if result.function_error:
            log.warning("lambda %s failed: %s", spec.name, result.payload[:500])

    def lambda_errors(self) -> list[dict[str, Any]]:
        if self.runtime is None:
            return []
        return [{"function": name, "error": json.loads(r.payload or b"{}"), "log": r.log}
                for name, r in self.runtime.errors()]

    # -- CloudTrail and EventBridge APIs moto lacks ---------------------------------------

    def _lookup_events(self, body: bytes) -> Response:
        try:
            return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(
                self.history.lookup(json.loads(body or b"{}"))).encode()
        except LookupError as exc:
            code, message = exc.args
            return _json_error(400, code, message)

    def _validate_filter_pattern(self, body: bytes) -> Response | None:
        """AWS refuses a metric or subscription filter whose pattern does not parse; moto stores anything."""
        try:
            filterpattern.compile(json.loads(body or b"{}").get("filterPattern", ""))
        except filterpattern.FilterPatternError as exc:
            return _json_error(400, "InvalidParameterException", str(exc))
        return None

    def _test_metric_filter(self, body: bytes) -> Response:
        params = json.loads(body or b"{}")
        try:
            pattern = filterpattern.compile(params.get("filterPattern", ""))
        except filterpattern.FilterPatternError as exc:
            return _json_error(400, "InvalidParameterException", str(exc))
        matches = []
        for number, message in enumerate(params.get("logEventMessages") or [], start=1):
            match = pattern.match(message)
            if match is not None:
                matches.append({"eventNumber": number, "eventMessage": message, "extractedValues": match.extracted})
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps({"matches": matches}).encode()

    def _put_events(self, headers: Mapping[str, str], body: bytes) -> Response:
        params = json.loads(body or b"{}")
        entries = params.get("Entries") or []
        if not 1 <= len(entries) <= 10:
            return _json_error(400, "ValidationException",
                               "1 validation error detected: Value at 'entries' failed to satisfy constraint: "
                               "Member must have length between 1 and 10")
        account = moto.account_for_access_key(access_key_of(headers))
        accepted, results = put_events_entries(entries, account=account, region=_region(headers))
        for event, bus in accepted:
            self._enqueue("event", (event, bus))
        failed = sum(1 for r in results if "ErrorCode" in r)
        return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(
            {"FailedEntryCount": failed, "Entries": results}).encode()


def _json_error(status: int, code: str, message: str) -> Response:
    return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}, json.dumps(
        {"__type": code, "message": message}).encode()


def _credential_scope(headers: Mapping[str, str]) -> list[str]:
    auth = headers.get("Authorization", "")
    marker = "Credential="
    if marker not in auth:
        return []
    return auth.split(marker, 1)[1].split(",", 1)[0].split("/")


def access_key_of(headers: Mapping[str, str]) -> str | None:
    scope = _credential_scope(headers)
    return scope[0] if scope else None


def _region(headers: Mapping[str, str]) -> str:
    scope = _credential_scope(headers)
    return scope[2] if len(scope) > 2 else "us-east-1"
