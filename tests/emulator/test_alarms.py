"""alarms: CloudWatch's documented evaluation rules, and payloads compared with real AWS ones."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import assume, given, settings, strategies as st

from harness.emulator import alarms
from harness.emulator.alarms import ALARM, INSUFFICIENT_DATA, OK, STATES, AlarmSpec, evaluate

MODES = ("missing", "ignore", "breaching", "notBreaching")
RETAIN = "retain"  # the docs' "Retain current state"


def spec(n=1, m=None, *, mode="missing", comparison="GreaterThanOrEqualToThreshold", threshold=1.0,
         statistic="Maximum", extended=None, period=300, name="a", namespace="Gameday", metric="M",
         dimensions=(), unit=None, low_sample=None, region="us-east-1", account="123456789012"):
    return AlarmSpec(
        name=name, arn=f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}", namespace=namespace,
        metric_name=metric, dimensions=tuple(dimensions), period=period, evaluation_periods=n,
        datapoints_to_alarm=m, threshold=threshold, comparison=comparison,
        statistic=None if extended else statistic, extended_statistic=extended, treat_missing_data=mode,
        unit=unit, evaluate_low_sample_count_percentile=low_sample,
    )


def epoch(text: str) -> float:
    """'2019-10-02T17:04:40.985' (UTC) as epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def docs_periods(pattern: str) -> list[list[float]]:
    """The docs' notation, oldest first: 0 not breaching, X breaching, - missing (threshold 1.0, >=)."""
    return [[] if c == "-" else [2.0 if c == "X" else 0.0] for c in pattern.split()]


# "Configuring how CloudWatch alarms treat missing data", both tables, from the docs' versions in
# awsdocs/amazon-cloudwatch-user-guide (doc_source/AlarmThatSendsEmail.md, two revisions) and the
# "Avoiding premature transitions to alarm state" section (quoted in awsdocs issue #129).
DOCS_TABLE = [
    # (EvaluationPeriods, DatapointsToAlarm, pattern, MISSING, IGNORE, BREACHING, NOT BREACHING)
    (3, 3, "0 - X - X", OK, OK, OK, OK),
    (3, 3, "0 - - - -", OK, OK, OK, OK),
    (3, 3, "- - - - -", INSUFFICIENT_DATA, RETAIN, ALARM, OK),
    (3, 3, "0 X X - X", ALARM, ALARM, ALARM, ALARM),
    (3, 3, "- - - - X", INSUFFICIENT_DATA, RETAIN, ALARM, OK),
    (3, 3, "X - - - -", ALARM, RETAIN, ALARM, OK),
    (3, 3, "- - X - -", ALARM, RETAIN, ALARM, OK),
    (3, 2, "0 - X - X", ALARM, ALARM, ALARM, ALARM),
    (3, 2, "0 0 X 0 X", ALARM, ALARM, ALARM, ALARM),
    (3, 2, "0 - X - -", OK, OK, ALARM, OK),
    (3, 2, "- - - - 0", OK, OK, ALARM, OK),
    (3, 2, "- - - - X", INSUFFICIENT_DATA, RETAIN, ALARM, OK),
    (3, 2, "- - X - -", ALARM, RETAIN, ALARM, OK),
]


@pytest.mark.parametrize("row", DOCS_TABLE, ids=[f"{r[1]}of{r[0]} {r[2]}" for r in DOCS_TABLE])
def test_docs_missing_data_table(row):
    n, m, pattern, *expected = row
    assert alarms.lookback(spec(n, m)) == 5  # the docs: "CloudWatch retrieves the 5 most recent data points"
    for mode, want in zip(MODES, expected, strict=True):
        for previous in STATES:
            got = evaluate(spec(n, m, mode=mode), docs_periods(pattern), previous).state
            assert got == (previous if want == RETAIN else want), (mode, previous)


def test_docs_premature_rule_waits_for_a_young_breach():
    # The docs: with 3 of 3, "- - - - X" and "- - - X -" do not go to ALARM yet; "- - X - -" does.
    states = [evaluate(spec(3, 3), docs_periods(p), OK).state for p in ("- - - - X", "- - - X -", "- - X - -")]
    assert states == [INSUFFICIENT_DATA, INSUFFICIENT_DATA, ALARM]


