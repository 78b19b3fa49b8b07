"""AWS Config in the plane: managed-rule evaluators, compliance results and events, remediation configurations."""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from harness.emulator import motoadapter as moto
from harness.emulator.apicall import ApiCall
from harness.emulator.automation import Automation, Outcome, Step
from harness.emulator.clock import PlaneClock
from harness.emulator.events import envelope

log = logging.getLogger("gameday.plane.config")

COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE = "COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"
INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
ACCOUNT = "AWS::::Account"
SECURITY_GROUP, VPC, IAM_USER, ALARM = "AWS::EC2::SecurityGroup", "AWS::EC2::VPC", "AWS::IAM::User", \
    "AWS::CloudWatch::Alarm"
FREQUENCY_S = {"One_Hour": 3600, "Three_Hours": 3 * 3600, "Six_Hours": 6 * 3600, "Twelve_Hours": 12 * 3600,
               "TwentyFour_Hours": 24 * 3600}
DEFAULT_FREQUENCY = "TwentyFour_Hours"  # AWS runs periodic rules every 24 hours unless told otherwise
DEFAULT_ATTEMPTS, DEFAULT_RETRY_S = 5, 60  # PutRemediationConfigurations' documented defaults
EVENT_DETAIL_TYPE = "Config Rules Compliance Change"
_JSON = {"Content-Type": "application/x-amz-json-1.1"}

RuleKey = tuple[str, str, str]  # account, region, rule name
ResourceKey = tuple[str, str]  # resource type, resource id
Response = tuple[int, dict[str, str], bytes]


# -- the managed rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """One resource's compliance with a rule, as an evaluator found it."""

    resource_type: str
    resource_id: str
    compliance: str
    tags: tuple[tuple[str, str], ...] = ()
    annotation: str | None = None


@dataclass(frozen=True)
class ManagedRule:
    """A managed rule by its identifier: what it reports on, how it is triggered, how it decides."""

    identifier: str
    resource_type: str
    periodic: bool
    change_triggered: bool
    evaluate: Callable[[str, str, dict, float], list[Evaluation]]
    changes: Callable[[ApiCall], list[str]] | None = None  # ids a call changed; ["*"] when it names none


def _account(account: str, ok: bool) -> list[Evaluation]:
    return [Evaluation(ACCOUNT, account, COMPLIANT if ok else NON_COMPLIANT)]


def _log_group(arn: str) -> str:
    return arn[:-2] if arn.endswith(":*") else arn


def _trail_matches(trail: dict, region: str, params: dict) -> bool:
    view = trail["view"]
    # DescribeTrails in a region lists its own trails and the multi-region trails of other regions.
    if view is None or not view.logging or not view.covers_region(region):
        return False
    if params.get("s3BucketName") and trail["bucket"] != params["s3BucketName"]:
        return False
    if params.get("snsTopicArn") and trail["sns_topic_arn"] != params["snsTopicArn"]:
        return False
    wanted = params.get("cloudWatchLogsLogGroupArn")
    return not wanted or _log_group(view.log_group_arn or "") == _log_group(wanted)


def _selects_management(view: moto.TrailView, include: bool, read_write: str) -> bool:
    """The trail's selectors include management events of the wanted read/write type, excluding no source."""
    if view.advanced_event_selectors:
        for selector in view.advanced_event_selectors:
            fields = {f.get("Field"): f for f in selector.get("FieldSelectors", [])}
            if "Management" not in fields.get("eventCategory", {}).get("Equals", []):
                continue
            if "eventSource" in fields:
                continue  # a selector narrowing or excluding event sources drops management events
            read_only = fields.get("readOnly", {}).get("Equals", [])
            mode = "ALL" if not read_only else "READONLY" if read_only == ["true"] else "WRITEONLY"
            if mode == read_write:
                return include
        return not include
    # A trail with no selectors has AWS's default one: all management events.
    selectors = view.event_selectors or ({"ReadWriteType": "All", "IncludeManagementEvents": True},)
    return any(bool(s.get("IncludeManagementEvents", True)) == include
               and str(s.get("ReadWriteType", "All")).upper() == read_write
               and not s.get("ExcludeManagementEventSources") for s in selectors)


