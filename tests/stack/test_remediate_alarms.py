"""The CIS alarms remediation handler, run in-process from its deployed zip against a deployed stack on moto."""

import ast
import hashlib
import importlib.util
import io
import json
import logging
import os
import zipfile

import pytest
import requests
from cis_state import ACCOUNT, REGION, Clients, cis_state, desired_cis_state

from harness.stack import deploy as deploy_module
from harness.stack.deploy import code_sha256, deploy, function_zip
from harness.stack.desired import ALARMS_DESIRED_FILE, ALARMS_FUNCTION_SOURCE, FUNCTION_ENV_VAR, desired_state

EVENT = {
    "source": "aws.monitoring",
    "detail-type": "AWS API Call via CloudTrail",
    "detail": {"eventName": "DeleteAlarms",
               "requestParameters": {"alarmNames": ["gameday-cis-4-3-root_usage_metric"]}},
}
ROOT_ALARM = "gameday-cis-4-3-root_usage_metric"
SG_FILTER = "gameday-cis-4-10"


@pytest.fixture(scope="module")
def stack(moto_url, tmp_path_factory):
    """One deployed stack, and the handler loaded as Lambda would: from the deployed zip, with its environment."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    client = Clients(moto_url)
    desired = desired_state(account_id=ACCOUNT, region=REGION)
    deploy(client, desired)
    fn = desired.alarms_function
    config = client("lambda").get_function_configuration(FunctionName=fn.name)
    code = function_zip(fn.source, fn.bundle)
    assert config["CodeSha256"] == code_sha256(code)
    task = tmp_path_factory.mktemp("task")
    zipfile.ZipFile(io.BytesIO(code)).extractall(task)
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", moto_url)
        env.setenv("AWS_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv(FUNCTION_ENV_VAR, config["Environment"]["Variables"][FUNCTION_ENV_VAR])
        spec = importlib.util.spec_from_file_location("remediate_alarms", task / "remediate_alarms.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # module-level clients pick up the environment above
        yield client, desired, module


@pytest.fixture
def aws(stack):
    """The shared stack's clients; whatever a test leaves drifted is deployed back before the next one."""
    client, desired, _ = stack
    yield client
    if cis_state(client, desired) != desired_cis_state(desired):
        deploy(client, desired)


@pytest.fixture
def desired(stack):
    return stack[1]


@pytest.fixture
def handler(stack):
    return stack[2].handler


def _alarm(desired, control_id):
    return next(c.alarm for c in desired.controls if c.id == control_id)


def _filter(desired, control_id):
    return next(c.metric_filter for c in desired.controls if c.id == control_id)


def _put_root_alarm(aws, desired, **changes):
    aws("cloudwatch").put_metric_alarm(**{**_alarm(desired, "4.3").put_params(), **changes})


def _put_sg_filter(aws, desired, **changes):
    aws("logs").put_metric_filter(**{**_filter(desired, "4.10").put_params(), **changes})


def test_healthy_stack_needs_no_action(aws, desired, handler, caplog):
    with caplog.at_level(logging.INFO):
        assert handler(EVENT, None) == {"actions": []}
    assert not [r for r in caplog.records if r.name == "gameday.remediate_alarms"]
    assert cis_state(aws, desired) == desired_cis_state(desired)