def test_dynamodb_alarms_always_ignore_missing_data():
    # PutMetricAlarm reference: AWS/DynamoDB alarms keep their state when data is missing, whatever is set.
    for mode in MODES:
        got = evaluate(spec(1, mode=mode, namespace="AWS/DynamoDB"), docs_periods("- - -"), ALARM)
        assert (got.state, got.changed) == (ALARM, False)


# Step-by-step: a series of periods (B breaching, N not breaching, - missing, before it all missing),
# evaluated at every period with the state carried over; expected states worked out by hand.
STEP_CASES = {
    "1of1": (1, 1, "N B - - - B N - - -", {
        "missing": "O A A A I A O O O I",
        "ignore": "O A A A A A O O O O",
        "breaching": "O A A A A A O O O A",
        "notBreaching": "O A A A O A O O O O",
    }),
    "2of3": (3, 2, "B - B N N B - - - - - -", {
        "missing": "I A A A O O O O O A I I",
        "ignore": "I I A A O O O O O O O O",
        "breaching": "A A A A O O O O A A A A",
        "notBreaching": "O O A A O O O O O O O O",
    }),
    "3of3": (3, 3, "B B B N B B B - - - - -", {
        "missing": "I I A O O O A A A A A I",
        "ignore": "I I A O O O A A A A A A",
        "breaching": "A A A O O O A A A A A A",
        "notBreaching": "O O A O O O A A A O O O",
    }),
    "3of5": (5, 3, "B N B - B N N - B - - - - - - -", {
        "missing": "I O O O A A O O A O O O O A A I",
        "ignore": "I O O O A A O O A O O O O O O O",
        "breaching": "A A A A A A O O A A A A A A A A",
        "notBreaching": "O O O O A A O O A O O O O O O O",
    }),
}
_LETTERS = {"O": OK, "A": ALARM, "I": INSUFFICIENT_DATA}
# Per operator, threshold 3: the level of a breaching and of a non-breaching period (equality sits on the edge).
LEVELS = {
    "GreaterThanOrEqualToThreshold": {"B": 3, "N": 1},
    "GreaterThanThreshold": {"B": 5, "N": 3},
    "LessThanThreshold": {"B": 1, "N": 3},
    "LessThanOrEqualToThreshold": {"B": 3, "N": 5},
}
# Per statistic, raw samples whose statistic is exactly the level v.
SAMPLES = {
    "Sum": lambda v: [v - 1.0, 1.0],
    "Average": lambda v: [v - 1.0, v + 1.0],
    "Minimum": lambda v: [v, v + 10.0],
    "Maximum": lambda v: [v - 10.0, v],
    "SampleCount": lambda v: [-100.0] * v,
    "p50": lambda v: [v + 10.0, v, v - 10.0],
    "p90": lambda v: [v - 10.0] * 8 + [v + 10.0, v],
}


def run_steps(alarm: AlarmSpec, raw: list[list[float]]) -> list[str]:
    history = [[] for _ in range(alarms.lookback(alarm))] + raw
    state, states = INSUFFICIENT_DATA, []
    for step in range(len(raw)):
        result = evaluate(alarm, history[: len(history) - len(raw) + step + 1], state)
        assert result.changed == (result.state != state)
        state = result.state
        states.append(state)
    return states


@pytest.mark.parametrize("case", STEP_CASES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("comparison", LEVELS)
@pytest.mark.parametrize("statistic", SAMPLES)
def test_state_sequence(case, mode, comparison, statistic):
    n, m, series, expected = STEP_CASES[case]
    levels, make = LEVELS[comparison], SAMPLES[statistic]
    raw = [[] if s == "-" else make(levels[s]) for s in series.split()]
    percentile = statistic.startswith("p")
    alarm = spec(n, m, mode=mode, comparison=comparison, threshold=3.0,
                 statistic=None if percentile else statistic, extended=statistic if percentile else None)
    assert run_steps(alarm, raw) == [_LETTERS[c] for c in expected[mode].split()]


def test_alarm_starts_insufficient():
    assert alarms.INITIAL_STATE == INSUFFICIENT_DATA
    assert alarms.INITIAL_REASON == "Unchecked: Initial alarm creation"


@pytest.mark.parametrize("statistic, values, want", [
    ("SampleCount", [5.0, 5.0, 7.0], 3.0),
    ("Sum", [1.5, 2.5, 3.0], 7.0),
    ("Average", [1.0, 2.0, 6.0], 3.0),
    ("Minimum", [4.0, -2.0, 9.0], -2.0),
    ("Maximum", [4.0, -2.0, 9.0], 9.0),
    ("p50", [1.0, 2.0, 3.0, 4.0], 2.0),
    ("p90", [float(v) for v in range(1, 11)], 9.0),
    ("p99", [float(v) for v in range(1, 11)], 10.0),
    ("p99.9", [float(v) for v in range(1, 1001)], 999.0),
    ("p0", [3.0, 1.0, 2.0], 1.0),
    ("p100", [3.0, 1.0, 2.0], 3.0),
])
def test_aggregate(statistic, values, want):
    assert alarms.aggregate(values, statistic) == want


def test_aggregate_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError):
        alarms.aggregate([], "Sum")
    with pytest.raises(NotImplementedError):
        alarms.aggregate([1.0], "tm99")
    with pytest.raises(ValueError):
        alarms.aggregate([1.0], "Median")


