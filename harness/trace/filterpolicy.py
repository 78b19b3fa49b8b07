"""SNS subscription filter policies: where one drops a message (the trace's own evaluator)."""

from __future__ import annotations

import ipaddress
from typing import Any

from harness.trace.policy import as_list

_MISSING = object()


def filter_drops(policy: dict, doc: Any, path: str = "") -> str | None:
    """Where an SNS filter policy drops the message (its first failing key), or None when the message passes."""
    for key, rule in policy.items():
        if key == "$or":
            if all(filter_drops(alternative, doc, path) is not None for alternative in rule):
                return f"{path}$or"
            continue
        here = f"{path}{key}"
        value = doc.get(key, _MISSING) if isinstance(doc, dict) else _MISSING
        if isinstance(rule, dict):  # a nested body key: any object below it may match
            candidates = [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, dict)] or [{}]
            if all(filter_drops(rule, v, f"{here}.") is not None for v in candidates):
                return here
        elif not any(_condition(c, value) for c in (rule if isinstance(rule, list) else [rule])):
            return here
    return None


def _condition(cond: Any, value: Any) -> bool:
    """One SNS filter condition against a value (lists match when any element does)."""
    values = value if isinstance(value, list) else [value]
    if isinstance(cond, dict):
        (op, arg), = cond.items()
        if op == "exists":
            return (value is not _MISSING) == bool(arg)
        if value is _MISSING:
            return False
        strings = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if op == "prefix":
            return any(v.startswith(arg) for v in strings)
        if op == "suffix":
            return any(v.endswith(arg) for v in strings)
        if op == "equals-ignore-case":
            return any(v.lower() == str(arg).lower() for v in strings)
        if op == "anything-but":
            return any(not _excluded(arg, v) for v in values)
        if op == "numeric":
            return any(_numeric(arg, v) for v in numbers)
        if op == "cidr":
            return any(_in_cidr(arg, v) for v in strings)
        return False  # an operator this evaluator does not know: assume it drops, and say where
    if value is _MISSING:
        return False
    if isinstance(cond, bool) or cond is None:
        return any(v is cond for v in values)
    if isinstance(cond, (int, float)):
        return any(isinstance(v, (int, float)) and not isinstance(v, bool) and v == cond for v in values)
    return any(v == cond for v in values)


def _excluded(arg: Any, v: Any) -> bool:
    if isinstance(arg, dict):
        (op, x), = arg.items()
        return isinstance(v, str) and (v.startswith(x) if op == "prefix" else v.endswith(x) if op == "suffix"
                                       else v.lower() in [s.lower() for s in as_list(x)])
    return v in (arg if isinstance(arg, list) else [arg])


def _numeric(arg: list, v: float) -> bool:
    tests = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
             ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
    return all(tests[arg[i]](v, float(arg[i + 1])) for i in range(0, len(arg) - 1, 2))


def _in_cidr(arg: str, v: str) -> bool:
    try:
        return ipaddress.ip_address(v) in ipaddress.ip_network(arg, strict=False)
    except ValueError:
        return False