def cloud_trail_enabled(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """NON_COMPLIANT unless a trail logs in the region (matching the bucket, topic and log group asked for)."""
    return _account(account, any(_trail_matches(t, region, params) for t in moto.trail_details(account)))


def multi_region_cloud_trail_enabled(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """NON_COMPLIANT unless a logging multi-region trail matches the parameters and records management events."""
    include = str(params.get("includeManagementEvents", "true")).lower() != "false"
    read_write = str(params.get("readWriteType", "ALL")).upper()
    ok = any(t["view"] is not None and t["view"].multi_region and _trail_matches(t, region, params)
             and _selects_management(t["view"], include, read_write) for t in moto.trail_details(account))
    return _account(account, ok)


def _ssh_open(group: dict) -> bool:
    for rule in group["ingress"]:
        if rule["protocol"] not in ("-1", "tcp"):
            continue
        if rule["protocol"] == "tcp" and not (rule["from"] is None or rule["from"] <= 22 <= rule["to"]):
            continue
        if rule["cidr"] == "0.0.0.0/0" or rule["cidr_v6"] == "::/0":
            return True
    return False


def incoming_ssh_disabled(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """Each security group: NON_COMPLIANT if it admits SSH (tcp 22, or all traffic) from 0.0.0.0/0 or ::/0."""
    return [Evaluation(SECURITY_GROUP, g["id"], NON_COMPLIANT if _ssh_open(g) else COMPLIANT,
                       tuple(sorted(g["tags"].items()))) for g in moto.security_groups(account, region)]


def vpc_flow_logs_enabled(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """Each VPC: COMPLIANT if an active flow log watches it (of the trafficType asked for, if any)."""
    traffic = str(params.get("trafficType") or "").upper()
    logs = [f for f in moto.flow_logs(account, region) if f["status"] == "ACTIVE"]
    out = []
    for vpc in moto.vpcs(account, region):
        ok = any(f["resource_id"] == vpc["id"] and (not traffic or f["traffic_type"] == traffic) for f in logs)
        out.append(Evaluation(VPC, vpc["id"], COMPLIANT if ok else NON_COMPLIANT, tuple(sorted(vpc["tags"].items()))))
    return out


def access_keys_rotated(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """Each IAM user (by its id): NON_COMPLIANT if an active key is older than maxAccessKeyAge days (AWS time).

    Known difference: moto stamps CreateDate in wall time while the plane clock runs ahead, so every key looks
    older by (wall seconds since the plane started) x (time scale - 1): hours at 60x, not days.
    """
    limit_s = float(params.get("maxAccessKeyAge", 90)) * 86400
    out = []
    for user in moto.iam_users(account):
        stale = any(k["status"] == "Active" and now - k["created"] > limit_s for k in user["keys"])
        out.append(Evaluation(IAM_USER, user["id"], NON_COMPLIANT if stale else COMPLIANT,
                              tuple(sorted(user["tags"].items()))))
    return out


def root_account_mfa_enabled(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """NON_COMPLIANT if the root user has no MFA (the plane's simulated fact, as GetAccountSummary shows it)."""
    return _account(account, moto.root_mfa_enabled(account))


def cloudwatch_alarm_action_enabled_check(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """Each metric alarm (by name): NON_COMPLIANT if its actions are disabled."""
    return [Evaluation(ALARM, a["name"], COMPLIANT if a["actions_enabled"] else NON_COMPLIANT,
                       tuple(sorted(a["tags"].items()))) for a in moto.alarm_settings(account, region)]


def guardduty_enabled_centralized(account: str, region: str, params: dict, now: float) -> list[Evaluation]:
    """COMPLIANT if an enabled detector watches the region; outside the central accounts it must report to one."""
    enabled = any(d.enabled for d in moto.guardduty_detectors(account, region))
    central = [a.strip() for a in str(params.get("CentralMonitoringAccount") or "").split(",") if a.strip()]
    if central and account not in central:
        enabled = enabled and moto.guardduty_administrator(account, region) in central
    return _account(account, enabled)


_SECURITY_GROUP_CALLS = frozenset({
    "CreateSecurityGroup", "DeleteSecurityGroup", "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress",
    "ModifySecurityGroupRules", "UpdateSecurityGroupRuleDescriptionsIngress", "CreateTags", "DeleteTags"})
_ALARM_CALLS = frozenset({"PutMetricAlarm", "DeleteAlarms", "EnableAlarmActions", "DisableAlarmActions",
                          "TagResource", "UntagResource"})


def _security_group_changes(call: ApiCall) -> list[str]:
    if call.service != "ec2" or call.operation not in _SECURITY_GROUP_CALLS:
        return []
    params = call.params
    if call.operation in ("CreateTags", "DeleteTags"):
        return [r for r in params.get("Resources", []) if str(r).startswith("sg-")]
    group = params.get("GroupId") or (call.response or {}).get("GroupId")
    return [group] if group else ["*"]  # named by GroupName only: every group is looked at again


def _alarm_changes(call: ApiCall) -> list[str]:
    if call.service != "cloudwatch" or call.operation not in _ALARM_CALLS:
        return []
    params = call.params
    if call.operation == "PutMetricAlarm":
        return [params.get("AlarmName", "")]
    if call.operation in ("TagResource", "UntagResource"):
        arn = params.get("ResourceARN", "")
        return [arn.split(":alarm:", 1)[1]] if ":alarm:" in arn else []
    return list(params.get("AlarmNames", []))


# Trigger types, resource types and parameters as AWS's managed-rule pages give them.
MANAGED_RULES: dict[str, ManagedRule] = {r.identifier: r for r in (
    ManagedRule("CLOUD_TRAIL_ENABLED", ACCOUNT, True, False, cloud_trail_enabled),
    ManagedRule("MULTI_REGION_CLOUD_TRAIL_ENABLED", ACCOUNT, True, False, multi_region_cloud_trail_enabled),
    ManagedRule("INCOMING_SSH_DISABLED", SECURITY_GROUP, True, True, incoming_ssh_disabled, _security_group_changes),
    ManagedRule("VPC_FLOW_LOGS_ENABLED", VPC, True, False, vpc_flow_logs_enabled),
    ManagedRule("ACCESS_KEYS_ROTATED", IAM_USER, True, False, access_keys_rotated),
    ManagedRule("ROOT_ACCOUNT_MFA_ENABLED", ACCOUNT, True, False, root_account_mfa_enabled),
    ManagedRule("CLOUDWATCH_ALARM_ACTION_ENABLED_CHECK", ALARM, False, True, cloudwatch_alarm_action_enabled_check,
                _alarm_changes),
    ManagedRule("GUARDDUTY_ENABLED_CENTRALIZED", ACCOUNT, True, False, guardduty_enabled_centralized),
)}
_TRIGGERS = frozenset({("ec2", op) for op in _SECURITY_GROUP_CALLS} | {("cloudwatch", op) for op in _ALARM_CALLS})


def in_scope(scope: dict, rule: ManagedRule, evaluation: Evaluation) -> bool:
    """Whether a rule's Scope (resource types, one resource id, or a tag) takes a resource.

    Known difference: AWS documents Scope as what triggers change evaluations; periodic per-resource rules
    here honour it too, and account-level rules ignore it.
    """
    if rule.resource_type == ACCOUNT:
        return True
    types = scope.get("ComplianceResourceTypes")
    if types and evaluation.resource_type not in types:
        return False
    if scope.get("ComplianceResourceId") and scope["ComplianceResourceId"] != evaluation.resource_id:
        return False
    if scope.get("TagKey"):
        tags = dict(evaluation.tags)
        if scope["TagKey"] not in tags or ("TagValue" in scope and tags[scope["TagKey"]] != scope["TagValue"]):
            return False
    return True


# -- results, events, the Config APIs moto lacks ----------------------------------------------------------


@dataclass
class Result:
    resource_type: str
    resource_id: str
    compliance: str
    annotation: str | None
    ordering: float
    recorded: float
    invoked: float


@dataclass
class RuleStatus:
    first_activated: float
    first_started: bool = False
    last_invoked: float | None = None
    last_evaluated: float | None = None


@dataclass
class Execution:
    """The latest remediation execution for one resource, as DescribeRemediationExecutionStatus shows it."""

    state: str
    invoked: float
    updated: float
    steps: list[Step] = field(default_factory=list)
    automatic: bool = False


@dataclass
class Series:
    """Automatic attempts since a resource became NON_COMPLIANT; spread over RetryAttemptSeconds."""

    start: float
    attempts: int = 0
    busy: bool = False


class ConfigError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    def response(self) -> Response:
        return 400, {**_JSON, "x-amzn-ErrorType": self.code}, json.dumps(
            {"__type": self.code, "message": self.message}).encode()


def _no_rule(name: str) -> ConfigError:
    return ConfigError("NoSuchConfigRuleException",
                       f"The ConfigRule '{name}' provided in the request is invalid. Please check the configRule name")


def _no_remediation() -> ConfigError:
    return ConfigError("NoSuchRemediationConfigurationException", "No RemediationConfiguration for rule exists.")


def _iso(epoch: float) -> str:
    at = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _page(items: list, params: dict, limit_key: str | None, default: int) -> tuple[list, str | None]:
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise ConfigError("InvalidNextTokenException", "The nextToken provided is invalid") from None
    limit = int(params.get(limit_key) or default) if limit_key else default
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else None)


def compliance_change_event(rule: moto.ConfigRuleView, account: str, region: str, new: Result,
                            old: Result | None, at: float) -> dict:
    """The "Config Rules Compliance Change" event (oldEvaluationResult absent on a resource's first result)."""
    detail: dict[str, Any] = {
        "resourceId": new.resource_id,
        "awsRegion": region,
        "awsAccountId": account,
        "configRuleName": rule.name,
        "recordVersion": "1.0",
        "configRuleARN": rule.arn,
        "messageType": "ComplianceChangeNotification",
        "newEvaluationResult": _event_result(rule.name, new),
    }
    if old is not None:
        detail["oldEvaluationResult"] = _event_result(rule.name, old)
    detail["notificationCreationTime"] = _iso(at)
    detail["resourceType"] = new.resource_type
    return envelope(source="aws.config", detail_type=EVENT_DETAIL_TYPE, detail=detail, account=account,
                    region=region, at=datetime.fromtimestamp(at, tz=timezone.utc))


def _event_result(rule_name: str, result: Result) -> dict:
    out = {"evaluationResultIdentifier": {
        "evaluationResultQualifier": {"configRuleName": rule_name, "resourceType": result.resource_type,
                                      "resourceId": result.resource_id},
        "orderingTimestamp": _iso(result.ordering)},
        "complianceType": result.compliance,
        "resultRecordedTime": _iso(result.recorded),
        "configRuleInvokedTime": _iso(result.invoked)}
    if result.annotation:
        out["annotation"] = result.annotation
    return out


class ConfigService:
    """Evaluates managed rules on calls and on the clock, keeps results, sends events, runs remediations.

    Evaluations and result changes run on the plane's delivery thread (`run_later`); remediation executions
    run on their own thread, at their due AWS time.
    """

    def __init__(self, *, clock: PlaneClock, run_later: Callable[[Callable[[], None]], None],
                 put_event: Callable[[dict], None], note_failure: Callable[[str], None]):
        self.clock = clock
        self._run_later = run_later
        self._put_event = put_event
        self._note_failure = note_failure
        self._lock = threading.RLock()
        self._results: dict[RuleKey, dict[ResourceKey, Result]] = {}
        self._status: dict[RuleKey, RuleStatus] = {}
        self._next_due: dict[RuleKey, float] = {}
        self._remediations: dict[RuleKey, dict] = {}
        self._executions: dict[RuleKey, dict[ResourceKey, Execution]] = {}
        self._series: dict[tuple[RuleKey, ResourceKey], Series] = {}
        self._exceptions: dict[RuleKey, dict[ResourceKey, dict]] = {}
        self._places: set[tuple[str, str]] = set()
        self.endpoint_url = ""
        self._worker = _Worker(clock, self._execute, note_failure)
        self._handlers: dict[str, Callable[[str, str, dict], dict | None]] = {
            "DescribeComplianceByConfigRule": self._describe_compliance_by_rule,
            "GetComplianceDetailsByConfigRule": self._compliance_details,
            "DescribeComplianceByResource": self._describe_compliance_by_resource,
            "StartConfigRulesEvaluation": self._start_evaluation,
            "DescribeConfigRuleEvaluationStatus": self._evaluation_status,
            "PutRemediationConfigurations": self._put_remediations,
            "DescribeRemediationConfigurations": self._describe_remediations,
            "DeleteRemediationConfiguration": self._delete_remediation,
            "DescribeRemediationExecutionStatus": self._execution_status,
            "StartRemediationExecution": self._start_remediation,
            "DescribeRemediationExceptions": self._describe_exceptions,
            "DeleteRemediationExceptions": self._delete_exceptions,
            "DeleteConfigRule": self._guard_rule_deletion,
        }

    def start(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        moto.default_root_mfa_enabled()
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    # -- what the plane hands over -------------------------------------------------------------------

    def serve(self, operation: str, account: str, region: str, body: bytes) -> Response | None:
        """Answer a Config API call moto lacks (StarlingDoveService.<operation>); None lets moto answer."""
        handler = self._handlers.get(operation)
        if handler is None:
            return None
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return ConfigError("SerializationException", "Request body is not valid JSON").response()
        try:
            out = handler(account, region, params)
        except ConfigError as exc:
            return exc.response()
        if out is None:
            return None
        return 200, dict(_JSON), json.dumps(out).encode()

    def follow(self, call: ApiCall, account: str) -> None:
        """React to a successful call (delivery thread): rules created or deleted, recorder started, changes."""
        if call.service == "config":
            self._follow_config(call, account)
        elif (call.service, call.operation) in _TRIGGERS:
            for view in moto.config_rules(account, call.region):
                rule = MANAGED_RULES.get(view.identifier) if view.owner == "AWS" else None
                if rule is None or rule.changes is None:
                    continue
                ids = rule.changes(call)
                if ids:
                    self._evaluate((account, call.region, view.name), view, rule, "change", ids)

    def tick(self, places: list[tuple[str, str]]) -> None:
        """Queue the periodic evaluations that are due (clock thread)."""
        now = self.clock.now()
        with self._lock:
            config_places = sorted(self._places)
        for account, region in config_places:
            for view in moto.config_rules(account, region):
                rule = MANAGED_RULES.get(view.identifier) if view.owner == "AWS" else None
                if rule is None or not rule.periodic:
                    continue
                key = (account, region, view.name)
                with self._lock:
                    due = self._next_due.get(key)
                    if due is not None and now < due:
                        continue
                    self._next_due[key] = now + FREQUENCY_S.get(view.frequency or DEFAULT_FREQUENCY, 86400)
                self._run_later(lambda key=key: self._evaluate_rule(key, "periodic"))

    def set_root_mfa(self, account: str, enabled: bool) -> dict:
        moto.set_root_mfa(account, enabled)
        return {"account": account, "AccountMFAEnabled": int(enabled)}

    def age_access_key(self, account: str, user: str, key: str, days: float) -> dict:
        return {"account": account, "user": user, "AccessKeyId": key,
                "CreateDate": moto.age_access_key(account, user, key, days)}

    # -- evaluation (delivery thread) --------------------------------------------------------------

    def _follow_config(self, call: ApiCall, account: str) -> None:
        region, params = call.region, call.params
        with self._lock:
            self._places.add((account, region))
        if call.operation == "PutConfigRule":
            rule = params.get("ConfigRule") or {}
            name = rule.get("ConfigRuleName") or next(
                (v.name for v in moto.config_rules(account, region)
                 if v.arn == rule.get("ConfigRuleArn") or v.rule_id == rule.get("ConfigRuleId")), "")
            key = (account, region, name)
            view = moto.config_rule(account, region, name)
            managed = MANAGED_RULES.get(view.identifier) if view is not None and view.owner == "AWS" else None
            with self._lock:
                self._status.setdefault(key, RuleStatus(first_activated=self.clock.now()))
                if managed is not None and managed.periodic:
                    self._next_due[key] = self.clock.now() + FREQUENCY_S.get(view.frequency or DEFAULT_FREQUENCY,
                                                                             86400)
            self._evaluate_rule(key, "created")  # AWS evaluates a new or updated rule at once
        elif call.operation == "DeleteConfigRule":
            self._forget((account, region, params.get("ConfigRuleName", "")))
        elif call.operation == "StartConfigurationRecorder":
            # A started recorder takes an inventory: every resource it records is evaluated again.
            for view in moto.config_rules(account, region):
                rule = MANAGED_RULES.get(view.identifier) if view.owner == "AWS" else None
                if rule is not None and rule.change_triggered:
                    self._evaluate((account, region, view.name), view, rule, "change", ["*"])

    def _evaluate_rule(self, key: RuleKey, trigger: str) -> None:
        view = moto.config_rule(*key)
        rule = MANAGED_RULES.get(view.identifier) if view is not None and view.owner == "AWS" else None
        if rule is None:
            return  # Known difference: custom Lambda and Guard rules, and other managed rules, are not evaluated.
        self._evaluate(key, view, rule, trigger, ["*"])

    def _may_evaluate(self, rule: ManagedRule, account: str, region: str, trigger: str) -> bool:
        """Change triggers need the recorder; periodic ones do not (AWS keeps running them with it stopped)."""
        recording = moto.config_recording(account, region, rule.resource_type)
        if trigger == "periodic":
            return rule.periodic
        if trigger == "change":
            return rule.change_triggered and recording
        # Created, on demand or after a remediation: a change-only rule sees the last recorded state.
        return rule.periodic or recording

    def _evaluate(self, key: RuleKey, view: moto.ConfigRuleView, rule: ManagedRule, trigger: str,
                  ids: list[str]) -> None:
        account, region, _ = key
        if not self._may_evaluate(rule, account, region, trigger):
            return
        invoked = self.clock.now()
        with self._lock:
            status = self._status.setdefault(key, RuleStatus(first_activated=invoked))
            status.last_invoked = invoked
        try:
            found = [e for e in rule.evaluate(account, region, view.parameters, invoked)
                     if in_scope(view.scope, rule, e)]
        except Exception as exc:  # a broken evaluator is an error on the rule, not a dead plane
            log.exception("config rule %s failed", view.name)
            self._note_failure(f"config rule {view.name}: {type(exc).__name__}: {exc}")
            return
        if "*" in ids:
            self._record(key, view, found, invoked, full=True)
            return
        wanted = set(ids)
        chosen = [e for e in found if e.resource_id in wanted]
        gone = [(rule.resource_type, i) for i in wanted - {e.resource_id for e in chosen}]
        self._record(key, view, chosen, invoked, dropped=gone)

    def _record(self, key: RuleKey, view: moto.ConfigRuleView, found: list[Evaluation], invoked: float, *,
                full: bool = False, dropped: list[ResourceKey] = ()) -> None:
        account, region, _ = key
        now = self.clock.now()
        changes, failing = [], []
        with self._lock:
            if moto.config_rule(account, region, view.name) is None:
                return  # deleted while the evaluation ran
            results = self._results.setdefault(key, {})
            seen = set()
            for e in found:
                rk = (e.resource_type, e.resource_id)
                seen.add(rk)
                old = results.get(rk)
                new = Result(e.resource_type, e.resource_id, e.compliance, e.annotation, invoked, now, invoked)
                results[rk] = new
                if old is None or old.compliance != new.compliance:
                    changes.append((new, old))
                if new.compliance == NON_COMPLIANT:
                    failing.append(rk)
                else:
                    self._series.pop((key, rk), None)
            for rk in set(dropped) | (set(results) - seen if full else set()):
                results.pop(rk, None)  # deleted resources (or out of scope) leave no result behind
                self._series.pop((key, rk), None)
            status = self._status.setdefault(key, RuleStatus(first_activated=invoked))
            status.first_started, status.last_evaluated = True, now
        for new, old in changes:
            self._put_event(compliance_change_event(view, account, region, new, old, now))
        for rk in failing:
            self._consider(key, rk)

    def _forget(self, key: RuleKey) -> None:
        with self._lock:
            for store in (self._results, self._status, self._next_due, self._remediations, self._executions,
                          self._exceptions):
                store.pop(key, None)
            for pair in [p for p in self._series if p[0] == key]:
                del self._series[pair]

    # -- remediation ---------------------------------------------------------------------------------

    def _consider(self, key: RuleKey, rk: ResourceKey) -> None:
        """A NON_COMPLIANT result: queue the next automatic attempt, or add a remediation exception when spent."""
        now = self.clock.now()
        with self._lock:
            config = self._remediations.get(key)
            if not config or not config.get("Automatic"):
                return
            if config.get("ResourceType") and config["ResourceType"] != rk[0]:
                return
            if rk in self._exceptions.get(key, {}):
                return
            series = self._series.setdefault((key, rk), Series(start=now))
            if series.busy:
                return
            attempts = int(config.get("MaximumAutomaticAttempts") or DEFAULT_ATTEMPTS)
            window = float(config.get("RetryAttemptSeconds") or DEFAULT_RETRY_S)
            if series.attempts >= attempts:
                self._exceptions.setdefault(key, {})[rk] = {
                    "Message": f"Auto-remediation did not make the resource compliant in {attempts} attempts "
                               f"within {window:g} seconds"}
                return
            # AWS spreads the attempts over the window ("5 times within 50 seconds").
            due = max(now, series.start + series.attempts * window / attempts)
            series.attempts += 1
            series.busy = True
            self._executions.setdefault(key, {})[rk] = Execution("QUEUED", now, now, automatic=True)
        self._worker.submit(due, (key, rk, True))

    def _execute(self, job: tuple[RuleKey, ResourceKey, bool]) -> None:
        """Run one remediation execution (worker thread), then re-evaluate the resource on the delivery thread."""
        key, rk, automatic = job
        account, region, rule_name = key
        with self._lock:
            config = self._remediations.get(key)
            execution = self._executions.get(key, {}).get(rk)
            if config is None or execution is None:
                return
            execution.state, execution.updated = "IN_PROGRESS", self.clock.now()
        outcome = self._run_document(account, region, config, rk, execution)
        with self._lock:
            execution.state, execution.steps, execution.updated = outcome.state, outcome.steps, self.clock.now()
        if outcome.state == "FAILED":
            self._note_failure(f"config remediation {rule_name} {rk[0]} {rk[1]}: {outcome.error}")
        self._run_later(lambda: self._after_attempt(key, rk, automatic))

    def _run_document(self, account: str, region: str, config: dict, rk: ResourceKey,
                      execution: Execution) -> Outcome:
        name = config.get("TargetId", "")
        document = moto.ssm_document(account, region, name, config.get("TargetVersion"))
        if document is None:
            # Known difference: moto holds no AWS-owned documents (AWS-*, AWSConfigRemediation-*): define them.
            return Outcome("FAILED", [], f"SSM document {name} does not exist in {account} {region}")
        if document["type"] != "Automation":
            return Outcome("FAILED", [], f"SSM document {name} is a {document['type']} document, not Automation")
        given = {}
        for param, value in (config.get("Parameters") or {}).items():
            given[param] = rk[1] if "ResourceValue" in value else list((value.get("StaticValue") or {})
                                                                       .get("Values", []))

        def progress(steps: list[Step]) -> None:
            with self._lock:
                execution.steps, execution.updated = [Step(**vars(s)) for s in steps], self.clock.now()

        automation = Automation(endpoint_url=self.endpoint_url, account=account, region=region, now=self.clock.now,
                                on_progress=progress)
        try:
            return automation.run(document["content"], given)
        except Exception as exc:  # the plane outlives any document
            return Outcome("FAILED", execution.steps, f"{type(exc).__name__}: {exc}")

    def _after_attempt(self, key: RuleKey, rk: ResourceKey, automatic: bool) -> None:
        with self._lock:
            series = self._series.get((key, rk))
            if automatic and series is not None:
                series.busy = False
        view = moto.config_rule(*key)
        rule = MANAGED_RULES.get(view.identifier) if view is not None and view.owner == "AWS" else None
        if rule is None:
            return
        # Known difference: AWS re-evaluates a periodic rule at its next run; the plane looks again at once.
        self._evaluate(key, view, rule, "remediated", [rk[1]])
        with self._lock:
            current = self._results.get(key, {}).get(rk)
        if automatic and current is not None and current.compliance == NON_COMPLIANT:
            self._consider(key, rk)  # a stopped recorder leaves the recorded result, and remediation goes on

    # -- the APIs (request threads) ------------------------------------------------------------------

    def _rule_names(self, account: str, region: str, names: list[str] | None) -> list[str]:
        existing = [v.name for v in moto.config_rules(account, region)]
        for name in names or []:
            if name not in existing:
                raise _no_rule(name)
        return list(names) if names else existing

    def _rule_compliance(self, key: RuleKey) -> dict:
        with self._lock:
            results = list(self._results.get(key, {}).values())
        failing = sum(r.compliance == NON_COMPLIANT for r in results)
        if failing:
            return {"ComplianceType": NON_COMPLIANT,
                    "ComplianceContributorCount": {"CappedCount": min(failing, 100), "CapExceeded": failing > 100}}
        if any(r.compliance == COMPLIANT for r in results):
            return {"ComplianceType": COMPLIANT}
        return {"ComplianceType": NOT_APPLICABLE if results else INSUFFICIENT_DATA}

    def _describe_compliance_by_rule(self, account: str, region: str, params: dict) -> dict:
        wanted = params.get("ComplianceTypes") or []
        items = []
        for name in self._rule_names(account, region, params.get("ConfigRuleNames")):
            compliance = self._rule_compliance((account, region, name))
            if not wanted or compliance["ComplianceType"] in wanted:
                items.append({"ConfigRuleName": name, "Compliance": compliance})
        page, token = _page(items, params, None, 1000)
        return {"ComplianceByConfigRules": page, **({"NextToken": token} if token else {})}

    def _compliance_details(self, account: str, region: str, params: dict) -> dict:
        name = params.get("ConfigRuleName", "")
        self._rule_names(account, region, [name])
        # NOT_APPLICABLE results are listed only when asked for (the console's "All" shows the other two).
        wanted = params.get("ComplianceTypes") or [COMPLIANT, NON_COMPLIANT]
        if INSUFFICIENT_DATA in wanted:
            raise ConfigError("InvalidParameterValueException",
                              "INSUFFICIENT_DATA cannot be used as a ComplianceType for filtering results")
        with self._lock:
            results = sorted((r for r in self._results.get((account, region, name), {}).values()
                              if r.compliance in wanted), key=lambda r: (r.resource_type, r.resource_id))
        page, token = _page(results, params, "Limit", 100)
        return {"EvaluationResults": [_api_result(name, r) for r in page], **({"NextToken": token} if token else {})}

    def _describe_compliance_by_resource(self, account: str, region: str, params: dict) -> dict:
        kind, ident = params.get("ResourceType"), params.get("ResourceId")
        if ident and not kind:
            raise ConfigError("InvalidParameterValueException",
                              "A resource type must be specified when a resource id is specified")
        by_resource: dict[ResourceKey, list[Result]] = {}
        with self._lock:
            for (acct, reg, _), results in self._results.items():
                if (acct, reg) != (account, region):
                    continue
                for rk, result in results.items():
                    if (not kind or rk[0] == kind) and (not ident or rk[1] == ident):
                        by_resource.setdefault(rk, []).append(result)
        wanted = params.get("ComplianceTypes") or []
        items = []
        for rk in sorted(by_resource):
            results = by_resource[rk]
            failing = sum(r.compliance == NON_COMPLIANT for r in results)
            compliance = {"ComplianceType": NON_COMPLIANT, "ComplianceContributorCount": {
                "CappedCount": min(failing, 100), "CapExceeded": failing > 100}} if failing else \
                {"ComplianceType": COMPLIANT if any(r.compliance == COMPLIANT for r in results) else NOT_APPLICABLE}
            if not wanted or compliance["ComplianceType"] in wanted:
                items.append({"ResourceType": rk[0], "ResourceId": rk[1], "Compliance": compliance})
        if kind and ident and not items and not wanted:
            items.append({"ResourceType": kind, "ResourceId": ident,
                          "Compliance": {"ComplianceType": INSUFFICIENT_DATA}})
        page, token = _page(items, params, "Limit", 100)
        return {"ComplianceByResources": page, **({"NextToken": token} if token else {})}

    def _start_evaluation(self, account: str, region: str, params: dict) -> dict:
        names = params.get("ConfigRuleNames") or []
        if not 1 <= len(names) <= 25:
            raise ConfigError("InvalidParameterValueException", "Specify between 1 and 25 config rule names")
        self._rule_names(account, region, names)
        with self._lock:
            self._places.add((account, region))
        for name in names:
            self._run_later(lambda key=(account, region, name): self._evaluate_rule(key, "on-demand"))
        return {}

    def _evaluation_status(self, account: str, region: str, params: dict) -> dict:
        names = self._rule_names(account, region, params.get("ConfigRuleNames"))
        items = []
        for name in names:
            view = moto.config_rule(account, region, name)
            if view is None:
                continue
            item: dict[str, Any] = {"ConfigRuleName": name, "ConfigRuleArn": view.arn, "ConfigRuleId": view.rule_id}
            with self._lock:
                status = self._status.get((account, region, name))
            if status is not None:
                item["FirstActivatedTime"] = status.first_activated
                if status.last_invoked is not None:
                    item["LastSuccessfulInvocationTime"] = status.last_invoked
                if status.last_evaluated is not None:
                    item["LastSuccessfulEvaluationTime"] = status.last_evaluated
            item["FirstEvaluationStarted"] = bool(status and status.first_started)
            items.append(item)
        page, token = _page(items, params, "Limit", 50)
        return {"ConfigRulesEvaluationStatus": page, **({"NextToken": token} if token else {})}

    def _put_remediations(self, account: str, region: str, params: dict) -> dict:
        configs = params.get("RemediationConfigurations") or []
        for config in configs:
            name = config.get("ConfigRuleName", "")
            if moto.config_rule(account, region, name) is None:
                # AWS requires the rule to exist; the error code it answers with is not documented.
                raise _no_rule(name)
            if config.get("TargetType") != "SSM_DOCUMENT":
                raise ConfigError("InvalidParameterValueException", "The TargetType must be SSM_DOCUMENT")
            for param, value in (config.get("Parameters") or {}).items():
                if ("ResourceValue" in value) == ("StaticValue" in value):
                    raise ConfigError("InvalidParameterValueException",
                                      f"Parameter {param} needs exactly one of ResourceValue and StaticValue")
        stored = []
        with self._lock:
            self._places.add((account, region))
            for config in configs:
                key = (account, region, config["ConfigRuleName"])
                old = self._remediations.get(key)
                arn = old["Arn"] if old else \
                    f"arn:aws:config:{region}:{account}:remediation-configuration/{key[2]}/{uuid.uuid4()}"
                self._remediations[key] = {**{k: v for k, v in config.items() if k not in ("Arn", "CreatedByService")},
                                           "Arn": arn}
                stored.append(key)
        for key in stored:
            # Enabling automatic remediation remediates every resource already recorded as NON_COMPLIANT.
            self._run_later(lambda key=key: self._remediate_recorded(key))
        return {"FailedBatches": []}

    def _remediate_recorded(self, key: RuleKey) -> None:
        with self._lock:
            failing = [rk for rk, r in self._results.get(key, {}).items() if r.compliance == NON_COMPLIANT]
        for rk in failing:
            self._consider(key, rk)

    def _describe_remediations(self, account: str, region: str, params: dict) -> dict:
        names = params.get("ConfigRuleNames") or []
        with self._lock:
            found = [dict(c) for (acct, reg, name), c in self._remediations.items()
                     if (acct, reg) == (account, region) and (not names or name in names)]
        return {"RemediationConfigurations": found}

    def _delete_remediation(self, account: str, region: str, params: dict) -> dict:
        key = (account, region, params.get("ConfigRuleName", ""))
        with self._lock:
            if key not in self._remediations:
                raise _no_remediation()
            if any(e.state in ("QUEUED", "IN_PROGRESS") for e in self._executions.get(key, {}).values()):
                raise ConfigError("RemediationInProgressException",
                                  "Remediation action is in progress. You can either cancel execution in AWS Systems "
                                  "Manager or wait and try again later.")
            del self._remediations[key]
            self._executions.pop(key, None)
            for pair in [p for p in self._series if p[0] == key]:
                del self._series[pair]
        return {}

    def _execution_status(self, account: str, region: str, params: dict) -> dict:
        key = (account, region, params.get("ConfigRuleName", ""))
        keys = {(k.get("resourceType"), k.get("resourceId")) for k in params.get("ResourceKeys") or []}
        with self._lock:
            if key not in self._remediations:
                raise _no_remediation()
            items = [_api_execution(rk, e) for rk, e in sorted(self._executions.get(key, {}).items(),
                                                               key=lambda item: item[1].invoked)
                     if not keys or rk in keys]
        page, token = _page(items, params, "Limit", 100)
        return {"RemediationExecutionStatuses": page, **({"NextToken": token} if token else {})}

    def _start_remediation(self, account: str, region: str, params: dict) -> dict:
        key = (account, region, params.get("ConfigRuleName", ""))
        keys = params.get("ResourceKeys") or []
        if not 1 <= len(keys) <= 100:
            raise ConfigError("InvalidParameterValueException", "Specify between 1 and 100 resource keys")
        failed, queued = [], []
        now = self.clock.now()
        with self._lock:
            if key not in self._remediations:
                raise _no_remediation()
            for item in keys:
                rk = (item.get("resourceType", ""), item.get("resourceId", ""))
                current = self._executions.get(key, {}).get(rk)
                if current is not None and current.state in ("QUEUED", "IN_PROGRESS"):
                    failed.append(item)  # the earlier execution for this resource must finish first
                    continue
                self._executions.setdefault(key, {})[rk] = Execution("QUEUED", now, now)
                queued.append(rk)
        for rk in queued:
            self._worker.submit(now, (key, rk, False))
        out: dict[str, Any] = {"FailedItems": failed}
        if failed:
            out["FailureMessage"] = "A remediation execution for these resources is already in progress"
        return out

    def _describe_exceptions(self, account: str, region: str, params: dict) -> dict:
        name = params.get("ConfigRuleName", "")
        keys = {(k.get("ResourceType"), k.get("ResourceId")) for k in params.get("ResourceKeys") or []}
        with self._lock:
            items = [{"ConfigRuleName": name, "ResourceType": rk[0], "ResourceId": rk[1], **exc}
                     for rk, exc in sorted(self._exceptions.get((account, region, name), {}).items())
                     if not keys or rk in keys]
        page, token = _page(items, params, "Limit", 100)
        return {"RemediationExceptions": page, **({"NextToken": token} if token else {})}

    def _delete_exceptions(self, account: str, region: str, params: dict) -> dict:
        key = (account, region, params.get("ConfigRuleName", ""))
        failed = []
        with self._lock:
            exceptions = self._exceptions.get(key, {})
            for item in params.get("ResourceKeys") or []:
                rk = (item.get("ResourceType"), item.get("ResourceId"))
                if exceptions.pop(rk, None) is None:
                    failed.append(item)
                else:
                    self._series.pop((key, rk), None)  # a later NON_COMPLIANT result starts a fresh series
        batches = [{"FailureMessage": "No remediation exception for these resources", "FailedItems": failed}] \
            if failed else []
        return {"FailedBatches": batches}

    def _guard_rule_deletion(self, account: str, region: str, params: dict) -> dict | None:
        """AWS refuses to delete a rule that still has a remediation configuration; else moto deletes it."""
        name = params.get("ConfigRuleName", "")
        with self._lock:
            if (account, region, name) in self._remediations:
                raise ConfigError("ResourceInUseException",
                                  f"The rule {name} currently has a RemediationConfiguration. Please delete the "
                                  "RemediationConfiguration and try again.")
        return None


def _api_result(rule_name: str, r: Result) -> dict:
    out = {"EvaluationResultIdentifier": {
        "EvaluationResultQualifier": {"ConfigRuleName": rule_name, "ResourceType": r.resource_type,
                                      "ResourceId": r.resource_id, "EvaluationMode": "DETECTIVE"},
        "OrderingTimestamp": r.ordering},
        "ComplianceType": r.compliance, "ResultRecordedTime": r.recorded, "ConfigRuleInvokedTime": r.invoked}
    if r.annotation:
        out["Annotation"] = r.annotation
    return out


def _api_execution(rk: ResourceKey, e: Execution) -> dict:
    steps = []
    for s in e.steps:
        step: dict[str, Any] = {"Name": s.name, "State": s.state}
        if s.error:
            step["ErrorMessage"] = s.error
        if s.start is not None:
            step["StartTime"] = s.start
        if s.stop is not None:
            step["StopTime"] = s.stop
        steps.append(step)
    return {"ResourceKey": {"resourceType": rk[0], "resourceId": rk[1]}, "State": e.state, "StepDetails": steps,
            "InvocationTime": e.invoked, "LastUpdatedTime": e.updated}


class _Worker:
    """Runs remediation executions one at a time on its own thread, each at its due AWS time."""

    def __init__(self, clock: PlaneClock, run: Callable[[Any], None], note_failure: Callable[[str], None]):
        self._clock = clock
        self._run = run
        self._note_failure = note_failure
        self._jobs: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="gameday-remediation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def submit(self, due: float, job: Any) -> None:
        with self._ready:
            heapq.heappush(self._jobs, (due, next(self._seq), job))
            self._ready.notify_all()

    def _loop(self) -> None:
        while True:
            with self._ready:
                job = None
                while not self._stopping and job is None:
                    if self._jobs and self._jobs[0][0] <= self._clock.now():
                        job = heapq.heappop(self._jobs)[2]
                        break
                    wait = (self._jobs[0][0] - self._clock.now()) / self._clock.time_scale if self._jobs else 1.0
                    self._ready.wait(min(max(wait, 0.001), 1.0))
                if self._stopping:
                    return
            try:
                self._run(job)
            except Exception as exc:  # one broken execution must not stop the others
                log.exception("remediation failed")
                self._note_failure(f"config remediation: {type(exc).__name__}: {exc}")