def test_unsupported_configurations_are_named():
    with pytest.raises(NotImplementedError, match="anomaly"):
        evaluate(spec(comparison="LessThanLowerOrGreaterThanUpperThreshold"), [[1.0]], OK)
    with pytest.raises(NotImplementedError):
        evaluate(spec(extended="wm95"), [[1.0]], OK)
    with pytest.raises(ValueError):
        evaluate(spec(mode="sometimes"), [[1.0]], OK)
    with pytest.raises(ValueError):
        evaluate(spec(3, 4), [[1.0]], OK)
    with pytest.raises(ValueError):
        evaluate(spec(), [[1.0]], "PENDING")


def test_bucket_keeps_complete_periods_aligned_oldest_first():
    now = 1_000_000 * 60 + 130.0  # 2 min 10 s into a 5-minute period that is not complete yet
    end = (now // 300) * 300
    points = [(end - 300, 1.0), (end - 1, 2.0), (end - 301, 3.0), (end - 900, 4.0), (end - 901, 5.0), (end, 6.0)]
    assert alarms.bucket(points, period=300, now=now, count=3) == [[4.0], [3.0], [1.0, 2.0]]
    # AWS ends an alarm's window on the last whole minute, not on a period multiple.
    assert alarms.bucket([(now - 60, 7.0), (now - 10, 8.0)], period=300, now=now, count=1, align=60) == [[7.0]]
    assert alarms.bucket([], period=60, now=now, count=2) == [[], []]


def test_low_sample_percentile_ignore_keeps_the_state():
    few = [[5.0] * 10]  # p99 needs 10/(1-0.99) = 1000 samples
    kept = evaluate(spec(extended="p99", low_sample="ignore"), few, OK)
    assert (kept.state, kept.changed) == (OK, False)
    assert evaluate(spec(extended="p99", low_sample="evaluate"), few, OK).state == ALARM
    assert evaluate(spec(extended="p99", low_sample="ignore"), [[5.0] * 1000], OK).state == ALARM


# Real payloads, used as oracles.
def test_reason_and_data_match_the_eventbridge_docs_example():
    # AlarmThatSendsEmail/cloudwatch-and-eventbridge.md: ServerCpuTooHigh, Average > 50.0 over 300 s.
    alarm = spec(1, 1, comparison="GreaterThanThreshold", threshold=50.0, statistic="Average",
                 name="ServerCpuTooHigh", namespace="AWS/EC2", metric="CPUUtilization",
                 dimensions=[("InstanceId", "i-12345678901234567")])
    query = epoch("2019-10-02T17:04:40.985")
    new = evaluate(alarm, alarms.bucket([(epoch("2019-10-02T17:00:00"), 99.50160229693434)], period=300,
                                        now=query, count=3, align=60), OK, now=query, align=60)
    assert new.reason == ("Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] "
                          "was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).")
    documented = {"version": "1.0", "queryDate": "2019-10-02T17:04:40.985+0000",
                  "startDate": "2019-10-02T16:59:00.000+0000", "statistic": "Average", "period": 300,
                  "recentDatapoints": [99.50160229693434], "threshold": 50.0}
    assert {k: new.reason_data[k] for k in documented} == documented
    # The previous state used a datapoint 10 minutes old: the newest period was missing, the range had one.
    query = epoch("2019-10-01T13:56:40.985")
    old = evaluate(alarm, alarms.bucket([(epoch("2019-10-01T13:47:00"), 0.0666851903306472)], period=300,
                                        now=query, count=3, align=60), ALARM, now=query, align=60)
    assert old.reason == ("Threshold Crossed: 1 out of the last 1 datapoints [0.0666851903306472 (01/10/19 13:46:00)] "
                          "was not greater than the threshold (50.0) (minimum 1 datapoint for ALARM -> OK transition).")
    event = alarms.state_change_event(
        alarm, old_state=OK, old_evaluation=old, evaluation=new, account_id="123456789012", region="us-east-1",
        time="2019-10-02T17:04:40.989+0000", previous_time="2019-10-01T13:56:40.987+0000",
        description="Goes into alarm when server CPU utilization is too high!",
        event_id="c4c1c1c9-6542-e61b-6ef0-8c4d36933a92")
    assert {k: v for k, v in event.items() if k != "detail"} == {
        "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92", "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": "2019-10-02T17:04:40Z",
        "region": "us-east-1", "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"]}
    detail = event["detail"]
    assert set(detail) == {"alarmName", "state", "previousState", "configuration"}
    assert detail["state"]["timestamp"] == "2019-10-02T17:04:40.989+0000"
    assert detail["previousState"]["timestamp"] == "2019-10-01T13:56:40.987+0000"
    assert (detail["state"]["value"], detail["previousState"]["value"]) == (ALARM, OK)
    assert json.loads(detail["state"]["reasonData"]) == new.reason_data
    assert detail["state"]["reasonData"].startswith('{"version":"1.0","queryDate":')  # compact, as AWS sends it
    metric = detail["configuration"]["metrics"][0]
    assert detail["configuration"]["description"] == "Goes into alarm when server CPU utilization is too high!"
    assert metric["metricStat"] == {"metric": {"dimensions": {"InstanceId": "i-12345678901234567"},
                                               "name": "CPUUtilization", "namespace": "AWS/EC2"},
                                    "period": 300, "stat": "Average"}
    assert metric["returnData"] is True


