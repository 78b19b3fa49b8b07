"""Policy documents as the trace reads them (topic and key policies): statements, actions, principals, exemptions."""

from __future__ import annotations

import fnmatch
import json
from typing import Any


def statements_of(policy: str | dict | None) -> list[dict]:
    doc = json.loads(policy) if isinstance(policy, str) and policy else policy or {}
    found = doc.get("Statement", [])
    return [found] if isinstance(found, dict) else list(found)


def as_list(value: Any) -> list:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def acts_on(statement: dict, action: str) -> bool:
    """IAM action matching: wildcards, case-insensitive, NotAction inverted."""
    def covered(patterns: Any) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in as_list(patterns))
    if "NotAction" in statement:
        return not covered(statement["NotAction"])
    return covered(statement.get("Action"))


def everyone(statement: dict) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or isinstance(principal, dict) and "*" in as_list(principal.get("AWS"))


def names_service(statement: dict, service: str) -> bool:
    principal = statement.get("Principal")
    return principal == "*" or isinstance(principal, dict) and service in as_list(principal.get("Service"))


def exempts(statement: dict, role: str) -> bool:
    """The statement spares `role`: NotPrincipal names it, or a negated condition on aws:PrincipalArn does."""
    if isinstance(statement.get("NotPrincipal"), dict) and role in as_list(statement["NotPrincipal"].get("AWS")):
        return True
    for operator, tests in (statement.get("Condition") or {}).items():
        if "Not" not in operator.split(":")[-1]:
            continue
        for key, values in tests.items():
            if key.lower() == "aws:principalarn" and any(fnmatch.fnmatchcase(role, v) for v in as_list(values)):
                return True
    return False


def key_allows(statements: list[dict], service: str, action: str) -> bool:
    def applies(s: dict) -> bool:
        return names_service(s, service) and acts_on(s, action)
    denied = any(s.get("Effect") == "Deny" and applies(s) for s in statements)
    return not denied and any(s.get("Effect") == "Allow" and applies(s) for s in statements)
