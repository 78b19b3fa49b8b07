"""filterpattern against AWS's guide examples, the 15 CIS patterns on real CloudTrail records, errors, properties."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from harness.emulator import filterpattern as fp
from harness.emulator.filterpattern import FilterPatternError, MISSING, PatternSet

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "cloudtrail"
_CONTROLS = [ROOT / "harness" / "stack" / "cis-monitoring-controls.json",
             Path("/work/shared/reference/cis-monitoring-controls.json")]
CONTROLS = {c["id"]: c["filterPattern"]
            for c in json.loads(next(p for p in _CONTROLS if p.exists()).read_text())["controls"]}


def matching(pattern: str, events: list) -> list:
    """The events a pattern matches; dicts are sent as single-line JSON, as the guide asks."""
    p = fp.compile(pattern)
    return [e for e in events if p.matches(e if isinstance(e, str) else json.dumps(e))]


UNSTRUCTURED = ["[ERROR 400] BAD REQUEST", "[ERROR 401] UNAUTHORIZED REQUEST",
                "[ERROR 419] MISSING ARGUMENTS", "[ERROR 420] INVALID ARGUMENTS"]


@pytest.mark.parametrize("pattern, expected", [
    ("ERROR", UNSTRUCTURED),
    ("ERROR ARGUMENTS", UNSTRUCTURED[2:]),
    ("?ERROR ?ARGUMENTS", UNSTRUCTURED),
    ("ERROR -ARGUMENTS", UNSTRUCTURED[:2]),
    ('" "', UNSTRUCTURED),  # "Match everything"
])
def test_guide_unstructured_terms(pattern, expected):
    assert matching(pattern, UNSTRUCTURED) == expected


def test_guide_exact_phrase():
    events = UNSTRUCTURED + ["[ERROR 500] INTERNAL SERVER ERROR", "INTERNAL ERROR SERVER"]
    assert matching('"INTERNAL SERVER ERROR"', events) == ["[ERROR 500] INTERNAL SERVER ERROR"]


def test_guide_match_everything_includes_events_without_a_space():
    assert matching('" "', ["x", "", '{"a":1}']) == ["x", "", '{"a":1}']


def test_guide_regex_standalone():
    events = ["[ERROR 401] UNAUTHORIZED REQUEST", "[SUCCESS 200] AUTHORIZED REQUEST", "[ERROR 400] BAD REQUEST"]
    assert matching("%AUTHORIZED%", events) == events[:2]
    assert matching(r"%^\[ERROR%", events) == [events[0], events[2]]
    assert matching(r"%4[0-9]{2}\]%", events) == [events[0], events[2]]
    assert matching(r"%^A|ST$%", events) == [events[0], events[1], events[2]]


def test_older_guide_terms():
    fatal, exiting = "[ERROR] A fatal exception has occurred", "Exiting with ERRORCODE: -1"
    assert matching('"ERROR"', [fatal, exiting]) == [fatal, exiting]  # substring: ERRORCODE contains ERROR
    assert matching('"ERROR" - "Exiting"', [fatal, exiting]) == [fatal]
    caught, unhandled = "[ERROR] Caught IllegalArgumentException", "[ERROR] Unhandled Exception"
    # The guide wrote this example as "ERROR Exception"; awsdocs PR #31 corrected it to separate terms.
    assert matching("ERROR Exception", [caught, unhandled]) == [caught, unhandled]
    assert matching('"ERROR" "Exception"', [caught, unhandled]) == [caught, unhandled]
    assert matching('"ERROR Exception"', [caught, unhandled]) == []
    warn, err = "[WARN] Failed to process the request", "[ERROR] Unable to continue: Failed to process the request"
    assert matching("Failed to process the request", [warn, err, "Failed request"]) == [warn, err]


OR_EVENTS = ["ERROR WARN message", "ERROR message", "WARN message"]


@pytest.mark.parametrize("pattern, expected", [
    ("ERROR", OR_EVENTS[:2]),
    ("?ERROR ?WARN", OR_EVENTS),
    ("ERROR WARN", OR_EVENTS[:1]),
    ("ERROR -WARN", OR_EVENTS[1:2]),
    # Space-delimited OR: a 2-slot pattern only fits 2-field events. (The guide's third example,
    # `[w1=!ERROR&&w1=!WARN, w2]` "matches pattern 1", contradicts its own syntax and is left out.)
    ("[w1=ERROR, w2]", OR_EVENTS[1:2]),
    ("[w1=ERROR || w1=WARN, w2]", OR_EVENTS[1:]),
    ('{$.foo = bar}', []),
])
def test_older_guide_or_matching(pattern, expected):
    assert matching(pattern, OR_EVENTS) == expected


def test_older_guide_or_matching_json():
    bar, baz = {"foo": "bar"}, {"foo": "baz"}
    assert matching("{$.foo = bar}", [bar, baz]) == [bar]
    assert matching("{$.foo = baz }", [bar, baz]) == [baz]
    assert matching("{$.foo = bar || $.foo = baz }", [bar, baz]) == [bar, baz]


GUIDE_EVENT = {
    "eventType": "UpdateTrail",
    "sourceIPAddress": "111.111.111.111",
    "arrayKey": ["value", "another value"],
    "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
    "SomeObject": None,
    "ThisFlag": True,  # the older guide's event has it; the current one dropped it
    "cluster.name": "c",  # for the guide's "JSON property with a period in the key" example
}

COMPOUND_EVENT = {
    "user": {"id": 1, "email": "John.Stiles@example.com"},
    "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
    "actions": ["GET", "PUT", "DELETE"],
    "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]],
}


@pytest.mark.parametrize("pattern, expected", [
    ('{ $.eventType = "UpdateTrail" }', True),
    ("{ $.sourceIPAddress != 123.123.* }", True),
    ('{ $.arrayKey[0] = "value" }', True),
    ("{ $.objectList[1].id = 2 }", True),
    ("{ $.SomeObject IS NULL }", True),
    ("{ $.SomeOtherObject NOT EXISTS }", True),
    ("{ $.ThisFlag IS TRUE }", True),
    ("{ $.['cluster.name'] = \"c\" }", True),
    ('{ $.eventType = "*" && $.sourceIPAddress != 123.123.* }', True),  # the dimensions example
    # The guide's negative statements about these selectors:
    ('{ $.arrayKey[0] = "another value" }', False),
    ("{ $.objectList[1].name = 2 }", False),  # "If the items ... do not have an id property, this will be false"
    ("{ $.eventType[0] = UpdateTrail }", False),  # "If arrayKey is not an array this will be false"
    ("{ $.SomeObject NOT EXISTS }", False),  # null is present
    ("{ $.ThisFlag IS FALSE }", False),
    ("{ $.eventType IS NULL }", False),
])
def test_guide_json_selectors(pattern, expected):
    assert fp.compile(pattern).matches(json.dumps(GUIDE_EVENT)) is expected


@pytest.mark.parametrize("pattern, expected", [
    ('{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }', True),
    ('{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch" && $.actions[2] = "nonmatch" }',
     True),
    ('{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch") && $.actions[2] = "nonmatch" }',
     False),
    ('{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }', False),
    # The older guide's spellings, with bare values:
    ('{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }', True),
    ('{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }',
     False),
])
def test_guide_compound_expressions(pattern, expected):
    assert fp.compile(pattern).matches(json.dumps(COMPOUND_EVENT)) is expected


def test_guide_selector_on_an_array_matches_neither_way():
    # "both {$.users = 1} and {$.users != 1} will fail to match a log event where users is an array"
    assert matching("{$.users = 1}", [{"users": [1, 2, 3]}]) == []
    assert matching("{$.users != 1}", [{"users": [1, 2, 3]}]) == []


NUMBERS = {"bandwidth": 80, "latency": 30, "refreshRate": 60, "responseTime": 5, "errorCode": 400,
           "number": [0.001], "numbers": [0.005], "processes": [{}, {}, {}, {}, {"averageRuntime": 55.5}]}


@pytest.mark.parametrize("pattern, expected", [
    # The guide's numeric syntax examples; the guide gives no event for them, so NUMBERS is ours.
    ("{ $.bandwidth > 75 }", True), ("{ $.latency < 50 }", True), ("{ $.refreshRate >= 60 }", True),
    ("{ $.responseTime <= 5 }", True), ("{ $.errorCode = 400}", True), ("{ $.errorCode != 500 }", True),
    ("{ $.number[0] = 1e-3 }", True), ("{ $.number[0] != 1e+3 }", True),
    ("{ $.latency >= 500 }", False), ("{ $.numbers[0] < 10e3 }", True), ("{ $.numbers[0] < 10e-3 }", True),
    ("{ $.processes[4].averageRuntime <= 55.5 }", True), ("{ $.latency > +1000 }", False),
    ("{ $.bandwidth > 80 }", False), ("{ $.bandwidth < 80 }", False), ("{ $.errorCode != 400 }", False),
])
def test_guide_numeric_comparisons(pattern, expected):
    assert fp.compile(pattern).matches(json.dumps(NUMBERS)) is expected


def test_guide_metric_value_and_dimension_selectors():
    latency = json.dumps({"latency": 50, "requestType": "GET"})
    match = fp.compile("{ $.latency = * }").match(latency)
    assert match is not None and match.value("$.latency") == 50 and match.extracted == {}
    match = fp.compile('{ $.eventType = "*" && $.sourceIPAddress != 123.123.* }').match(json.dumps(GUIDE_EVENT))
    assert match.value("$.eventType") == "UpdateTrail"
    assert match.value("$.objectList[1].id") == 2 and match.value("$.arrayKey") is None
    assert match.value("$.nope") is None and match.value("$.SomeObject") is None


def test_guide_unsupported_is_not_and_exists():
    # "The variables IS NOT and EXISTS currently aren't supported."
    for pattern in ("{ $.SomeObject IS NOT NULL }", "{ $.SomeObject EXISTS }"):
        with pytest.raises(FilterPatternError):
            fp.compile(pattern)


APACHE = '127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
APACHE_FIELDS = {"$ip": "127.0.0.1", "$user": "Prod", "$username": "frank",
                 "$timestamp": "10/Oct/2000:13:25:15 -0700", "$request": "GET /index.html HTTP/1.0",
                 "$status_code": "404", "$bytes": "1534"}


@pytest.mark.parametrize("pattern", [
    "[ip, user, username, timestamp, request =*.html*, status_code = 4*, bytes]",
    "[ip, user, username, timestamp, request =*.html*, status_code = 404 || status_code = 410, bytes]",
])
def test_guide_delimited_extracted_fields(pattern):
    assert fp.compile(pattern).match(APACHE).extracted == APACHE_FIELDS


def test_guide_delimited_ellipsis_and_dimension():
    match = fp.compile("[..., request =*.html*, status_code = 4*, bytes]").match(APACHE)
    assert {k: match.extracted[k] for k in ("$request", "$status_code", "$bytes")} == {
        "$request": "GET /index.html HTTP/1.0", "$status_code": "404", "$bytes": "1534"}
    match = fp.compile("[ip, server, username, timestamp, request, status_code, bytes > 1000]").match(APACHE)
    assert match.value("$server") == "Prod" and match.value("$bytes") == "1534"
    assert match.extracted == {("$server" if k == "$user" else k): v for k, v in APACHE_FIELDS.items()}


def test_older_guide_delimited_extracted_fields_with_unnamed_slots():
    # The older guide's example: ellipsis fields and the slot a trailing comma leaves come back by position.
    # (The guide prints "$request": "GET /products/index.html HTTP/1.0" for this event, a typo in its output.)
    event = '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534'
    assert fp.compile("[..., request=*.html*, status_code=4*,]").match(event).extracted == {
        "$status_code": "404", "$request": "GET /index.html HTTP/1.0", "$7": "1534",
        "$4": "10/Oct/2000:13:25:15 -0700", "$3": "frank", "$2": "-", "$1": "127.0.0.1"}


APACHE_LINES = [
    '127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534',
    '127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 500 5324',
    '127.0.0.1 - frank [10/Oct/2000:13:50:35 -0700] "GET /apache_pb.gif HTTP/1.0" 200 4355',
]


@pytest.mark.parametrize("pattern, expected", [
    ("[ip, user, username, timestamp, request, status_code, bytes]", [0, 1, 2]),
    ("[..., status_code, bytes]", [0, 1, 2]),
    ("[ip, user, ..., status_code, bytes]", [0, 1, 2]),
    ("[ip, user, ...]", [0, 1, 2]),
    ("[ip, user, username, timestamp, request, status_code, bytes > 1000]", [0, 1, 2]),
    ("[ip, user, username, timestamp, request, status_code = 200, bytes]", [0, 2]),
    ("[ip, user, username, timestamp, request, status_code = 4*, bytes]", []),
    ("[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]", []),
    ("[ip, user, username, timestamp, request, status_code = 5* && status_code != 503, bytes]", [1]),
    ("[ip, user, username, timestamp, request, status_code, bytes > 4000]", [1, 2]),
    ("[ip, user, username, timestamp]", []),  # 4 slots never fit 7 fields
])
def test_older_guide_delimited_conditions(pattern, expected):
    assert matching(pattern, APACHE_LINES) == [APACHE_LINES[i] for i in expected]


def test_guide_delimited_terms_in_order():
    events = ["ERROR message", "WARNING message", "INFO message", "ERROR WARNING message"]
    assert matching("[w1=ERROR, w2]", events) == ["ERROR message"]
    assert matching("[w1=ERROR || W1=WARNING, w2]", events) == ["ERROR message", "WARNING message"]
    assert matching("[w1!=ERROR && w1!=WARNING, w2]", events) == ["INFO message"]


def test_doc_example_reported_invalid_by_aws():
    # awsdocs issue #21: AWS answers "Invalid filter pattern" for && across two fields, as the older guide wrote.
    with pytest.raises(FilterPatternError, match="must all be on field 'status_code'"):
        fp.compile("[ip, user, username, timestamp, request, status_code = 4* && bytes > 1000]")


def test_observed_not_equal_on_absent_field_does_not_match():
    # DataBiosphere/azul#5884, tested in the console: `!=` on a field the event lacks is no match.
    pattern = '{($.errorCode = "AccessDenied") && ($.userIdentity.invokedBy != "cloudfront.amazonaws.com")}'
    assert matching(pattern, [{"errorCode": "AccessDenied", "userIdentity": {"accountId": "anonymous"}}]) == []
    assert len(matching(pattern, [{"errorCode": "AccessDenied", "userIdentity": {"invokedBy": "x"}}])) == 1


@pytest.mark.parametrize("pattern, event, expected", [
    ('{ $.code = "400" }', {"code": 400}, True),  # string comparison on a number: its JSON text
    ("{ $.code = 4* }", {"code": 404}, True),
    ("{ $.code = 400 }", {"code": "400"}, True),  # numeric comparison reads a numeric string
    ("{ $.code > 399 }", {"code": "400"}, True),
    ("{ $.code > 399 }", {"code": "abc"}, False),
    ("{ $.code != 500 }", {"code": "abc"}, False),  # not a number: neither = nor != holds
    ('{ $.flag = "true" }', {"flag": True}, False),  # booleans are not value nodes: use IS TRUE
    ('{ $.flag != "x" }', {"flag": True}, False),
    ('{ $.v != "x" }', {"v": None}, False),
    ('{ $.a = "x" }', {"a": ["x"]}, False),  # no element matching: the guide's array rule
    ('{ $.a != "x" }', {"a": {"b": 1}}, False),
    ("{ $.a.b NOT EXISTS }", {"a": "text"}, True),
    ("{ $.a[3] NOT EXISTS }", {"a": [1]}, True),
    ('{ $.a = "Ev*ent" }', {"a": "EvXYZent"}, True),  # infix wildcard (the current guide; the older said literal)
    ('{ $.a = "Ev*ent" }', {"a": "Event"}, True),
    ('{ $.a = "*" }', {"a": ""}, True),
    ('{ $.a = "a*b*c" }', {"a": "a-b-d"}, False),
    ('{ $.a = "say \\"hi\\"" }', {"a": 'say "hi"'}, True),
    ("{ $.a = %^[0-9]+$% }", {"a": 123}, True),
    ("{ $.a != %^[0-9]+$% }", {"a": "12a"}, True),
    ("{ $.a-b.c_d = 1 }", {"a-b": {"c_d": 1}}, True),
    ("{ $.account = 123456789012 }", {"account": "123456789012"}, True),
    ("{ $.id = 123456789012345678 }", {"id": 123456789012345679}, False),  # integers compare exactly
    # Alternatives on one selector are compiled together: same answers as one by one.
    ('{ $.a = "1*" || $.a = "*9" }', {"a": 29}, True),
    ('{ $.a = "1*" || $.a = "*9" }', {"a": "1x"}, True),
    ('{ $.a = "1*" || $.a = "*9" }', {"a": 30}, False),
    ("{ $.a = x || $.a = y || $.a = 3* || $.a != z }", {"a": ["x"]}, False),
    ("{ $.a = x || $.a = y || $.a = 3* }", {"a": 35}, True),
    ("{ $.a = x || $.a = y || $.b = 1 }", {"a": "y"}, True),
    ("{ $.a = x || $.a = y }", {"a": {"x": 1}}, False),
])
def test_decided_json_semantics(pattern, event, expected):
    assert fp.compile(pattern).matches(json.dumps(event)) is expected


@pytest.mark.parametrize("message", ["not json", "[1, 2]", '"text"', "12", "null", "", "{broken"])
def test_non_object_messages_never_match_json_patterns(message):
    for pattern in ("{ $.a NOT EXISTS }", "{ $.a.b.c.d.e.f NOT EXISTS }", '{ $.a != "x" || $.b NOT EXISTS }'):
        assert fp.compile(pattern).matches(message) is False
        assert fp.compile(pattern).match(message) is None


def test_text_pattern_decisions():
    # `?` terms only count without plain terms (observed in the console; the guide is silent).
    assert matching("ERROR ?WARN", ["ERROR x", "WARN x", "ERROR WARN"]) == ["ERROR x", "ERROR WARN"]
    assert matching("?ERROR ?WARN -x", ["ERROR x", "WARN y", "z"]) == ["WARN y"]
    assert matching("-WARN", ["ERROR", "WARN"]) == ["ERROR"]
    assert matching("error", ["ERROR"]) == []  # case-sensitive
    assert matching('"[ERROR]"', ["x [ERROR] y", "ERROR"]) == ["x [ERROR] y"]


def test_delimited_fields_and_ellipses():
    assert fp.compile('[a, b = "x y", c]').matches('1 "x y" [3 4]')
    assert fp.compile("[a, ..., b = end, ..., c]").match("1 2 end 3 4").extracted == {
        "$a": "1", "$2": "2", "$b": "end", "$4": "3", "$c": "4"}
    assert not fp.compile("[a, ..., b = end, ..., c]").matches("1 2 3 4")
    assert fp.compile("[...]").matches("") and fp.compile("[a]").matches("  spaced   ") is True
    assert not fp.compile("[a, b]").matches("one")


@pytest.mark.parametrize("pattern, canonical", [
    ("{($.eventName=DeleteGroupPolicy)||($.eventName=PutUserPolicy)}",
     '{ $.eventName = "DeleteGroupPolicy" || $.eventName = "PutUserPolicy" }'),
    ("{(($.a=1||$.b=-2.50)&&($.c IS NULL))}", "{ ($.a = 1 || $.b = -2.50) && $.c IS NULL }"),
    ("{ $.['cluster.name'][0] NOT EXISTS }", "{ $.['cluster.name'][0] NOT EXISTS }"),
    ('{ $.a = %^x[0-9]+$% || $.b != "q\\"t" }', '{ $.a = %^x[0-9]+$% || $.b != "q\\"t" }'),
    ("[ip,user,...,status_code=4*&&status_code!=403,bytes>1000,]",
     '[ip, user, ..., status_code = "4*" && status_code != 403, bytes > 1000, ]'),
    ('ERROR   ?"a b"  - "x"', 'ERROR ?"a b" -"x"'),
    ("  %ab+c%  ", "%ab+c%"),
])
def test_canonical_rendering(pattern, canonical):
    assert str(fp.compile(pattern)) == canonical
    assert str(fp.compile(canonical)) == canonical


def test_empty_pattern_matches_everything():
    for pattern in ("", "   "):
        p = fp.compile(pattern)
        assert p.kind == "all" and p.matches("anything") and p.match("{}").extracted == {} and str(p) == ""


def test_kinds_cache_and_parsed_argument():
    assert [fp.compile(p).kind for p in ("{ $.a = 1 }", "a b", "[a]", "%a%", "")] == [
        "json", "text", "delimited", "text", "all"]
    assert fp.compile("{ $.a = 1 }") is fp.compile("{ $.a = 1 }")
    p = fp.compile("{ $.a = 1 }")
    assert p.matches("ignored", {"a": 1}) and not p.matches('{"a": 1}', {"a": 2})
    assert p.matches('{"a": 1}', MISSING) and p.match("ignored", {"a": 1}).value("$.a") == 1


def test_pattern_set_agrees_with_each_pattern():
    patterns = list(CONTROLS.values()) + ["ERROR", "[a, b = 2*]", "", '{ $.eventName = "StopLogging" }']
    pset = PatternSet(patterns)
    for record in FIXTURE_RECORDS + [{"a": 1}, [], None]:
        line = json.dumps(record)
        expected = [i for i, p in enumerate(pset.patterns) if p.matches(line)]
        assert pset.matching(line) == expected == pset.matching(line, json.loads(line))
    assert PatternSet(["ERROR"]).matching("x ERROR") == [0] and len(pset) == len(patterns)


FIXTURE_RECORDS = [r for path in sorted(FIXTURES.glob("*.json")) for r in json.loads(path.read_text())]

# What each fixture event must trigger; every other event triggers nothing.
FIXTURE_EXPECTATIONS = {
    "StopLogging": {"4.5"},
    "DeleteTrail": {"4.5"},
    "PutEventSelectors": set(),  # CIS 4.5 lists Create/Update/DeleteTrail and Start/StopLogging only
    "DeleteFlowLogs": set(),  # no CIS control watches flow logs
    "RunInstances": {"4.1"},  # errorCode Client.UnauthorizedOperation ends with "UnauthorizedOperation"
    "AuthorizeSecurityGroupIngress": {"4.10"},
    "ConsoleLogin": {"4.2"},  # MFAUsed "No" != "Yes"; a success, so 4.6 does not fire; an IAMUser, not Root
    "AttachRolePolicy": {"4.4"},
    "CreateRole": set(),  # creating a role changes no policy
}


def triggered(record: object) -> set[str]:
    line = json.dumps(record)
    parsed = json.loads(line)
    return {cid for cid, pattern in CONTROLS.items() if fp.compile(pattern).matches(line, parsed)}


def test_cis_patterns_all_compile_as_json():
    assert len(CONTROLS) == 15
    assert all(fp.compile(p).kind == "json" for p in CONTROLS.values())


@pytest.mark.parametrize("record", FIXTURE_RECORDS, ids=lambda r: f"{r['eventSource'][:-14]}.{r['eventName']}")
def test_cis_patterns_on_fixture_records(record):
    assert triggered(record) == FIXTURE_EXPECTATIONS.get(record["eventName"], set())


def test_every_fixture_expectation_is_exercised():
    assert set(FIXTURE_EXPECTATIONS) <= {r["eventName"] for r in FIXTURE_RECORDS}


BASE = next(r for r in FIXTURE_RECORDS if r["eventName"] == "StopLogging")


def synthetic(changes: dict, drop: tuple = ()) -> dict:
    """A real record with some keys replaced (dotted paths) or removed."""
    record = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = record
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)
    for dotted in drop:
        *parents, last = dotted.split(".")
        node = record
        for key in parents:
            node = node[key]
        node.pop(last, None)
    return record


ROOT_USER = {"userIdentity": {"type": "Root", "principalId": "123456789012", "arn": "arn:aws:iam::123456789012:root",
                              "accountId": "123456789012"}}


@pytest.mark.parametrize("changes, drop, expected", [
    # 4.1: the error code, with and without the ANDed exclusions.
    ({"errorCode": "AccessDenied", "eventSource": "s3.amazonaws.com", "eventName": "GetObject"}, (), {"4.1"}),
    ({"errorCode": "AccessDeniedException", "eventSource": "kms.amazonaws.com", "eventName": "Decrypt"}, (), {"4.1"}),
    ({"errorCode": "Client.UnauthorizedOperation", "eventSource": "ec2.amazonaws.com", "eventName": "StopInstances"},
     (), {"4.1"}),
    ({"errorCode": "AccessDenied", "eventSource": "s3.amazonaws.com", "eventName": "HeadBucket"}, (), set()),
    ({"errorCode": "AccessDenied", "eventName": "GetObject", "sourceIPAddress": "delivery.logs.amazonaws.com"}, (),
     set()),
    ({"errorCode": "ThrottlingException", "eventName": "GetObject"}, (), set()),
    ({"errorCode": "NotAccessDenied", "eventName": "GetObject"}, (), set()),  # "AccessDenied*" is a prefix
    # 4.1 on an event without sourceIPAddress: `!=` on an absent field is no match (as AWS).
    ({"errorCode": "AccessDenied", "eventName": "GetObject"}, ("sourceIPAddress",), set()),
    # An unauthorized call to a watched API triggers both controls.
    ({"errorCode": "AccessDenied"}, (), {"4.1", "4.5"}),
    # 4.3 root usage: only the root's own calls, not a service acting for it, not service events.
    ({**ROOT_USER, "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com"}, (), {"4.3"}),
    ({**ROOT_USER, "eventName": "ListBuckets", "userIdentity.invokedBy": "support.amazonaws.com"}, (), set()),
    ({**ROOT_USER, "eventName": "ListBuckets", "eventType": "AwsServiceEvent"}, (), set()),
    ({**ROOT_USER}, (), {"4.3", "4.5"}),  # the root stopping a trail
    # 4.2 / 4.6 console sign-in.
    ({"eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com", "errorMessage": "Failed authentication",
      "responseElements": {"ConsoleLogin": "Failure"}, "additionalEventData": {"MFAUsed": "No"}}, (), {"4.2", "4.6"}),
    ({"eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com", "additionalEventData": {"MFAUsed": "Yes"}},
     (), set()),
    ({"eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com"}, (), set()),  # no MFAUsed: `!=` fails
    ({**ROOT_USER, "eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com",
      "additionalEventData": {"MFAUsed": "No"}}, (), {"4.2", "4.3"}),
    # 4.4 IAM policy changes, 4.7 KMS, 4.8 S3 bucket policy, 4.9 Config.
    ({"eventName": "PutUserPolicy", "eventSource": "iam.amazonaws.com"}, (), {"4.4"}),
    ({"eventName": "DisableKey", "eventSource": "kms.amazonaws.com"}, (), {"4.7"}),
    ({"eventName": "ScheduleKeyDeletion", "eventSource": "kms.amazonaws.com"}, (), {"4.7"}),
    ({"eventName": "DisableKey", "eventSource": "cloudtrail.amazonaws.com"}, (), set()),  # 4.7 checks the source
    ({"eventName": "PutBucketPolicy", "eventSource": "s3.amazonaws.com"}, (), {"4.8"}),
    ({"eventName": "DeleteBucketPolicy", "eventSource": "s3.amazonaws.com"}, (), {"4.8"}),
    ({"eventName": "StopConfigurationRecorder", "eventSource": "config.amazonaws.com"}, (), {"4.9"}),
    ({"eventName": "PutDeliveryChannel", "eventSource": "config.amazonaws.com"}, (), {"4.9"}),
    # 4.10-4.14 network changes (eventName only).
    ({"eventName": "RevokeSecurityGroupEgress", "eventSource": "ec2.amazonaws.com"}, (), {"4.10"}),
    ({"eventName": "CreateNetworkAclEntry", "eventSource": "ec2.amazonaws.com"}, (), {"4.11"}),
    ({"eventName": "ReplaceNetworkAclAssociation", "eventSource": "ec2.amazonaws.com"}, (), {"4.11"}),
    ({"eventName": "AttachInternetGateway", "eventSource": "ec2.amazonaws.com"}, (), {"4.12"}),
    ({"eventName": "CreateCustomerGateway", "eventSource": "ec2.amazonaws.com"}, (), {"4.12"}),
    ({"eventName": "CreateRoute", "eventSource": "ec2.amazonaws.com"}, (), {"4.13"}),
    ({"eventName": "DisassociateRouteTable", "eventSource": "ec2.amazonaws.com"}, (), {"4.13"}),
    ({"eventName": "CreateVpc", "eventSource": "ec2.amazonaws.com"}, (), {"4.14"}),
    ({"eventName": "CreateVpcPeeringConnection", "eventSource": "ec2.amazonaws.com"}, (), {"4.14"}),
    # 4.15 Organizations; CreatePolicy is also an IAM policy name, and 4.4 does not check the source.
    ({"eventName": "CreateAccount", "eventSource": "organizations.amazonaws.com"}, (), {"4.15"}),
    ({"eventName": "LeaveOrganization", "eventSource": "organizations.amazonaws.com"}, (), {"4.15"}),
    ({"eventName": "CreatePolicy", "eventSource": "organizations.amazonaws.com"}, (), {"4.4", "4.15"}),
    ({"eventName": "CreateAccount", "eventSource": "iam.amazonaws.com"}, (), set()),
    # Case matters, and an array or object where a string is expected matches nothing.
    ({"eventName": "stoplogging"}, (), set()),
    ({"eventName": ["StopLogging"]}, (), set()),
    ({"eventName": {"name": "StopLogging"}}, (), set()),
])
def test_cis_patterns_on_synthetic_records(changes, drop, expected):
    assert triggered(synthetic(changes, drop)) == expected


@pytest.mark.parametrize("pattern, position, reason", [
    ("{ $.eventName = }", 16, "expected a value after '='"),
    ("{ $.eventName = ", 16, "expected a value after '='"),
    ("{ $.a == 1 }", 6, "unknown operator '=='"),
    ("{ $.a => 1 }", 6, "unknown operator '=>'"),
    ("{ $.a LIKE 1 }", 6, "unknown operator 'LIKE'"),
    ("{ $.a ~ 1 }", 6, "unknown operator '~'"),
    ("{ $.a }", 6, "expected an operator after the selector $.a"),
    ("{ eventName = 1 }", 2, "a selector must start with '$.'"),
    ("{ $eventName = 1 }", 2, "a selector must start with '$.'"),
    ("{ $.* = 1 }", 4, "wildcard selectors are not supported"),
    ("{ $.a. = 1 }", 6, "expected a property name after '.'"),
    ("{ $.a[x] = 1 }", 5, "expected an array index"),
    ("{ $.['a.b = 1 }", 4, "unterminated quoted property name"),
    ("{ $.a = 1", 9, "a pattern that starts with '{' must end with '}'"),
    ("{ ($.a = 1 }", 11, "missing ')' to close the '(' at position 2"),
    ("{ (($.a = 1) }", 13, "missing ')' to close the '(' at position 2"),
    ("{ $.a = 1) }", 9, "unbalanced ')'"),
    ("{ $.a = 1 } extra", 12, "unexpected text after the closing '}'"),
    ('{ $.a = "abc }', 8, "unterminated quoted string"),
    ("{ $.a = 1 $.b = 2 }", 10, "expected '&&', '||' or '}'"),
    ("{ $.a = 1 & $.b = 2 }", 10, "unknown operator '&'"),
    ("{ $.a = 1 | $.b = 2 }", 10, "unknown operator '|'"),
    ("{ $.a = 1 && }", 13, "expected a condition after '&&'"),
    ("{ || $.a = 1 }", 2, "expected a condition after '{'"),
    ("{ }", 2, "expected a condition inside '{ }'"),
    ("{ () }", 3, "expected a condition after '('"),
    ('{ $.a > "5" }', 8, "'>' compares numbers"),
    ("{ $.a < abc }", 8, "'<' compares numbers"),
    ("{ $.a = ab@c }", 10, "unexpected character '@' in an unquoted value"),
    ("{ $.a IS NOT NULL }", 6, "'IS NOT' is not supported"),
    ("{ $.a IS EMPTY }", 9, "expected NULL, TRUE or FALSE after IS"),
    ("{ $.a NOT NULL }", 10, "expected EXISTS after NOT"),
    ("{ $.a EXISTS }", 6, "'EXISTS' is not supported"),
    ("{ $.a = %a(b% }", 10, "'(' and ')' are not supported in a regular expression"),
    ("{ $.a = %a!% }", 10, "'!' is not supported in a regular expression"),
    ("{ $.a = %ab }", 8, "unterminated regular expression"),
    ("{ $.a = %a% || $.b = %b% || $.c = %c% }", 34, "at most 2 regular expressions"),
    ("{" + "(" * 60 + "$.a = 1" + ")" * 60 + "}", 49, "parentheses nested more than"),
    ('ERROR "abc', 6, "unterminated quoted string"),
    ("user@example.com", 4, "unexpected character '@' in the term 'user'"),
    ("ERROR: x", 5, "unexpected character ':'"),
    ("(ERROR)", 0, "unexpected character '('"),
    ("? ERROR", 0, "expected a term or a quoted phrase after '?'"),
    ("ERROR -", 6, "expected a term or a quoted phrase after '-'"),
    ('"a""b"', 3, "expected a space after the closing quote"),
    ("%abc% x", 6, "must be the whole pattern"),
    ("[a, b", 5, "a pattern that starts with '[' must end with ']'"),
    ("[]", 1, "expected a field name or '...'"),
    ("[a,,b]", 3, "expected a field name or '...'"),
    ("[a b]", 3, "expected an operator, ',' or ']' after field 'a'"),
    ("[a = ]", 5, "expected a value after '='"),
    ("[a = 1 && b = 2]", 10, "must all be on field 'a'"),
    ("[a = 1 || ]", 10, "must all be on field 'a'"),
    ("[a, a]", 4, "field name 'a' is used twice"),
    ("[a] x", 4, "unexpected text after the closing ']'"),
    ("[a = 1 & b]", 7, "unknown operator '&'"),
    ("x" * 1025, 1024, "at most 1024 characters"),
])
def test_errors_name_position_and_reason(pattern, position, reason):
    with pytest.raises(FilterPatternError) as info:
        fp.compile(pattern)
    assert (info.value.position, reason in info.value.reason) == (position, True), info.value.reason
    assert str(info.value) == f"Invalid filter pattern at position {position}: {info.value.reason}"
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


def test_error_message_format_from_the_brief():
    with pytest.raises(FilterPatternError, match=re.escape("Invalid filter pattern at position 14: "
                                                           "expected a value after '='")):
        fp.compile("{ $.eventName=}")


KEYS = ["a", "b", "c-d", "e_f", "x.y"]
TEXTS = ["", "a", "ab", "b", "10", "x y", "A", "-3.5", 'q"t', "b\\s"]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-20, 20), st.sampled_from([0.5, -3.5, 1e-3, 10.0]),
                         st.sampled_from(TEXTS))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)), max_leaves=8)
json_objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5)

paths = st.tuples(st.sampled_from(KEYS), st.lists(st.one_of(st.sampled_from(KEYS), st.integers(0, 2)), max_size=2)
                  ).map(lambda t: (t[0], *t[1]))
spaces = st.sampled_from(["", " ", "  "])


def render_path(path: tuple) -> str:
    out = "$"
    for seg in path:
        out += f"[{seg}]" if isinstance(seg, int) else f".{seg}" if re.fullmatch(r"[\w-]+", seg) else f".['{seg}']"
    return out


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


string_values = st.one_of(
    st.text(alphabet="ab1-.*", min_size=1, max_size=4).filter(lambda t: not re.fullmatch(r"[+-]?[\d.]+", t) or
                                                              bool(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", t))),
    st.text(alphabet='ab1 -*"\\', max_size=4).map(quote),
)
numbers = st.one_of(st.integers(-20, 20).map(str), st.sampled_from(["0.5", "-3.5", "1e-3", "+10", "10e0", ".5"]))

conditions = st.one_of(
    st.tuples(paths, st.sampled_from(["=", "!="]), string_values),
    st.tuples(paths, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), numbers),
    st.tuples(paths, st.sampled_from(["IS NULL", "IS TRUE", "IS FALSE", "NOT EXISTS"]), st.just(None)),
)


def render_condition(cond: tuple, gap: str) -> str:
    path, op, value = cond
    return f"{render_path(path)} {op}" if value is None else f"{render_path(path)}{gap}{op}{gap}{value}"


# An expression is ("cond", c) | ("and"/"or", left, right) | ("paren", e); rendered with random spacing.
expressions = st.recursive(
    conditions.map(lambda c: ("cond", c)),
    lambda inner: st.one_of(st.tuples(st.sampled_from(["and", "or"]), inner, inner),
                            st.tuples(st.just("paren"), inner)),
    max_leaves=6)


def render(expr: tuple, gap: str = " ") -> str:
    if expr[0] == "cond":
        return render_condition(expr[1], gap)
    if expr[0] == "paren":
        return f"({gap}{render(expr[1], gap)}{gap})"
    return f"{render(expr[1], gap)}{gap}{'&&' if expr[0] == 'and' else '||'}{gap}{render(expr[2], gap)}"


def resolve(obj: object, path: tuple) -> object:
    for seg in path:
        if isinstance(seg, int):
            if not isinstance(obj, list) or seg >= len(obj):
                return MISSING
        elif not isinstance(obj, dict) or seg not in obj:
            return MISSING
        obj = obj[seg]
    return obj


def reference_tree(node, obj: object) -> bool:
    """The semantics written plainly, walking the parsed tree: an oracle for the generated code."""
    if not isinstance(obj, dict):
        return False
    if isinstance(node, fp._And):
        return all(reference_tree(i, obj) for i in node.items)
    if isinstance(node, fp._Or):
        return any(reference_tree(i, obj) for i in node.items)
    value = resolve(obj, node.sel.path)
    if isinstance(node, fp._Is):
        return {"IS NULL": value is None, "IS TRUE": value is True, "IS FALSE": value is False,
                "NOT EXISTS": value is MISSING}[node.what]
    is_number = type(value) in (int, float)
    if not (is_number or type(value) is str):
        return False
    if node.val.kind == "num":
        if not is_number:
            if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
                return False
            value = float(value)
        target = node.val.data
        return {"=": value == target, "!=": value != target, "<": value < target, "<=": value <= target,
                ">": value > target, ">=": value >= target}[node.op]
    text = value if type(value) is str else str(value)
    if node.val.kind == "regex":
        hit = node.val.regex.search(text) is not None
    else:
        hit = re.fullmatch(".*".join(map(re.escape, node.val.data.split("*"))), text, re.DOTALL) is not None
    return hit if node.op == "=" else not hit


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.one_of(st.text(max_size=40), st.text(alphabet='{}[]()$.=!<>&|"%*?-, abIS_NOTEXNUL0123\'\\', max_size=40)))
def test_parser_only_ever_raises_filter_pattern_error(text):
    try:
        pattern = fp.compile(text)
    except FilterPatternError as exc:
        assert 0 <= exc.position <= len(text)
        return
    for message in ("", "a b", '{"a": 1, "b": [1, "x"]}', "[1] 2"):
        assert pattern.matches(message) in (True, False)
        pattern.match(message)
    assert str(fp.compile(str(pattern))) == str(pattern)


@FAST
@given(expressions, spaces, st.lists(json_objects, min_size=1, max_size=4))
def test_generated_code_agrees_with_the_reference_semantics(expr, gap, objects):
    pattern = fp.compile(f"{{{gap}{render(expr, gap)}{gap}}}")
    for obj in objects:
        assert pattern.matches(json.dumps(obj)) is reference_tree(pattern._tree, obj), (str(pattern), obj)


@FAST
@given(expressions, spaces, st.lists(json_objects, min_size=1, max_size=4))
def test_rendering_reparses_to_an_equivalent_pattern(expr, gap, objects):
    pattern = fp.compile(f"{{{gap}{render(expr, gap)}{gap}}}")
    again = fp.compile(str(pattern))
    assert str(again) == str(pattern)
    for obj in objects:
        line = json.dumps(obj)
        assert again.matches(line) is pattern.matches(line)


@FAST
@given(expressions, expressions, st.lists(json_objects, min_size=1, max_size=4))
def test_and_or_combine_as_boolean_operators(a, b, objects):
    pa, pb = fp.compile(f"{{ {render(a)} }}"), fp.compile(f"{{ {render(b)} }}")
    both = fp.compile(f"{{ ({render(a)}) && ({render(b)}) }}")
    either = fp.compile(f"{{ ({render(a)}) || ({render(b)}) }}")
    for obj in objects:
        line = json.dumps(obj)
        assert both.matches(line) is (pa.matches(line) and pb.matches(line))
        assert either.matches(line) is (pa.matches(line) or pb.matches(line))


terms = st.tuples(st.sampled_from(["", "?", "-"]),
                  st.one_of(st.text(alphabet="abAB1_", min_size=1, max_size=3),
                            st.text(alphabet="ab ]-:", max_size=3).map(quote)))


@FAST
@given(st.lists(terms, min_size=1, max_size=4), st.lists(st.text(alphabet="abAB1_ ]-:", max_size=12), max_size=4))
def test_text_patterns_render_and_reparse(items, messages):
    pattern = fp.compile(" ".join(mode + body for mode, body in items))
    again = fp.compile(str(pattern))
    assert str(again) == str(pattern)
    assert [again.matches(m) for m in messages] == [pattern.matches(m) for m in messages]


field_conditions = st.lists(st.tuples(st.sampled_from(["&&", "||"]), st.sampled_from(["=", "!="]),
                                      st.one_of(string_values, numbers)), max_size=2)
slots = st.one_of(st.just(None), st.just([]), st.tuples(st.just("&&"), st.just("="), numbers).flatmap(
    lambda first: field_conditions.map(lambda rest: [first, *rest])))


@FAST
@given(st.lists(slots, min_size=1, max_size=4), st.lists(st.text(alphabet='ab1 -"[]*', max_size=10), max_size=4))
def test_delimited_patterns_render_and_reparse(items, messages):
    """items: None is `...`, [] a bare field, else (joiner, op, value) conditions on that field."""
    rendered = []
    for i, conditions in enumerate(items):
        text = "..." if conditions is None else f"f{i}"
        for n, (joiner, op, value) in enumerate(conditions or ()):
            text += f" {op} {value}" if n == 0 else f" {joiner} f{i} {op} {value}"
        rendered.append(text)
    pattern = fp.compile("[" + ", ".join(rendered) + "]")
    again = fp.compile(str(pattern))
    assert str(again) == str(pattern)
    for message in messages:
        first, second = pattern.match(message), again.match(message)
        assert (first and first.extracted) == (second and second.extracted)