def test_first_transition_event_has_the_initial_previous_state():
    alarm = spec(1, 1)
    new = evaluate(alarm, [[5.0]], INSUFFICIENT_DATA, now=epoch("2019-10-02T17:20:48.551"))
    event = alarms.state_change_event(alarm, old_state=INSUFFICIENT_DATA, old_evaluation=None, evaluation=new,
                                      account_id="123456789012", region="us-east-1",
                                      time="2019-10-02T17:20:48.554+0000",
                                      previous_time="2019-10-02T17:20:03.642+0000")
    assert event["detail"]["previousState"] == {
        "value": INSUFFICIENT_DATA, "reason": "Unchecked: Initial alarm creation",
        "timestamp": "2019-10-02T17:20:03.642+0000"}
    assert "description" not in event["detail"]["configuration"]


def test_insufficient_data_reason_matches_aws():
    # aws_lambda_events fixture example-cloudwatch-alarm-metric.json: 5 unknown datapoints, Average > 5.0, 60 s.
    alarm = spec(5, 5, comparison="GreaterThanThreshold", threshold=5.0, statistic="Average", period=60)
    query = epoch("2023-08-04T12:31:29.591")
    got = evaluate(alarm, alarms.bucket([], period=60, now=query, count=7, align=60), OK, now=query, align=60)
    assert (got.state, got.reason) == (INSUFFICIENT_DATA, "Insufficient Data: 5 datapoints were unknown.")
    assert got.reason_data == {
        "version": "1.0", "queryDate": "2023-08-04T12:31:29.591+0000", "statistic": "Average", "period": 60,
        "recentDatapoints": [], "threshold": 5.0,
        "evaluatedDatapoints": [{"timestamp": f"2023-08-04T12:{minute}:00.000+0000"}
                                for minute in (30, 29, 28, 27, 26)],
    }


