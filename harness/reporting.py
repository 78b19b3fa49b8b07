"""Allure reporting for scenarios; the only module that imports allure."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import allure

from harness.errors import ConfigError, verdict_of

SEVERITY_LEVELS = {
    "critical": allure.severity_level.BLOCKER,
    "high": allure.severity_level.CRITICAL,
    "medium": allure.severity_level.NORMAL,
    "low": allure.severity_level.MINOR,
}
_TECHNIQUE = re.compile(r"T(\d{4})(?:\.(\d{3}))?")

_timeline: list[dict] = []


def mitre_url(technique: str) -> str:
    """ATT&CK page of a technique id: T1562.008 -> https://attack.mitre.org/techniques/T1562/008/."""
    match = _TECHNIQUE.fullmatch(technique)
    if not match:
        raise ConfigError(f"MITRE technique {technique!r} is malformed", "write it as T1234 or T1234.001")
    base, sub = match.groups()
    return f"https://attack.mitre.org/techniques/T{base}/{sub + '/' if sub else ''}"


def label_scenario(meta: Any, *, backend: str | None = None, latency_profile: str | None = None) -> None:
    """Label the current Allure test with a scenario's metadata, backend and latency profile."""
    if meta.severity not in SEVERITY_LEVELS:
        raise ConfigError(
            f"scenario {meta.id} has severity {meta.severity!r}",
            f"use one of {', '.join(SEVERITY_LEVELS)}",
        )
    urls = [(technique, mitre_url(technique)) for technique in meta.mitre]
    allure.dynamic.label("scenario", meta.id)
    allure.dynamic.severity(SEVERITY_LEVELS[meta.severity])
    for name, setter in (("title", allure.dynamic.title), ("epic", allure.dynamic.epic),
                         ("feature", allure.dynamic.feature), ("story", allure.dynamic.story)):
        value = getattr(meta, name, None)
        if value:
            setter(value)
    if meta.mitre:
        allure.dynamic.tag(*meta.mitre)
    for technique, url in urls:
        allure.dynamic.link(url, name=f"MITRE ATT&CK {technique}")
    # Parameters, unlike labels, split Allure's history, so each backend/profile trends separately.
    for name, value in (("backend", backend), ("latency_profile", latency_profile)):
        if value:
            allure.dynamic.label(name, value)
            allure.dynamic.parameter(name, value)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """An Allure step (e.g. "inject: cloudtrail.stop_logging") that also lands in the timeline."""
    entry: dict = {"phase": name, "start": time.time(), "stop": None, "outcome": None}
    _timeline.append(entry)
    error: BaseException | None = None
    try:
        with allure.step(name):
            yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        entry["stop"] = time.time()
        entry["outcome"] = verdict_of(error)


def timeline() -> list[dict]:
    """Copies of the phases recorded since the last reset, in start order."""
    return [dict(entry) for entry in _timeline]


def reset_timeline() -> None:
    """Forget recorded phases (the runner calls this per scenario)."""
    _timeline.clear()


def attach_json(name: str, obj: Any) -> None:
    """Attach obj as pretty JSON; boto3 datetimes and the like become strings."""
    allure.attach(json.dumps(obj, indent=2, default=str), name=name, attachment_type=allure.attachment_type.JSON)


def attach_text(name: str, text: str) -> None:
    """Attach plain text."""
    allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)


def parameter(name: str, value: Any) -> None:
    """Add a parameter to the current Allure test."""
    allure.dynamic.parameter(name, value)
