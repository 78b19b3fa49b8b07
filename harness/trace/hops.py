"""The hops: one check per link of the chain, each a verdict (status, evidence, one-line fix) from the facts."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError

from harness.emulator.alarms import AlarmSpec, Evaluation, sns_notification
from harness.errors import HarnessBroken
from harness.stack.desired import CIS_CONTROLS
from harness.trace.facts import NOT_FOUND, Facts, Missing
from harness.trace.filterpolicy import filter_drops
from harness.trace.policy import acts_on, everyone, exempts, key_allows, names_service, statements_of
from harness.trace.records import sample_record
from harness.trace.report import BROKEN, HOP_IDS, OK, SKIPPED, UNKNOWN, Hop

DELIVERY_WINDOW_S = 3600  # a trail that delivered nothing for an hour of a live account is not delivering
FAILED_ACTION = "Failed to execute action"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com")
KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# Topic-policy actions a Deny must cover (AWS's topic policies cannot name Unsubscribe), then those reported too.
PROTECTED = ("sns:DeleteTopic", "sns:SetTopicAttributes")
ALSO_PROTECTED = ("sns:RemovePermission", "sns:AddPermission")
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")


Verdict = tuple[str, str, str]  # status, evidence, fix


def ok(evidence: str) -> Verdict:
    return OK, evidence, ""


def broken(evidence: str, fix: str) -> Verdict:
    return BROKEN, evidence, fix


def check_trail_exists(f: Facts) -> Verdict:
    try:
        trail = f.trail()
    except Missing as exc:
        return broken(f"{exc} (GetTrail)", f"recreate it: aws cloudtrail create-trail --name {f.stack.trail_name} "
                      f"--s3-bucket-name {f.stack.bucket_name} --is-multi-region-trail (or redeploy the stack)")
    scope = "multi-region" if trail.get("IsMultiRegionTrail") else f"single-region ({trail.get('HomeRegion')})"
    return ok(f"trail {trail['Name']} exists, {scope}")


def check_trail_logging(f: Facts) -> Verdict:
    status = f.trail_status()
    if status.get("IsLogging"):
        return ok(f"IsLogging true since {status.get('StartLoggingTime') or status.get('TimeLoggingStarted')}")
    stopped = status.get("StopLoggingTime") or status.get("TimeLoggingStopped") or "an unknown time"
    return broken(f"IsLogging false: logging stopped at {stopped} (GetTrailStatus)",
                  f"aws cloudtrail start-logging --name {f.stack.trail_name}")


def check_trail_selectors(f: Facts) -> Verdict:
    answer = f.selectors()
    record = sample_record(f.control, account_id=f.aws.account_id, region=f.aws.region)
    advanced, basic = answer.get("AdvancedEventSelectors") or [], answer.get("EventSelectors") or []
    fix = (f"aws cloudtrail put-event-selectors --trail-name {f.stack.trail_name} --event-selectors "
           "'[{\"ReadWriteType\":\"All\",\"IncludeManagementEvents\":true}]'")
    if advanced:
        chosen = [s.get("Name") or "unnamed" for s in advanced if _advanced_selects(s, record)]
        if chosen:
            return ok(f"advanced selector {chosen[0]!r} logs management write events like {record['eventName']}")
        return broken(f"no advanced event selector logs management write events such as {record['eventName']} "
                      f"({record['eventSource']})", fix)
    for selector in basic:
        if _basic_selects(selector, record):
            return ok(f"management events selected (ReadWriteType {selector.get('ReadWriteType', 'All')})")
    if not basic:
        return broken("the trail has no event selectors (GetEventSelectors)", fix)
    return broken(f"no event selector logs management write events such as {record['eventName']}: "
                  f"{json.dumps(basic)}", fix)


def _basic_selects(selector: dict, record: dict) -> bool:
    if not selector.get("IncludeManagementEvents", True):
        return False
    if selector.get("ReadWriteType", "All") not in ("All", "WriteOnly" if not record["readOnly"] else "ReadOnly"):
        return False
    return record["eventSource"] not in (selector.get("ExcludeManagementEventSources") or [])


def _advanced_selects(selector: dict, record: dict) -> bool:
    """Every field selector holds for the record (fields a management record lacks are data-event fields)."""
    values = {"eventCategory": record["eventCategory"], "readOnly": str(record["readOnly"]).lower(),
              "eventSource": record["eventSource"], "eventName": record["eventName"], "eventType": record["eventType"]}
    for fs in selector.get("FieldSelectors", []):
        value = values.get(fs.get("Field"))
        if value is None:
            return False
        tests = {
            "Equals": lambda v, xs: v in xs, "NotEquals": lambda v, xs: v not in xs,
            "StartsWith": lambda v, xs: any(v.startswith(x) for x in xs),
            "NotStartsWith": lambda v, xs: not any(v.startswith(x) for x in xs),
            "EndsWith": lambda v, xs: any(v.endswith(x) for x in xs),
            "NotEndsWith": lambda v, xs: not any(v.endswith(x) for x in xs),
        }
        for op, test in tests.items():
            if op in fs and not test(value, fs[op]):
                return False
    return True


def check_trail_delivery(f: Facts) -> Verdict:
    trail = f.trail()
    target = (trail.get("CloudWatchLogsLogGroupArn") or "").removesuffix(":*")
    fix_target = (f"aws cloudtrail update-trail --name {f.stack.trail_name} --cloud-watch-logs-log-group-arn "
                  f"{f.stack.log_group_arn}:* --cloud-watch-logs-role-arn <role CloudTrail assumes to write logs>")
    if not target:
        return broken("the trail sends nothing to CloudWatch Logs (no CloudWatchLogsLogGroupArn)", fix_target)
    if target != f.stack.log_group_arn and target.split(":log-group:")[-1] != f.stack.log_group_name:
        return broken(f"the trail sends to {target}, not to the stack's log group {f.stack.log_group_name}",
                      fix_target)
    try:
        stream = f.latest_trail_stream()
    except Missing as exc:
        return broken(f"{exc} (DescribeLogStreams)", f"aws logs create-log-group --log-group-name "
                      f"{f.stack.log_group_name}, then {fix_target}")
    fix_role = (f"check that {trail.get('CloudWatchLogsRoleArn') or 'the trail role'} trusts cloudtrail.amazonaws.com "
                f"and allows logs:CreateLogStream and logs:PutLogEvents on {f.stack.log_group_arn}:*")
    if stream is None:
        return broken(f"log group {f.stack.log_group_name} has no stream from CloudTrail", fix_role)
    last_ms = stream.get("lastIngestionTime") or stream.get("lastEventTimestamp") or 0
    age = f.now.timestamp() - last_ms / 1000
    when = datetime.fromtimestamp(last_ms / 1000, timezone.utc).isoformat(timespec="seconds")
    if age > DELIVERY_WINDOW_S:
        return broken(f"the last CloudTrail event reached {f.stack.log_group_name} at {when}, "
                      f"{age / 60:.0f} min ago", fix_role)
    return ok(f"stream {stream['logStreamName']} received an event {max(age, 0):.0f} s ago ({when})")


def check_filter_exists(f: Facts) -> Verdict:
    try:
        mf = f.metric_filter()
    except Missing as exc:
        return broken(f"{exc} (DescribeMetricFilters)", _put_filter_command(f))
    t = (mf.get("metricTransformations") or [{}])[0]
    return ok(f"filter {mf['filterName']} emits {t.get('metricNamespace')}/{t.get('metricName')}")


def check_filter_matches(f: Facts) -> Verdict:
    mf = f.metric_filter()
    record = sample_record(f.control, account_id=f.aws.account_id, region=f.aws.region)
    if not f.filter_matches():
        return broken(f"pattern {mf['filterPattern']!r} does not match a real-shaped {record['eventName']} record "
                      f"(TestMetricFilter)", _put_filter_command(f))
    transformations = mf.get("metricTransformations") or []
    try:
        alarm = f.alarm()
    except Missing:
        return ok(f"pattern matches a {record['eventName']} record (alarm missing: metric not compared)")
    watched = (alarm.get("Namespace"), alarm.get("MetricName"))
    emitted = [(t.get("metricNamespace"), t.get("metricName")) for t in transformations]
    if watched not in emitted:
        return broken(f"filter emits {', '.join('/'.join(map(str, e)) for e in emitted) or 'no metric'}, the alarm "
                      f"watches {'/'.join(map(str, watched))}", _put_filter_command(f))
    return ok(f"pattern matches a {record['eventName']} record and emits the alarm's metric {'/'.join(watched)}")


def _put_filter_command(f: Facts) -> str:
    cis = next(c for c in CIS_CONTROLS["controls"] if c["id"] == f.control)
    try:
        namespace, metric = f.alarm()["Namespace"], f.alarm()["MetricName"]
    except Missing:
        namespace, metric = CIS_CONTROLS["alarm"]["namespace"], cis["metricName"]
    return (f"aws logs put-metric-filter --log-group-name {f.stack.log_group_name} --filter-name "
            f"{f.stack.metric_filter_names[f.control]} --filter-pattern '{cis['filterPattern']}' "
            f"--metric-transformations metricName={metric},metricNamespace={namespace},metricValue=1")


def check_alarm_exists(f: Facts) -> Verdict:
    try:
        alarm = f.alarm()
    except Missing as exc:
        return broken(f"{exc} (DescribeAlarms)", _put_alarm_command(f, None))
    return ok(f"alarm {alarm['AlarmName']} exists, state {alarm.get('StateValue')}")


def check_alarm_actions_enabled(f: Facts) -> Verdict:
    alarm = f.alarm()
    if not alarm.get("ActionsEnabled"):
        return broken("ActionsEnabled is false: the alarm changes state but notifies nobody",
                      f"aws cloudwatch enable-alarm-actions --alarm-names {alarm['AlarmName']}")
    if not alarm.get("AlarmActions"):
        return broken("AlarmActions is empty: ALARM notifies nobody", _put_alarm_command(f, alarm))
    return ok(f"actions enabled: {', '.join(alarm['AlarmActions'])}")


def check_alarm_can_fire(f: Facts) -> Verdict:
    alarm = f.alarm()
    if alarm.get("Metrics"):
        return UNKNOWN, "the alarm uses metric math: Gameday checks single-metric alarms only", ""
    fix = _put_alarm_command(f, alarm)
    problems = []
    try:
        t = (f.metric_filter().get("metricTransformations") or [{}])[0]
    except Missing:
        t = {}
    if t and (t.get("metricNamespace"), t.get("metricName")) != (alarm.get("Namespace"), alarm.get("MetricName")):
        problems.append(f"it watches {alarm.get('Namespace')}/{alarm.get('MetricName')}, the filter emits "
                        f"{t.get('metricNamespace')}/{t.get('metricName')}")
    if t and alarm.get("Dimensions") and not t.get("dimensions"):
        problems.append(f"it watches dimensions {alarm['Dimensions']} the filter never emits")
    if alarm.get("Unit") and t and t.get("unit", "None") != alarm["Unit"]:
        problems.append(f"it watches unit {alarm['Unit']}, the filter emits {t.get('unit', 'None')}")
    problems += _one_event_fires(alarm, t.get("metricValue", "1"))
    m, n = alarm.get("DatapointsToAlarm") or alarm.get("EvaluationPeriods", 1), alarm.get("EvaluationPeriods", 1)
    if not 1 <= m <= n:
        problems.append(f"DatapointsToAlarm {m} is not between 1 and EvaluationPeriods {n}")
    elif m > 1:
        problems.append(f"it needs {m} breaching periods of {alarm.get('Period')} s out of {n}; one event fills one")
    if problems:
        return broken("; ".join(problems), fix)
    return ok(f"one matching event reaches {alarm.get('Statistic') or alarm.get('ExtendedStatistic')} "
              f"{_OPERATORS.get(alarm['ComparisonOperator'], alarm['ComparisonOperator'])} {alarm['Threshold']:g} "
              f"in {alarm.get('Period')} s")


_OPERATORS = {"GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">",
              "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}


def _one_event_fires(alarm: dict, metric_value: str) -> list[str]:
    """Problems that keep one matching event (one datapoint of metric_value) from crossing the threshold."""
    op, threshold, period = alarm["ComparisonOperator"], float(alarm["Threshold"]), alarm.get("Period")
    statistic = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
    if op not in ("GreaterThanOrEqualToThreshold", "GreaterThanThreshold"):
        return [f"it fires when {statistic} is {_OPERATORS.get(op, op)} {threshold:g}: matching events only raise it"]
    if statistic == "SampleCount":
        value = 1.0
    else:
        try:
            value = float(metric_value)
        except ValueError:  # the filter extracts its value from the event: cannot tell from here
            return []
    if statistic in ("Sum", "SampleCount"):
        if value <= 0:
            return [f"each event adds {value:g}: {statistic} never rises to {threshold:g}"]
        needed = math.ceil(threshold / value) if op == "GreaterThanOrEqualToThreshold" else \
            math.floor(threshold / value) + 1
        if needed > 1:
            return [f"it needs {needed:.0f} matching events in {period} s (threshold {threshold:g}, "
                    f"each event adds {value:g})"]
        return []
    fires = value >= threshold if op == "GreaterThanOrEqualToThreshold" else value > threshold
    return [] if fires else [f"one event's value {value:g} never reaches {statistic} {_OPERATORS[op]} {threshold:g}"]


def _put_alarm_command(f: Facts, alarm: dict | None) -> str:
    cis = next(c for c in CIS_CONTROLS["controls"] if c["id"] == f.control)
    defaults = CIS_CONTROLS["alarm"]
    a = alarm or {}
    return (f"aws cloudwatch put-metric-alarm --alarm-name {f.stack.alarm_names[f.control]} "
            f"--metric-name {a.get('MetricName') or cis['metricName']} "
            f"--namespace {a.get('Namespace') or defaults['namespace']} --statistic Sum "
            f"--period {a.get('Period') or defaults['period']} --evaluation-periods 1 --threshold 1 "
            f"--comparison-operator GreaterThanOrEqualToThreshold --treat-missing-data notBreaching "
            f"--alarm-actions {f.stack.topic_arn}")


def check_alarm_targets_topic(f: Facts) -> Verdict:
    alarm = f.alarm()
    actions = alarm.get("AlarmActions", [])
    problems = []
    if f.stack.topic_arn not in actions:
        problems.append(f"the alarm actions {actions} do not include the security topic {f.stack.topic_arn}")
    for arn, error in f.action_topics().items():
        if error is None:
            continue
        if isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in NOT_FOUND:
            problems.append(f"action topic {arn} does not exist")
        else:
            return UNKNOWN, f"GetTopicAttributes {arn}: {error}", permission_fix(error)
    if problems:
        return broken("; ".join(problems), _put_alarm_command(f, alarm))
    return ok(f"actions include {f.stack.topic_arn}; every other action topic exists")


def check_alarm_history(f: Facts) -> Verdict:
    alarm = f.alarm()
    failed = [i for i in f.alarm_history() if i.get("HistorySummary", "").startswith(FAILED_ACTION)]
    if not failed:
        return ok("no failed action in the last 24 h of AWS time (or since the alarm was last configured)")
    latest = failed[0]
    summary = latest["HistorySummary"]
    if "kms" in summary.lower():
        fix = (f"let cloudwatch.amazonaws.com use the topic's key: allow kms:Decrypt and kms:GenerateDataKey* in "
               f"{f.stack.topic_key_arn or 'the topic key'}'s key policy")
    elif "not exist" in summary.lower() or "notfound" in summary.lower().replace(" ", ""):
        fix = _put_alarm_command(f, alarm)
    else:
        fix = "fix what the error names; the next state change retries the action"
    return broken(f"{len(failed)} failed action(s); latest at {latest.get('Timestamp')}: \"{summary}\"", fix)


def check_topic_exists(f: Facts) -> Verdict:
    try:
        attrs = f.topic()
    except Missing as exc:
        name = f.stack.topic_arn.rsplit(":", 1)[-1]
        return broken(f"{exc} (GetTopicAttributes)", f"aws sns create-topic --name {name}, then re-subscribe its "
                      "subscribers and point the alarms at it (or redeploy the stack)")
    return ok(f"topic {attrs.get('TopicArn', f.stack.topic_arn)} exists")


def check_topic_policy(f: Facts) -> Verdict:
    statements = statements_of(f.topic().get("Policy"))
    role = f.stack.break_glass_role_arn
    fix = (f"add to {f.stack.topic_arn}'s policy a Deny of {', '.join(PROTECTED + ALSO_PROTECTED)} for Principal "
           f"AWS * with Condition ArnNotEquals aws:PrincipalArn {role or '<break-glass role ARN>'} "
           f"(aws sns set-topic-attributes --attribute-name Policy)")
    for service in PUBLISHERS:
        denying = [s for s in statements if s.get("Effect") == "Deny" and acts_on(s, "sns:Publish")
                   and (names_service(s, service) or everyone(s) and not s.get("Condition"))]
        if denying:
            return broken(f"statement {denying[0].get('Sid', '(no Sid)')!r} denies sns:Publish to {service}",
                          f"remove that statement from {f.stack.topic_arn}'s policy")
    if role is None:
        return broken("the stack outputs name no break_glass_role_arn: nothing shows the topic is protected from "
                      "deletion, and no one is named to repair it", fix + "; then set break_glass_role_arn in "
                      "the stack file")
    guards = [s for s in statements if s.get("Effect") == "Deny" and (everyone(s) or "NotPrincipal" in s)]
    exempting = [s for s in guards if exempts(s, role)]
    denied = [a for a in PROTECTED + ALSO_PROTECTED if any(acts_on(s, a) for s in exempting)]
    missing = [a for a in PROTECTED if a not in denied]
    if missing:
        locking = [s for s in guards if not exempts(s, role) and any(acts_on(s, a) for a in PROTECTED)]
        why = f"; statement {locking[0].get('Sid', '(no Sid)')!r} locks out {role} too" if locking else ""
        return broken(f"no Deny exempting {role} covers {', '.join(missing)}{why}", fix)
    return ok(f"denies {', '.join(denied)} to all but {role}")


def check_topic_kms(f: Facts) -> Verdict:
    key_id = f.topic().get("KmsMasterKeyId")
    if not key_id:
        return ok("not encrypted")
    if key_id in (AWS_MANAGED_SNS_KEY, f"arn:aws:kms:{f.aws.region}:{f.aws.account_id}:{AWS_MANAGED_SNS_KEY}"):
        return broken(f"the topic uses the AWS managed key {AWS_MANAGED_SNS_KEY}, whose policy cannot let CloudWatch "
                      "publish", f"encrypt it with a customer managed key: aws sns set-topic-attributes --topic-arn "
                      f"{f.stack.topic_arn} --attribute-name KmsMasterKeyId --attribute-value <key ARN>")
    try:
        meta, policy = f.key()
    except Missing as exc:
        return broken(f"the topic's {exc}", f"point the topic at an existing key: aws sns set-topic-attributes "
                      f"--topic-arn {f.stack.topic_arn} --attribute-name KmsMasterKeyId --attribute-value <key ARN>")
    if meta.get("KeyManager") == "AWS":
        return broken(f"{key_id} is an AWS managed key: its policy cannot let CloudWatch publish",
                      "encrypt the topic with a customer managed key")
    if meta.get("KeyState") != "Enabled":
        command = "cancel-key-deletion" if meta.get("KeyState") == "PendingDeletion" else "enable-key"
        return broken(f"key {meta['KeyId']} is {meta.get('KeyState')}", f"aws kms {command} --key-id {meta['KeyId']}")
    statements = statements_of(policy)
    lacking = [f"{service} {action}*" if action.endswith("DataKey") else f"{service} {action}"
               for service in PUBLISHERS for action in KEY_ACTIONS if not key_allows(statements, service, action)]
    if lacking:
        return broken(f"key policy of {meta['KeyId']} does not allow {', '.join(lacking)}",
                      f"add an Allow of kms:Decrypt and kms:GenerateDataKey* for Service {', '.join(PUBLISHERS)} "
                      f"to the key policy: aws kms put-key-policy --key-id {meta['KeyId']} --policy-name default "
                      "--policy file://key-policy.json")
    return ok(f"key {meta['KeyId']} is enabled and lets {', '.join(PUBLISHERS)} use it")


def check_subscriptions_exist(f: Facts) -> Verdict:
    subs = f.subscriptions()
    if not subs:
        return broken("the topic has no subscriptions: notifications go nowhere",
                      f"aws sns subscribe --topic-arn {f.stack.topic_arn} --protocol sqs "
                      f"--notification-endpoint {f.stack.sink_queue_arn}")
    try:
        sink = f.sink_queue_arn()
    except Missing as exc:
        return broken(f"the {exc}", f"aws sqs create-queue --queue-name {f.stack.sink_queue_arn.rsplit(':', 1)[-1]}, "
                      f"then subscribe it to {f.stack.topic_arn}")
    if not any(s.get("Protocol") == "sqs" and s.get("Endpoint") == sink for s in subs):
        return broken(f"the sink queue {sink} is not subscribed ({len(subs)} other subscription(s))",
                      f"aws sns subscribe --topic-arn {f.stack.topic_arn} --protocol sqs --notification-endpoint "
                      f"{sink}")
    endpoints = ", ".join(f"{s.get('Protocol')} {s.get('Endpoint')}" for s in subs)
    return ok(f"{len(subs)} subscription(s), the sink among them: {endpoints}")


def check_subscriptions_confirmed(f: Facts) -> Verdict:
    attrs = f.subscription_attributes()
    pending = [s["Endpoint"] for s in f.subscriptions() if s["SubscriptionArn"] == "PendingConfirmation"]
    for s in f.subscriptions():
        answer = attrs.get(s["SubscriptionArn"])
        if isinstance(answer, dict) and answer.get("PendingConfirmation") == "true":
            pending.append(s["Endpoint"])
        elif isinstance(answer, Exception):
            return UNKNOWN, f"GetSubscriptionAttributes {s['SubscriptionArn']}: {answer}", permission_fix(answer)
    if pending:
        return broken(f"pending confirmation: {', '.join(pending)}",
                      f"confirm the subscription from the message sent to {pending[0]} (unconfirmed subscriptions are "
                      "deleted after 48 hours; an e-mail endpoint is suspended back to PendingConfirmation when it "
                      "gets more than 10 messages a second)")
    return ok(f"all {len(f.subscriptions())} subscription(s) confirmed")


def check_subscriptions_filter(f: Facts) -> Verdict:
    attrs = f.subscription_attributes()
    body: dict | None = None
    for s in f.subscriptions():
        answer = attrs.get(s["SubscriptionArn"])
        if isinstance(answer, Exception):
            return UNKNOWN, f"GetSubscriptionAttributes {s['SubscriptionArn']}: {answer}", permission_fix(answer)
        if not answer or not answer.get("FilterPolicy"):
            continue
        policy = json.loads(answer["FilterPolicy"])
        scope = answer.get("FilterPolicyScope") or "MessageAttributes"
        if scope == "MessageBody":
            body = body if body is not None else alarm_notification(f.alarm(), f.aws)
            dropped_by = filter_drops(policy, body)
        else:  # alarm notifications carry no message attributes
            dropped_by = filter_drops(policy, {})
        if dropped_by is not None:
            return broken(f"{s['Protocol']} {s['Endpoint']}: {scope} filter policy {answer['FilterPolicy']} drops the "
                          f"ALARM notification (at {dropped_by})",
                          f"aws sns set-subscription-attributes --subscription-arn {s['SubscriptionArn']} "
                          "--attribute-name FilterPolicy --attribute-value '{}'")
    return ok("no subscription filter policy drops an ALARM notification")


def alarm_notification(alarm: dict, aws: Any) -> dict:
    """The JSON body CloudWatch publishes for this alarm going to ALARM (the plane's builder, real-shaped)."""
    spec = AlarmSpec(
        name=alarm["AlarmName"], arn=alarm["AlarmArn"], namespace=alarm.get("Namespace", ""),
        metric_name=alarm.get("MetricName", ""),
        dimensions=tuple((d["Name"], d["Value"]) for d in alarm.get("Dimensions", [])),
        period=alarm.get("Period", 300), evaluation_periods=alarm.get("EvaluationPeriods", 1),
        datapoints_to_alarm=alarm.get("DatapointsToAlarm"), threshold=float(alarm.get("Threshold", 1)),
        comparison=alarm.get("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        statistic=alarm.get("Statistic"), extended_statistic=alarm.get("ExtendedStatistic"),
        treat_missing_data=alarm.get("TreatMissingData", "missing"), unit=alarm.get("Unit"))
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    evaluation = Evaluation("ALARM", f"Threshold Crossed: 1 datapoint [1.0] was greater than or equal to the "
                            f"threshold ({spec.threshold}).", {}, True)
    return sns_notification(spec, old_state="OK", evaluation=evaluation, account_id=aws.account_id, region=aws.region,
                            actions={"ALARM": alarm.get("AlarmActions", []), "OK": alarm.get("OKActions", []),
                                     "INSUFFICIENT_DATA": alarm.get("InsufficientDataActions", [])},
                            description=alarm.get("AlarmDescription"), updated_at=now, state_change_time=now)


def check_subscriptions_delivery(f: Facts) -> Verdict:
    alarm = f.delivery_alarm()
    if alarm is not None:
        # The stack watches its own deliveries: its alarm says whether they are failing now, period by period.
        if alarm.get("StateValue") == "ALARM":
            return broken(f"alarm {alarm['AlarmName']} is in ALARM: {alarm.get('StateReason', '')}",
                          f"find the failing endpoint among aws sns list-subscriptions-by-topic --topic-arn "
                          f"{f.stack.topic_arn} (queue policy, Lambda permission, key grant, HTTPS endpoint up)")
        return ok(f"alarm {alarm['AlarmName']} on AWS/SNS NumberOfNotificationsFailed is {alarm.get('StateValue')}")
    failed = f.failed_notifications()
    if failed:
        return broken(f"AWS/SNS NumberOfNotificationsFailed is {failed:g} for {f.stack.topic_arn.rsplit(':', 1)[-1]} "
                      "in the last 15 minutes of AWS time: a subscriber refuses deliveries",
                      f"find the failing endpoint among aws sns list-subscriptions-by-topic --topic-arn "
                      f"{f.stack.topic_arn} (queue policy, Lambda permission, key grant, HTTPS endpoint up)")
    return ok("no failed notification in the last 15 minutes of AWS time (AWS/SNS NumberOfNotificationsFailed)")


def check_rules_enabled(f: Facts) -> Verdict:
    problems, fixes, fine = [], [], []
    notifying = {f.stack.rule_name, f.stack.alarms_rule_name, f.stack.sns_rule_name}  # the tampering rules
    for name, answer in f.rules().items():
        if isinstance(answer, Missing):
            problems.append(f"rule {name} does not exist")
            fixes.append(f"recreate rule {name} (redeploy the stack)")
        elif isinstance(answer, Exception):
            return UNKNOWN, f"ListTargetsByRule {name}: {answer}", permission_fix(answer)
        else:
            rule, targets = answer
            if rule.get("State") not in ENABLED_STATES:
                problems.append(f"rule {name} is {rule.get('State')}")
                fixes.append(f"aws events enable-rule --name {name}")
            elif not targets:
                problems.append(f"rule {name} has no targets")
                fixes.append(f"aws events put-targets --rule {name} "
                             f"--targets Id=security-topic,Arn={f.stack.topic_arn}")
            elif name in notifying and not any(":sns:" in t.get("Arn", "") for t in targets):
                # A tampering rule whose only target repairs quietly: what it catches reaches nobody.
                problems.append(f"rule {name} notifies no SNS topic")
                fixes.append(f"aws events put-targets --rule {name} "
                             f"--targets Id=security-topic,Arn={f.stack.fallback_topic_arn or f.stack.topic_arn}")
            else:
                fine.append(name)
    if problems:
        return broken("; ".join(problems), fixes[0])
    return ok(f"{len(fine)} rule(s) enabled with targets: {', '.join(fine)}")


def permission_fix(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return f"let this caller run {error.operation_name} (the trace only reads), then retry"
    return "check the endpoint and credentials, then retry"


HOPS: tuple[tuple[str, str, Callable[[Facts], Verdict]], ...] = (
    ("trail.exists", "the trail exists", check_trail_exists),
    ("trail.logging", "the trail is logging", check_trail_logging),
    ("trail.selectors", "management write events are selected", check_trail_selectors),
    ("trail.delivery", "the trail delivers to the log group", check_trail_delivery),
    ("filter.exists", "the control's metric filter exists", check_filter_exists),
    ("filter.matches", "the filter matches the tampering record", check_filter_matches),
    ("alarm.exists", "the alarm exists", check_alarm_exists),
    ("alarm.actions_enabled", "the alarm's actions are enabled", check_alarm_actions_enabled),
    ("alarm.can_fire", "one event can fire the alarm", check_alarm_can_fire),
    ("alarm.targets_topic", "the alarm notifies the security topic", check_alarm_targets_topic),
    ("alarm.history", "no alarm action failed", check_alarm_history),
    ("topic.exists", "the security topic exists", check_topic_exists),
    ("topic.policy", "the topic policy protects it", check_topic_policy),
    ("topic.kms", "publishers can use the topic's key", check_topic_kms),
    ("subscriptions.exist", "the topic has subscribers, the sink among them", check_subscriptions_exist),
    ("subscriptions.confirmed", "every subscription is confirmed", check_subscriptions_confirmed),
    ("subscriptions.filter", "no filter policy drops the alarm", check_subscriptions_filter),
    ("subscriptions.delivery", "deliveries are not failing", check_subscriptions_delivery),
    ("rules.enabled", "the stack's EventBridge rules are enabled", check_rules_enabled),
)
assert tuple(h[0] for h in HOPS) == HOP_IDS


def run_hop(hop_id: str, title: str, check: Callable[[Facts], Verdict], facts: Facts) -> Hop:
    try:
        status, evidence, fix = check(facts)
    except Missing as exc:  # something an earlier hop reports broken
        status, evidence, fix = SKIPPED, f"not checked: {exc}", ""
    except (ClientError, BotoCoreError, HarnessBroken) as exc:  # the harness could not see: not the stack's fault
        status, evidence, fix = UNKNOWN, f"{type(exc).__name__}: {exc}", permission_fix(exc)
    return Hop(hop_id, title, status, evidence, fix)