def test_short_wording_for_alarms_without_datapoints_to_alarm():
    # A real DescribeAlarmHistory HistoryData (2022): Sum >= 1.0 over 2700 s, 3 periods, notBreaching.
    alarm = spec(3, None, mode="notBreaching", statistic="Sum", period=2700)
    query = epoch("2022-05-13T11:59:52.575")
    before = evaluate(alarm, alarms.bucket([], period=2700, now=query, count=5, align=60), ALARM,
                      now=query, align=60)
    assert before.reason == ("Threshold Crossed: no datapoints were received for 3 periods and "
                             "3 missing datapoints were treated as [NonBreaching].")
    assert (before.state, before.reason_data["recentDatapoints"], "startDate" in before.reason_data) == (OK, [], False)
    query = epoch("2022-05-13T13:59:52.472")
    points = [(epoch("2022-05-13T13:20:00"), 4.0), (epoch("2022-05-13T12:30:00"), 5.0),
              (epoch("2022-05-13T11:50:00"), 1.0)]
    after = evaluate(alarm, alarms.bucket(points, period=2700, now=query, count=5, align=60), OK,
                     now=query, align=60)
    assert after.reason == ("Threshold Crossed: 3 datapoints [4.0 (13/05/22 13:14:00), 5.0 (13/05/22 12:29:00), "
                            "1.0 (13/05/22 11:44:00)] were greater than or equal to the threshold (1.0).")
    assert after.reason_data["startDate"] == "2022-05-13T11:44:00.000+0000"
    item = alarms.history_item(alarm, old_state=OK, old_evaluation=before, evaluation=after,
                               timestamp="2022-05-13T13:59:52.480Z")
    data = json.loads(item["HistoryData"])
    assert data["oldState"] == {"stateValue": OK, "stateReason": before.reason, "stateReasonData": before.reason_data}
    assert data["newState"]["stateReason"] == after.reason


def test_m_of_n_ok_reason_lists_the_non_breaching_datapoints():
    # A real notification (2021): 3 of 5, Maximum > 0.0 over 60 s, ALARM -> OK.
    alarm = spec(5, 3, comparison="GreaterThanThreshold", threshold=0.0, period=60)
    query = epoch("2021-12-21T06:46:11")
    values = {"06:41": 1.0, "06:42": 0.0, "06:43": 1.0, "06:44": 0.0, "06:45": 0.0}
    points = [(epoch(f"2021-12-21T{hm}:30"), v) for hm, v in values.items()]
    got = evaluate(alarm, alarms.bucket(points, period=60, now=query, count=7, align=60), ALARM,
                   now=query, align=60)
    assert got.state == OK
    assert got.reason == ("Threshold Crossed: 3 out of the last 5 datapoints [0.0 (21/12/21 06:45:00), "
                          "0.0 (21/12/21 06:44:00), 0.0 (21/12/21 06:42:00)] were not greater than the threshold "
                          "(0.0) (minimum 3 datapoints for ALARM -> OK transition).")


# Two real SNS messages (2024), DatapointsToAlarm set and not set, as the whole JSON body.
WAF_MESSAGE = {
    "AlarmName": "AlarmForRBRule_project-general-alb-project_alb-project-wafbase-rate-limit-rule_BLOCK",
    "AlarmDescription": "Alarm for Rate-based rule events detected on Rule alb-project-wafbase-rate-limit-rule",
    "AWSAccountId": "XXXXXXXXXXX", "AlarmConfigurationUpdatedTimestamp": "2023-02-23T12:07:38.685+0000",
    "NewStateValue": "ALARM",
    "NewStateReason": "Threshold Crossed: 1 out of the last 20 datapoints [613.0 (16/03/24 12:15:00)] was greater "
                      "than or equal to the threshold (1.0) and 19 missing datapoints were treated as [NonBreaching] "
                      "(minimum 1 datapoint for OK -> ALARM transition).",
    "StateChangeTime": "2024-03-16T12:16:45.770+0000", "Region": "EU (Ireland)",
    "AlarmArn": "arn:aws:cloudwatch:eu-west-1:XXXXXXXXXXX:alarm:"
                "AlarmForRBRule_project-general-alb-project_alb-project-wafbase-rate-limit-rule_BLOCK",
    "OldStateValue": "OK", "OKActions": [], "AlarmActions": ["arn:aws:sns:eu-west-1:XXXXXXXXXXX:aws-alerts"],
    "InsufficientDataActions": [],
    "Trigger": {"MetricName": "BlockedRequests", "Namespace": "AWS/WAFV2", "StatisticType": "Statistic",
                "Statistic": "SUM", "Unit": None,
                "Dimensions": [{"value": "project-general-alb-project", "name": "WebACL"},
                               {"value": "eu-west-1", "name": "Region"},
                               {"value": "alb-project-wafbase-rate-limit-rule", "name": "Rule"}],
                "Period": 60, "EvaluationPeriods": 20, "DatapointsToAlarm": 1,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1.0,
                "TreatMissingData": "notBreaching", "EvaluateLowSampleCountPercentile": ""},
}
LAMBDA_MESSAGE = {
    "AlarmName": "package-general-live-event-filter-errors",
    "AlarmDescription": "The TV4 live sports event filter lambda has had atleast 1 error within the last 5 minutes!",
    "AWSAccountId": "123456712345", "AlarmConfigurationUpdatedTimestamp": "2023-08-17T08:47:29.454+0000",
    "NewStateValue": "OK",
    "NewStateReason": "Threshold Crossed: 1 datapoint [0.0 (19/03/24 17:14:00)] was not greater than or equal to "
                      "the threshold (1.0).",
    "StateChangeTime": "2024-03-19T17:19:14.422+0000", "Region": "EU (Ireland)",
    "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456712345:alarm:package-general-live-event-filter-errors",
    "OldStateValue": "ALARM", "OKActions": ["arn:aws:sns:eu-west-1:123456712345:aws-alerts"],
    "AlarmActions": ["arn:aws:sns:eu-west-1:123456712345:aws-alerts"], "InsufficientDataActions": [],
    "Trigger": {"MetricName": "Errors", "Namespace": "AWS/Lambda", "StatisticType": "Statistic", "Statistic": "SUM",
                "Unit": None, "Dimensions": [{"value": "package-general-live-event-filter-function",
                                              "name": "FunctionName"}],
                "Period": 300, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "Threshold": 1.0, "TreatMissingData": "notBreaching", "EvaluateLowSampleCountPercentile": ""},
}