TAMPERING = {
    "threshold-raised": (lambda c, d: _put_root_alarm(c, d, Threshold=1000000.0),
                         [f"PutMetricAlarm {ROOT_ALARM} (Threshold)"]),
    "actions-disabled": (lambda c, d: c("cloudwatch").disable_alarm_actions(AlarmNames=[ROOT_ALARM]),
                         [f"EnableAlarmActions {ROOT_ALARM}"]),
    "alarm-deleted": (lambda c, d: c("cloudwatch").delete_alarms(AlarmNames=[ROOT_ALARM]),
                      [f"PutMetricAlarm {ROOT_ALARM} (recreated)"]),
    "actions-removed": (lambda c, d: _put_root_alarm(c, d, AlarmActions=[]),
                        [f"PutMetricAlarm {ROOT_ALARM} (AlarmActions)"]),
    "evaluation-loosened": (lambda c, d: _put_root_alarm(
        c, d, ComparisonOperator="GreaterThanThreshold", Period=86400, EvaluationPeriods=5, Statistic="Average"),
        [f"PutMetricAlarm {ROOT_ALARM} (Statistic, Period, EvaluationPeriods, ComparisonOperator)"]),
    "missing-data-ignored": (lambda c, d: _put_root_alarm(c, d, TreatMissingData="ignore"),
                             [f"PutMetricAlarm {ROOT_ALARM} (TreatMissingData)"]),
    "metric-moved": (lambda c, d: _put_root_alarm(c, d, Namespace="Elsewhere", MetricName="nothing"),
                     [f"PutMetricAlarm {ROOT_ALARM} (MetricName, Namespace)"]),
    "disabled-and-raised": (lambda c, d: _put_root_alarm(c, d, ActionsEnabled=False, Threshold=5.0),
                            [f"PutMetricAlarm {ROOT_ALARM} (ActionsEnabled, Threshold)"]),
    "filter-deleted": (lambda c, d: c("logs").delete_metric_filter(logGroupName=d.log_group.name,
                                                                   filterName=SG_FILTER),
                       [f"PutMetricFilter {SG_FILTER} (recreated)"]),
    "filter-pattern": (lambda c, d: _put_sg_filter(c, d, filterPattern='{ $.eventName = "NeverCalled" }'),
                       [f"PutMetricFilter {SG_FILTER} (filterPattern)"]),
    # moto appends on PutMetricFilter: the same filter twice is an emulator's state, and still put back to one
    "filter-duplicated": (lambda c, d: _put_sg_filter(c, d), [f"PutMetricFilter {SG_FILTER} (duplicated)"]),
    "filter-metric-renamed": (lambda c, d: _put_sg_filter(c, d, metricTransformations=[
        {"metricName": "unwatched", "metricNamespace": "CISBenchmark", "metricValue": "1"}]),
        [f"PutMetricFilter {SG_FILTER} (metricTransformations)"]),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_each_tampering_is_put_back(aws, desired, handler, tampering):
    tamper, actions = TAMPERING[tampering]
    tamper(aws, desired)
    assert cis_state(aws, desired) != desired_cis_state(desired)

    assert handler(EVENT, None) == {"actions": actions}

    assert cis_state(aws, desired) == desired_cis_state(desired)


def test_everything_at_once_then_idempotent(aws, desired, handler, caplog):
    cw = aws("cloudwatch")
    others = [c.alarm.name for c in desired.controls if c.id in ("4.1", "4.2")]
    cw.delete_alarms(AlarmNames=[ROOT_ALARM])
    cw.disable_alarm_actions(AlarmNames=others)
    _put_root_alarm(aws, desired)  # recreated by the attacker, then raised: the handler must still see it as drift
    _put_root_alarm(aws, desired, Threshold=1000000.0)
    aws("logs").delete_metric_filter(logGroupName=desired.log_group.name, filterName="gameday-cis-4-1")
    _put_sg_filter(aws, desired, filterPattern="{ $.eventName = NeverCalled }")

    with caplog.at_level(logging.INFO):
        actions = handler(EVENT, None)["actions"]

    assert actions == [
        f"PutMetricAlarm {ROOT_ALARM} (Threshold)",
        f"EnableAlarmActions {', '.join(others)}",
        "PutMetricFilter gameday-cis-4-1 (recreated)",
        f"PutMetricFilter {SG_FILTER} (filterPattern)",
    ]
    logged = [r for r in caplog.records if r.name == "gameday.remediate_alarms"]
    assert [r.getMessage() for r in logged] == actions
    assert {r.levelno for r in logged} == {logging.INFO}
    assert handler(EVENT, None) == {"actions": []}
    report = deploy(aws, desired)  # the deploy's own drift check agrees nothing is left
    assert not report.changed, report.changes


def test_a_desired_file_other_than_the_deployed_one_is_refused(stack, handler, monkeypatch):
    pointer = json.loads(os.environ[FUNCTION_ENV_VAR])
    monkeypatch.setenv(FUNCTION_ENV_VAR, json.dumps({**pointer, "sha256": hashlib.sha256(b"other").hexdigest()}))
    with pytest.raises(RuntimeError, match="desired.json does not match GAMEDAY_DESIRED"):
        handler(EVENT, None)


def test_environment_is_compact_and_the_zip_carries_the_desired_state():
    longest = desired_state(account_id=ACCOUNT, region="ap-southeast-4", prefix="a" * 20)
    fn = longest.alarms_function
    assert sum(len(k.encode()) + len(v.encode()) for k, v in fn.environment.items()) < 4096
    code = function_zip(fn.source, fn.bundle)
    archive = zipfile.ZipFile(io.BytesIO(code))
    assert archive.namelist() == [ALARMS_DESIRED_FILE, "remediate_alarms.py"]
    bundled = archive.read(ALARMS_DESIRED_FILE)
    assert hashlib.sha256(bundled).hexdigest() == json.loads(fn.environment[FUNCTION_ENV_VAR])["sha256"]
    assert json.loads(bundled) == {
        "alarms": [c.alarm.put_params() for c in longest.controls],
        "metric_filters": [c.metric_filter.put_params() for c in longest.controls],
    }


def test_zip_is_deterministic_and_moves_with_the_desired_state(tmp_path):
    fn = desired_state(account_id=ACCOUNT, region=REGION).alarms_function
    first = function_zip(fn.source, fn.bundle)
    copy = tmp_path / fn.source.name
    copy.write_bytes(fn.source.read_bytes())
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    assert function_zip(copy, dict(fn.bundle)) == first
    assert function_zip(fn.source, fn.bundle) == first
    silent = desired_state(account_id=ACCOUNT, region=REGION, sabotage="detection").alarms_function
    assert function_zip(silent.source, silent.bundle) != first
    assert silent.environment != fn.environment
    with pytest.raises(ValueError, match="would replace remediate_alarms.py"):
        function_zip(fn.source, {"remediate_alarms.py": "x"})


def _moto_alarm(desired):
    return {**_alarm(desired, "4.3").put_params(), "AlarmArn": "arn", "OKActions": [], "InsufficientDataActions": [],
            "Dimensions": [], "Metrics": [], "StateValue": "OK"}


ALARM_ANSWERS = {
    "moto-healthy": ({}, []),
    "aws-healthy": ({"DatapointsToAlarm": 1, "Threshold": 1, "Metrics": None, "Dimensions": None}, []),
    "missing-data-unset": ({"TreatMissingData": None}, ["TreatMissingData"]),
    "unit-set": ({"Unit": "Seconds"}, ["Unit"]),
    "percentile": ({"Statistic": None, "ExtendedStatistic": "p99"}, ["Statistic", "ExtendedStatistic"]),
    "ok-action-added": ({"OKActions": ["arn:aws:sns:us-east-1:123456789012:x"]}, ["OKActions"]),
    "dimension-added": ({"Dimensions": [{"Name": "a", "Value": "b"}]}, ["Dimensions"]),
    "two-of-one": ({"DatapointsToAlarm": 2}, ["DatapointsToAlarm"]),
}


@pytest.mark.parametrize("answer", ALARM_ANSWERS)
def test_alarm_drift_matches_the_deploys(stack, answer):
    _, desired, module = stack
    changes, drifted = ALARM_ANSWERS[answer]
    stored = {k: v for k, v in {**_moto_alarm(desired), **changes}.items() if v is not None}
    wanted = _alarm(desired, "4.3").put_params()
    assert module.alarm_drift(stored, wanted) == drifted
    assert deploy_module._alarm_drift(stored, wanted) == drifted


FILTER_ANSWERS = {
    "healthy": ({}, []),
    "unit-reported": ({"unit": "None", "dimensions": {}}, []),
    "default-value": ({"defaultValue": 0.0}, ["metricTransformations"]),
    "value-changed": ({"metricValue": "0"}, ["metricTransformations"]),
}


@pytest.mark.parametrize("answer", FILTER_ANSWERS)
def test_filter_drift_matches_the_deploys(stack, answer):
    _, desired, module = stack
    changes, drifted = FILTER_ANSWERS[answer]
    wanted = _filter(desired, "4.1").put_params()
    stored = {**wanted, "metricTransformations": [{**wanted["metricTransformations"][0], **changes}]}
    assert module.filter_drift(stored, wanted) == drifted
    assert deploy_module._filter_drift(stored, wanted) == drifted


def _handler_calls():
    """(client, operation) pairs the handler calls on its module-level clients, paginated ones included."""
    tree = ast.parse(ALARMS_FUNCTION_SOURCE.read_text())
    calls = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id in ("cloudwatch", "logs")):
            continue
        operation = node.func.attr
        if operation == "get_paginator":
            operation = node.args[0].value
        calls.add((node.func.value.id, operation))
    return calls


