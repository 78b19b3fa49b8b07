"""Resource-policy evaluation as IAM documents it, for the statements the plane enforces (topic and key policies)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

__all__ = ["Principal", "KNOWN_KEYS", "caller", "has_deny", "denies", "allows", "statement_applies", "condition_holds"]

# The condition keys the plane can fill; a condition on any other key never holds (so a Deny using one does not
# apply). aws:SecureTransport is left out on purpose: the embedded endpoint is plain HTTP, AWS's is HTTPS.
KNOWN_KEYS = frozenset({
    "aws:principalarn", "aws:principalaccount", "aws:userid", "aws:username", "aws:sourceaccount",
    "aws:sourceowner", "aws:principaltype",
})


@dataclass(frozen=True)
class Principal:
    """Who asks: an IAM identity (its ARN, its role's ARN for a session, its account) or an AWS service."""

    arn: str = ""
    account: str = ""
    role_arn: str = ""
    service: str = ""


def caller(identity: Mapping[str, Any]) -> tuple[Principal, dict[str, str]]:
    """The principal and condition context behind a CloudTrail userIdentity (IAM user, assumed role or root)."""
    kind, account = identity.get("type", ""), identity.get("accountId", "")
    context = {"aws:principalaccount": account, "aws:userid": identity.get("principalId", ""),
               # SNS fills these with the caller's account for API calls (its default policy relies on it).
               "aws:sourceaccount": account, "aws:sourceowner": account}
    if kind == "AssumedRole":
        # aws:PrincipalArn is the role's ARN, not the session's; aws:username is absent for roles.
        role = identity.get("sessionContext", {}).get("sessionIssuer", {}).get("arn", "")
        context.update({"aws:principalarn": role, "aws:principaltype": "AssumedRole"})
        return Principal(arn=identity.get("arn", ""), account=account, role_arn=role), context
    context.update({"aws:principalarn": identity.get("arn", ""),
                    "aws:principaltype": "Account" if kind == "Root" else "User"})
    if kind == "IAMUser":
        context["aws:username"] = identity.get("userName", "")
    return Principal(arn=identity.get("arn", ""), account=account), context


def has_deny(policy: Mapping[str, Any] | None) -> bool:
    """Whether the policy has any Deny statement (most have none: the caller need not be looked up)."""
    return any(s.get("Effect") == "Deny" for s in _statements(policy))


def denies(policy: Mapping[str, Any] | None, *, action: str, resource: str, principal: Principal,
           context: Mapping[str, Any]) -> dict | None:
    """The first Deny statement that applies, or None."""
    for statement in _statements(policy):
        if statement.get("Effect") == "Deny" and statement_applies(
                statement, action=action, resource=resource, principal=principal, context=context):
            return statement
    return None


def allows(policy: Mapping[str, Any] | None, *, action: str, resource: str, principal: Principal,
           context: Mapping[str, Any]) -> bool:
    """An Allow statement applies and no Deny does (this policy alone: identity policies are not consulted)."""
    kw = dict(action=action, resource=resource, principal=principal, context=context)
    if denies(policy, **kw):
        return False
    return any(s.get("Effect") == "Allow" and statement_applies(s, **kw) for s in _statements(policy))


def statement_applies(statement: Mapping[str, Any], *, action: str, resource: str, principal: Principal,
                      context: Mapping[str, Any]) -> bool:
    """Principal/NotPrincipal, Action/NotAction, Resource/NotResource and Condition all match."""
    if "NotPrincipal" in statement:
        if _principal_matches(statement["NotPrincipal"], principal):
            return False
    elif not _principal_matches(statement.get("Principal"), principal):
        return False
    if "NotAction" in statement:
        if any(_glob(p, action, fold=True) for p in _list(statement["NotAction"])):
            return False
    elif not any(_glob(p, action, fold=True) for p in _list(statement.get("Action"))):
        return False
    if "NotResource" in statement:
        if any(_glob(p, resource) for p in _list(statement["NotResource"])):
            return False
    elif "Resource" in statement and not any(_glob(p, resource) for p in _list(statement["Resource"])):
        return False
    return condition_holds(statement.get("Condition") or {}, context)


def condition_holds(block: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """Every operator, and every key under it, holds (keys are case-insensitive, values case-sensitive)."""
    return all(_holds(operator, key, expected, context)
               for operator, keys in block.items() for key, expected in (keys or {}).items())


# -- matching ------------------------------------------------------------------------------------------


def _arn_like(value: str, pattern: str) -> bool:
    # ArnEquals and ArnLike are the same operator: each of the six colon-separated parts matched on its own.
    got, want = value.split(":", 5), pattern.split(":", 5)
    return len(got) == len(want) == 6 and all(_glob(w, g) for w, g in zip(want, got))


# operator -> (test of one context value against one policy value, negated)
_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (lambda v, p: v == p, False),
    "StringNotEquals": (lambda v, p: v == p, True),
    "StringEqualsIgnoreCase": (lambda v, p: v.lower() == p.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda v, p: v.lower() == p.lower(), True),
    "StringLike": (lambda v, p: _glob(p, v), False),
    "StringNotLike": (lambda v, p: _glob(p, v), True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
    "Bool": (lambda v, p: v.lower() == p.lower(), False),
}


def _holds(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name[:-len("IfExists")] if if_exists else name
    # Numeric, Date, IpAddress, Binary and Null operators, and unknown keys, are not emulated: never hold.
    if name not in _OPERATORS or qualifier not in ("", "ForAnyValue", "ForAllValues") or key.lower() not in KNOWN_KEYS:
        return False
    test, negated = _OPERATORS[name]
    wanted = [_text(w) for w in _list(expected)]

    def one(value: Any) -> bool:
        hit = any(test(_text(value), w) for w in wanted)
        return not hit if negated else hit

    present = context.get(key.lower())
    values = _list(present)
    if not values:
        # Absent key: IfExists and ForAllValues hold; otherwise only a negated operator does (IAM's documented rule).
        return if_exists or qualifier == "ForAllValues" or (negated and qualifier == "")
    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    return any(one(v) for v in values)


def _principal_matches(element: Any, principal: Principal) -> bool:
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return False
    for kind, values in element.items():
        for value in _list(values):
            if kind == "Service" and principal.service and value == principal.service:
                return True
            if kind == "AWS" and _aws_principal_matches(str(value), principal):
                return True
    return False


def _aws_principal_matches(value: str, principal: Principal) -> bool:
    if value == "*":
        return True
    if principal.service:
        return False
    if value == principal.account or value == f"arn:aws:iam::{principal.account}:root":
        return True  # the account stands for every principal in it
    # A role's ARN covers its sessions; a session ARN only that session.
    return value in (principal.arn, principal.role_arn) and value != ""


@lru_cache(maxsize=512)
def _pattern(pattern: str, fold: bool) -> re.Pattern:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if fold else re.DOTALL)


def _glob(pattern: Any, value: str, *, fold: bool = False) -> bool:
    """IAM wildcards: * any run of characters, ? one; actions compare case-insensitively."""
    return bool(_pattern(str(pattern), fold).match(value))


def _statements(policy: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not policy:
        return []
    return [s for s in _list(policy.get("Statement")) if isinstance(s, Mapping)]


def _list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value: Any) -> str:
    # JSON true/false in a policy compare as IAM's "true"/"false".
    return str(value).lower() if isinstance(value, bool) else str(value)