@pytest.mark.parametrize("message", [WAF_MESSAGE, LAMBDA_MESSAGE], ids=["m-of-n", "short"])
def test_sns_notification_matches_real_messages(message):
    trigger = message["Trigger"]
    account, region = message["AWSAccountId"], "eu-west-1"
    alarm = AlarmSpec(
        name=message["AlarmName"], arn=message["AlarmArn"], namespace=trigger["Namespace"],
        metric_name=trigger["MetricName"], dimensions=tuple((d["name"], d["value"]) for d in trigger["Dimensions"]),
        period=trigger["Period"], evaluation_periods=trigger["EvaluationPeriods"],
        datapoints_to_alarm=trigger.get("DatapointsToAlarm"), threshold=trigger["Threshold"],
        comparison=trigger["ComparisonOperator"], statistic="Sum", extended_statistic=None,
        treat_missing_data=trigger["TreatMissingData"])
    changed_at = message["StateChangeTime"]
    query = epoch(changed_at.removesuffix("+0000"))
    newest = query - query % 60 - trigger["Period"] + 30
    value = float(message["NewStateReason"].split("[")[1].split(" ")[0])
    periods = alarms.bucket([(newest, value)], period=trigger["Period"], now=query,
                            count=alarms.lookback(alarm), align=60)
    result = evaluate(alarm, periods, message["OldStateValue"], now=query, align=60)
    actions = {OK: message["OKActions"], ALARM: message["AlarmActions"],
               INSUFFICIENT_DATA: message["InsufficientDataActions"]}
    body = alarms.sns_notification(alarm, old_state=message["OldStateValue"], evaluation=result, account_id=account,
                                   region=region, actions=actions, description=message["AlarmDescription"],
                                   updated_at=message["AlarmConfigurationUpdatedTimestamp"],
                                   state_change_time=changed_at)
    assert body == message
    assert list(body) == list(message)
    assert list(body["Trigger"]) == list(trigger)


def test_sns_subject_and_region_names():
    assert alarms.sns_subject(spec(name="compile error"), state=ALARM, region="ap-northeast-1") == \
        'ALARM: "compile error" in Asia Pacific (Tokyo)'
    assert alarms.sns_subject(spec(name="x"), state=OK, region="us-east-1") == 'OK: "x" in US East (N. Virginia)'
    assert len(alarms.sns_subject(spec(name="n" * 255), state=INSUFFICIENT_DATA, region="us-east-1")) < 100
    assert [alarms.region_long_name(r) for r in ("us-east-1", "us-west-2", "eu-west-2", "eu-south-1")] == \
        ["US East (N. Virginia)", "US West (Oregon)", "EU (London)", "EU (Milan)"]


def test_percentile_trigger_names_the_extended_statistic():
    alarm = spec(extended="p90", unit="Milliseconds")
    body = alarms.sns_notification(alarm, old_state=OK, evaluation=evaluate(alarm, [[5.0]], OK), account_id="1",
                                   region="us-east-1", actions={}, description=None, updated_at="u",
                                   state_change_time="t")
    assert (body["Trigger"]["StatisticType"], body["Trigger"]["ExtendedStatistic"], body["Trigger"]["Unit"]) == \
        ("ExtendedStatistic", "p90", "Milliseconds")
    assert "Statistic" not in body["Trigger"] and "DatapointsToAlarm" not in body["Trigger"]
    assert (body["OKActions"], body["AlarmActions"], body["InsufficientDataActions"]) == ([], [], [])