IAM_ACTION = {
    ("cloudwatch", "describe_alarms"): "cloudwatch:DescribeAlarms",
    ("cloudwatch", "enable_alarm_actions"): "cloudwatch:EnableAlarmActions",
    ("cloudwatch", "put_metric_alarm"): "cloudwatch:PutMetricAlarm",
    ("logs", "describe_metric_filters"): "logs:DescribeMetricFilters",
    ("logs", "put_metric_filter"): "logs:PutMetricFilter",
    ("logs", "delete_metric_filter"): "logs:DeleteMetricFilter",
}


def test_role_grants_exactly_what_the_handler_calls():
    desired = desired_state(account_id=ACCOUNT, region=REGION)
    calls = _handler_calls()
    assert calls <= set(IAM_ACTION), f"map these calls to IAM actions: {calls - set(IAM_ACTION)}"
    role = desired.alarms_function.role
    assert role.name == "gameday-remediate-alarms"
    (policy,) = role.inline_policies.values()
    statements = {s["Sid"]: s for s in policy["Statement"]}
    granted = set()
    for sid in ("ReadAlarmsAndFilters", "ReconcileAlarms", "ReconcileMetricFilters"):
        action = statements[sid]["Action"]
        granted |= {action} if isinstance(action, str) else set(action)
    assert granted == {IAM_ACTION[call] for call in calls}
    assert statements["ReconcileAlarms"]["Resource"] == [c.alarm.arn for c in desired.controls]
    assert statements["ReconcileMetricFilters"]["Resource"] == [desired.log_group.arn, f"{desired.log_group.arn}:*"]
    assert all(r.startswith(f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/gameday-remediate-alarms")
               for r in statements["OwnLogs"]["Resource"])


def test_handler_imports_nothing_from_the_harness():
    tree = ast.parse(ALARMS_FUNCTION_SOURCE.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"hashlib", "json", "logging", "os", "boto3", "botocore"}


def test_deploy_and_the_function_agree_on_describe_defaults():
    """The function is zipped alone, so it keeps its own copy of the defaults: the copies must not drift."""
    import ast

    from harness.stack import deploy
    from harness.stack.desired import ALARMS_FUNCTION_SOURCE

    tree = ast.parse(ALARMS_FUNCTION_SOURCE.read_text())
    copies = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in ("ALARM_DEFAULTS", "TRANSFORMATION_DEFAULTS")}
    assert copies == {"ALARM_DEFAULTS": deploy.ALARM_DEFAULTS,
                      "TRANSFORMATION_DEFAULTS": deploy.TRANSFORMATION_DEFAULTS}
