"""EventBridge content filtering through arrays of objects, as the plane's rules match them."""

import json

import pytest
from moto.events.models import EventPattern

from harness.emulator.motoadapter import flatten_arrays

# A real-shaped AuthorizeSecurityGroupIngress record's permissions (SDK form: ipPermissions.items[].ipRanges.items[]).
INGRESS = {"detail": {"eventName": "AuthorizeSecurityGroupIngress", "requestParameters": {"ipPermissions": {"items": [
    {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}},
    {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}},
]}}}}


def matches(pattern: dict, event: dict) -> bool:
    return EventPattern.load(json.dumps(pattern)).matches_event(flatten_arrays(event))


@pytest.mark.parametrize("pattern,expected", [
    ({"detail": {"requestParameters": {"ipPermissions": {"items": {"ipRanges": {"items": {
        "cidrIp": ["0.0.0.0/0"]}}}}}}}, True),
    ({"detail": {"requestParameters": {"ipPermissions": {"items": {"fromPort": [{"numeric": ["<=", 22]}]}}}}}, True),
    ({"detail": {"requestParameters": {"ipPermissions": {"items": {"ipRanges": {"items": {
        "cidrIp": ["::/0"]}}}}}}}, False),
    ({"detail": {"requestParameters": {"ipPermissions": {"items": {"fromPort": [3389]}}}}}, False),
    ({"detail": {"eventName": [{"prefix": "Authorize"}]}}, True),
])
def test_a_pattern_reaches_every_element_of_an_array_of_objects(pattern, expected):
    assert matches(pattern, INGRESS) is expected


def test_keys_of_one_pattern_object_match_independently_across_elements():
    # AWS flattens arrays: fromPort 443 (first element) and the world range (second) together still match.
    pattern = {"detail": {"requestParameters": {"ipPermissions": {"items": {
        "fromPort": [443], "ipRanges": {"items": {"cidrIp": ["0.0.0.0/0"]}}}}}}}
    assert matches(pattern, INGRESS)


def test_flattening_keeps_scalars_and_empty_arrays():
    assert flatten_arrays({"a": [1, 2], "b": [], "c": "x"}) == {"a": [1, 2], "b": [], "c": "x"}
    assert flatten_arrays({"a": [{"b": 1}, {"b": [2, 3]}, {"c": 4}]}) == {"a": {"b": [1, 2, 3], "c": 4}}