def test_history_items_match_aws():
    # A real DescribeAlarmHistory (aws-sdk-java issue 1723, 2018): Average <= 70.0 over 300 s.
    alarm = spec(1, 1, comparison="LessThanOrEqualToThreshold", threshold=70.0, statistic="Average",
                 name="CPUUtilization OK for asdp0101")
    query = epoch("2018-08-15T21:20:02.369")
    result = evaluate(alarm, alarms.bucket([(epoch("2018-08-15T21:16:00"), 6.046241709654764)], period=300,
                                           now=query, count=3, align=60), INSUFFICIENT_DATA, now=query, align=60)
    item = alarms.history_item(alarm, old_state=INSUFFICIENT_DATA, evaluation=result,
                               timestamp="2018-08-15T21:20:02.381Z")
    assert set(item) == {"AlarmName", "AlarmType", "Timestamp", "HistoryItemType", "HistorySummary", "HistoryData"}
    assert (item["AlarmType"], item["HistoryItemType"], item["HistorySummary"]) == \
        ("MetricAlarm", "StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM")
    data = json.loads(item["HistoryData"])
    assert data["version"] == "1.0"
    assert data["oldState"] == {"stateValue": "INSUFFICIENT_DATA", "stateReason": "Unchecked: Initial alarm creation"}
    assert data["newState"]["stateReason"] == (
        "Threshold Crossed: 1 out of the last 1 datapoints [6.046241709654764 (15/08/18 21:15:00)] was less than or "
        "equal to the threshold (70.0) (minimum 1 datapoint for OK -> ALARM transition).")
    reason_data = data["newState"]["stateReasonData"]
    assert {k: reason_data[k] for k in ("queryDate", "startDate", "statistic", "period", "recentDatapoints")} == {
        "queryDate": "2018-08-15T21:20:02.369+0000", "startDate": "2018-08-15T21:15:00.000+0000",
        "statistic": "Average", "period": 300, "recentDatapoints": [6.046241709654764]}

    done = alarms.action_history_item(alarm, action_arn="arn:aws:sns:us-east-1:782057075241:xxx", ok=True,
                                      error=None, timestamp="2018-08-15T21:20:02.400Z",
                                      state_change_time="2018-08-15T21:20:02.381+0000", published_message="{}")
    assert (done["HistoryItemType"], done["HistorySummary"]) == \
        ("Action", "Successfully executed action arn:aws:sns:us-east-1:782057075241:xxx")
    assert json.loads(done["HistoryData"]) == {
        "error": None, "actionState": "Succeeded", "notificationResource": "arn:aws:sns:us-east-1:782057075241:xxx",
        "stateUpdateTimestamp": 1534368002381, "publishedMessage": '{"default":"{}"}'}

    error = "CloudWatch Alarms does not have authorization to access the SNS topic encryption key."
    failed = alarms.action_history_item(alarm, action_arn="arn:aws:sns:ap-southeast-2:***:prod", ok=False,
                                        error=error, timestamp="2018-08-15T21:20:02.400Z")
    assert failed["HistorySummary"] == \
        f'Failed to execute action arn:aws:sns:ap-southeast-2:***:prod. Received error: "{error}"'
    assert json.loads(failed["HistoryData"])["actionState"] == "Failed"


@pytest.mark.parametrize("value, text", [
    (2.0, "2.0"), (0.0666851903306472, "0.0666851903306472"), (45628.0, "45628.0"), (1e7, "1.0E7"),
    (12345678.0, "1.2345678E7"), (0.00015, "1.5E-4"), (0.001, "0.001"), (-3.5, "-3.5"), (0.0, "0.0"),
])
def test_numbers_print_as_cloudwatch_prints_them(value, text):
    alarm = spec(1, 1, threshold=value)
    assert f"the threshold ({text})" in evaluate(alarm, [[value]], OK).reason


