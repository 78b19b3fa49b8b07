"""Resource-policy evaluation: principals, actions, resources and the condition operators the plane supports."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from harness.emulator import policy, records
from harness.emulator.policy import Principal

ACCOUNT = "123456789012"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:security"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/break-glass"
USER_IDENTITY = records.iam_user_identity(account_id=ACCOUNT, user_name="alice", user_id="AIDAALICE",
                                          access_key_id="AKIAALICE")
ROLE_IDENTITY = records.assumed_role_identity(account_id=ACCOUNT, role_name="break-glass", role_id="AROABREAK",
                                              session_name="oncall", access_key_id="ASIABREAK",
                                              issued_at=datetime(2024, 1, 1, tzinfo=timezone.utc))
USER, USER_CONTEXT = policy.caller(USER_IDENTITY)
SESSION, SESSION_CONTEXT = policy.caller(ROLE_IDENTITY)


def deny(**elements) -> dict:
    """A topic policy with one Deny statement; an element given as None is left out."""
    statement = {"Effect": "Deny", "Principal": "*", "Action": "sns:DeleteTopic", "Resource": TOPIC, **elements}
    return {"Version": "2012-10-17", "Statement": [{k: v for k, v in statement.items() if v is not None}]}


def denied(document: dict, who: Principal = USER, context: dict = USER_CONTEXT, action: str = "sns:DeleteTopic",
           resource: str = TOPIC) -> bool:
    return policy.denies(document, action=action, resource=resource, principal=who, context=context) is not None


# -- the caller -----------------------------------------------------------------------------------------


def test_an_iam_user_is_its_own_principal_arn_with_a_username():
    assert USER == Principal(arn=f"arn:aws:iam::{ACCOUNT}:user/alice", account=ACCOUNT)
    assert USER_CONTEXT == {"aws:principalarn": USER.arn, "aws:principalaccount": ACCOUNT, "aws:userid": "AIDAALICE",
                            "aws:username": "alice", "aws:sourceaccount": ACCOUNT, "aws:sourceowner": ACCOUNT,
                            "aws:principaltype": "User"}


def test_an_assumed_role_has_the_role_as_principal_arn_and_no_username():
    assert SESSION.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/break-glass/oncall"
    assert SESSION_CONTEXT["aws:principalarn"] == ROLE
    assert SESSION_CONTEXT["aws:userid"] == "AROABREAK:oncall"
    assert SESSION_CONTEXT["aws:principaltype"] == "AssumedRole"
    assert "aws:username" not in SESSION_CONTEXT


# -- principals, actions, resources -------------------------------------------------------------------


@pytest.mark.parametrize("element, user_matches, session_matches", [
    ("*", True, True),
    ({"AWS": "*"}, True, True),
    ({"AWS": ACCOUNT}, True, True),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, True, True),
    ({"AWS": "arn:aws:iam::210987654321:root"}, False, False),
    ({"AWS": f"arn:aws:iam::{ACCOUNT}:user/alice"}, True, False),
    ({"AWS": [f"arn:aws:iam::{ACCOUNT}:user/bob", ROLE]}, False, True),  # a role's ARN covers its sessions
    ({"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/break-glass/other"}, False, False),
    ({"Service": "events.amazonaws.com"}, False, False),
])
def test_principal_element(element, user_matches, session_matches):
    document = deny(Principal=element)
    assert denied(document, USER, USER_CONTEXT) is user_matches
    assert denied(document, SESSION, SESSION_CONTEXT) is session_matches


def test_a_service_principal_matches_service_and_wildcard_only():
    service = Principal(service="cloudwatch.amazonaws.com")
    assert denied(deny(Principal={"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]}), service, {})
    assert denied(deny(Principal={"AWS": "*"}), service, {})
    assert not denied(deny(Principal={"AWS": ACCOUNT}), service, {})


def test_not_principal_applies_to_everyone_else():
    document = deny(Principal=None, NotPrincipal={"AWS": ROLE})
    assert denied(document, USER, USER_CONTEXT)
    assert not denied(document, SESSION, SESSION_CONTEXT)


@pytest.mark.parametrize("action, matches", [
    ("sns:DeleteTopic", True), ("SNS:DeleteTopic", True), ("sns:deletetopic", True), ("sns:Delete*", True),
    ("SNS:*", True), ("*", True), ("sns:Delete?opic", True), ("sns:Publish", False), ("s3:DeleteTopic", False),
    (["sns:Publish", "sns:DeleteTopic"], True),
])
def test_action_element_is_case_insensitive_with_wildcards(action, matches):
    assert denied(deny(Action=action)) is matches


def test_not_action_applies_to_every_other_action():
    document = deny(Action=None, NotAction=["sns:Publish", "sns:Subscribe"])
    assert denied(document, action="sns:DeleteTopic")
    assert not denied(document, action="SNS:Publish")


@pytest.mark.parametrize("resource, matches", [
    (TOPIC, True), ("*", True), ("arn:aws:sns:*:*:sec*", True), (f"{TOPIC}-other", False),
    ("arn:aws:sns:us-east-1:123456789012:SECURITY", False),  # resources are case-sensitive
])
def test_resource_element(resource, matches):
    assert denied(deny(Resource=resource)) is matches


def test_not_resource_exempts_the_listed_resources():
    document = deny(Resource=None, NotResource=TOPIC)
    assert not denied(document)
    assert denied(document, resource=f"{TOPIC}-other")


# -- conditions ---------------------------------------------------------------------------------------


def holds(block: dict, context: dict = USER_CONTEXT) -> bool:
    return policy.condition_holds(block, context)


@pytest.mark.parametrize("block, expected", [
    ({"StringEquals": {"aws:username": "alice"}}, True),
    ({"StringEquals": {"aws:username": "Alice"}}, False),  # values are case-sensitive
    ({"StringEquals": {"AWS:UserName": "alice"}}, True),  # keys are not
    ({"StringEquals": {"aws:username": ["bob", "alice"]}}, True),  # several values: any
    ({"StringNotEquals": {"aws:username": "bob"}}, True),
    ({"StringNotEquals": {"aws:username": ["bob", "alice"]}}, False),  # negated: none of them
    ({"StringEqualsIgnoreCase": {"aws:username": "ALICE"}}, True),
    ({"StringLike": {"aws:principalarn": "arn:aws:iam::*:user/al*"}}, True),
    ({"StringLike": {"aws:username": "al?ce"}}, True),
    ({"StringLike": {"aws:username": "bo*"}}, False),
    ({"StringNotLike": {"aws:username": "bo*"}}, True),
    ({"ArnEquals": {"aws:principalarn": f"arn:aws:iam::{ACCOUNT}:user/alice"}}, True),
    ({"ArnLike": {"aws:principalarn": "arn:aws:iam::*:user/*"}}, True),
    ({"ArnLike": {"aws:principalarn": "arn:aws:iam::*:role/*"}}, False),
    ({"ArnNotEquals": {"aws:principalarn": ROLE}}, True),
    ({"ArnNotLike": {"aws:principalarn": "arn:aws:iam::*:user/*"}}, False),
    ({"StringEquals": {"aws:principaltype": "User", "aws:principalaccount": ACCOUNT}}, True),  # keys: all
    ({"StringEquals": {"aws:principaltype": "User"}, "StringLike": {"aws:username": "bob"}}, False),  # operators: all
])
def test_string_and_arn_operators(block, expected):
    assert holds(block) is expected


def test_role_session_is_matched_by_its_role_arn():
    assert holds({"ArnEquals": {"aws:PrincipalArn": ROLE}}, SESSION_CONTEXT)
    assert not holds({"ArnNotEquals": {"aws:PrincipalArn": ROLE}}, SESSION_CONTEXT)
    assert holds({"StringLike": {"aws:userid": "AROABREAK:*"}}, SESSION_CONTEXT)


def test_absent_key_fails_positive_operators_and_passes_negated_ones():
    # aws:username is absent for a role session (IAM's documented rule for missing keys).
    assert not holds({"StringEquals": {"aws:username": "alice"}}, SESSION_CONTEXT)
    assert holds({"StringNotEquals": {"aws:username": "alice"}}, SESSION_CONTEXT)
    assert holds({"StringEqualsIfExists": {"aws:username": "alice"}}, SESSION_CONTEXT)
    assert not holds({"StringEqualsIfExists": {"aws:username": "bob"}}, USER_CONTEXT)


def test_unknown_keys_and_unsupported_operators_never_hold():
    assert not holds({"StringEquals": {"aws:SourceVpce": "vpce-1"}})
    assert not holds({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}})
    assert not holds({"StringNotEqualsIfExists": {"s3:prefix": "x"}})
    assert not holds({"Bool": {"aws:SecureTransport": "false"}})  # the embedded endpoint is HTTP; AWS's is not
    assert not holds({"NumericLessThan": {"aws:username": "1"}})


def test_bool_compares_json_booleans_as_iam_strings():
    assert holds({"Bool": {"aws:principaltype": False}}, {"aws:principaltype": "false"})
    assert not holds({"Bool": {"aws:principaltype": True}}, {"aws:principaltype": "false"})


def test_set_qualifiers():
    context = {"aws:userid": ["a", "b"]}
    assert holds({"ForAnyValue:StringEquals": {"aws:userid": ["b", "c"]}}, context)
    assert not holds({"ForAllValues:StringEquals": {"aws:userid": ["b", "c"]}}, context)
    assert holds({"ForAllValues:StringEquals": {"aws:userid": ["a", "b", "c"]}}, context)
    assert holds({"ForAllValues:StringEquals": {"aws:userid": "x"}}, {})  # empty set: vacuously true
    assert not holds({"ForAnyValue:StringEquals": {"aws:userid": "x"}}, {})
    assert not holds({"ForAnyValue:StringLike": {"aws:userid": "z*"}}, context)


# -- whole policies -------------------------------------------------------------------------------------


BREAK_GLASS = deny(Action=["sns:DeleteTopic", "sns:Unsubscribe", "sns:SetTopicAttributes"],
                   Condition={"ArnNotEquals": {"aws:PrincipalArn": ROLE}})


def test_deny_exempting_a_role_refuses_the_user_not_the_role():
    assert denied(BREAK_GLASS, USER, USER_CONTEXT)
    assert not denied(BREAK_GLASS, SESSION, SESSION_CONTEXT)
    assert not denied(BREAK_GLASS, action="sns:Publish")


def test_a_deny_on_an_unknown_key_does_not_apply():
    assert not denied(deny(Condition={"StringEquals": {"aws:RequestedRegion": "us-east-1"}}))


def test_allows_needs_an_allow_and_no_deny():
    service = Principal(service="cloudwatch.amazonaws.com")
    grant = {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}
    key_policy = {"Statement": [grant]}
    kw = dict(resource="arn:aws:kms:us-east-1:123456789012:key/k", principal=service, context={})
    assert policy.allows(key_policy, action="kms:GenerateDataKey", **kw)
    assert policy.allows(key_policy, action="kms:Decrypt", **kw)
    assert not policy.allows(key_policy, action="kms:Encrypt", **kw)
    assert not policy.allows({"Statement": [grant, {**grant, "Effect": "Deny", "Action": "kms:Decrypt"}]},
                             action="kms:Decrypt", **kw)
    assert not policy.allows(None, action="kms:Decrypt", **kw)
    assert policy.has_deny(BREAK_GLASS) and not policy.has_deny(key_policy)