def test_reason_wording_for_fills_and_plurals():
    alarm = spec(3, 2, mode="breaching")
    got = evaluate(alarm, docs_periods("- - - - X"), OK, now=epoch("2024-01-01T00:30:00"))
    assert got.reason == ("Threshold Crossed: 1 out of the last 3 datapoints [2.0 (01/01/24 00:25:00)] was greater "
                          "than or equal to the threshold (1.0) and 2 missing datapoints were treated as [Breaching] "
                          "(minimum 2 datapoints for OK -> ALARM transition).")
    one = evaluate(spec(1, None, mode="breaching"), docs_periods("- - -"), OK)
    assert one.reason == ("Threshold Crossed: no datapoints were received for 1 period and "
                          "1 missing datapoint was treated as [Breaching].")
    assert len(one.reason_data["evaluatedDatapoints"]) == 1


# Hypothesis: random series and specs.
_alarm_specs = st.builds(
    lambda n, m_off, dta, mode, comparison, stat, threshold: spec(
        n, max(1, n - m_off) if dta else None, mode=mode, comparison=comparison, threshold=threshold,
        statistic=None if stat.startswith("p") else stat, extended=stat if stat.startswith("p") else None, period=60),
    n=st.integers(1, 6), m_off=st.integers(0, 5), dta=st.booleans(), mode=st.sampled_from(MODES),
    comparison=st.sampled_from(list(LEVELS)), stat=st.sampled_from(list(SAMPLES)),
    threshold=st.floats(-10, 10, allow_nan=False),
)
_samples = st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=4)
_period = st.one_of(st.just([]), _samples)
_mostly_data = st.one_of(st.just([]), _samples, _samples, _samples)


@settings(max_examples=300, deadline=None)
@given(alarm=_alarm_specs, periods=st.lists(_period, max_size=10), previous=st.sampled_from(STATES))
def test_any_series_gives_a_state_and_a_consistent_change(alarm, periods, previous):
    result = evaluate(alarm, periods, previous, now=1_700_000_000.0)
    assert result.state in STATES
    assert result.changed == (result.state != previous)
    assert result.reason.startswith(("Threshold Crossed: ", "Insufficient Data: "))
    assert len(result.reason_data["evaluatedDatapoints"]) == alarm.evaluation_periods
    if result.state == INSUFFICIENT_DATA and previous != INSUFFICIENT_DATA:
        assert alarm.treat_missing_data == "missing"
    # Periods older than the evaluation range never matter.
    older = [[99.0]] * 3 + list(periods) if len(periods) >= alarms.lookback(alarm) else periods
    assert evaluate(alarm, older, previous, now=1_700_000_000.0) == result


@settings(max_examples=200, deadline=None)
@given(alarm=_alarm_specs, size=st.integers(0, 10), previous=st.sampled_from(STATES))
def test_all_missing_follows_the_treatment(alarm, size, previous):
    # The docs' row "- - - - -": INSUFFICIENT_DATA / retain / ALARM / OK.
    want = {"missing": INSUFFICIENT_DATA, "ignore": previous, "breaching": ALARM, "notBreaching": OK}
    assert evaluate(alarm, [[] for _ in range(size)], previous).state == want[alarm.treat_missing_data]


@settings(max_examples=100, deadline=None)
@given(alarm=_alarm_specs, periods=st.lists(_mostly_data, min_size=8, max_size=10), previous=st.sampled_from(STATES))
def test_treatment_is_ignored_when_the_range_has_enough_real_datapoints(alarm, periods, previous):
    # The docs: with at least EvaluationPeriods existing datapoints, how missing data is treated "is ignored".
    assume(sum(1 for p in periods[-alarms.lookback(alarm):] if p) >= alarm.evaluation_periods)
    states = {evaluate(spec_with(alarm, mode), periods, previous).state for mode in MODES}
    assert len(states) == 1


def spec_with(alarm: AlarmSpec, mode: str) -> AlarmSpec:
    return AlarmSpec(**{**alarm.__dict__, "treat_missing_data": mode})


@settings(max_examples=100, deadline=None)
@given(points=st.lists(st.tuples(st.floats(0, 10_000), st.floats(-5, 5, allow_nan=False)), max_size=30),
       period=st.sampled_from([10, 60, 300]), now=st.floats(5_000, 10_000), count=st.integers(0, 8))
def test_bucket_puts_each_datapoint_in_its_period_once(points, period, now, count):
    periods = alarms.bucket(points, period=period, now=now, count=count)
    end = (now // period) * period
    inside = [v for t, v in points if end - count * period <= t < end]
    assert len(periods) == count
    assert sorted(v for values in periods for v in values) == sorted(inside)
    for index, values in enumerate(periods):
        start = end - (count - index) * period
        assert sorted(values) == sorted(v for t, v in points if start <= t < start + period)
