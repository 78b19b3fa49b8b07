"""SSM Automation documents run by the plane: parameters, {{ }} substitution, executeAwsApi and invokeLambdaFunction."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
import botocore.session
from botocore import xform_name
from botocore.config import Config

from harness.emulator import apicall, motoadapter as moto

SUPPORTED_ACTIONS = ("aws:executeAwsApi", "aws:invokeLambdaFunction")
MAX_STEPS_RUN = 1000
_PLACEHOLDER = re.compile(r"\{\{\s*([\w:.\-]+)\s*\}\}")
_SELECTOR_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# Calls the plane makes for a document go to its own endpoint: no retries hide a failing step.
_CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=60)


class AutomationFailed(Exception):
    """The document cannot run (missing parameter, unresolved variable, wrong schema)."""


@dataclass
class Step:
    """One step of an execution, as DescribeRemediationExecutionStatus reports it (times in AWS seconds)."""

    name: str
    state: str = "PENDING"
    error: str | None = None
    start: float | None = None
    stop: float | None = None


@dataclass
class Outcome:
    state: str  # SUCCEEDED or FAILED
    steps: list[Step] = field(default_factory=list)
    error: str | None = None


class Automation:
    """Runs one Automation document (schemaVersion 0.3) against the plane's endpoint, as its assumeRole if any."""

    def __init__(self, *, endpoint_url: str, account: str, region: str, now: Callable[[], float],
                 on_progress: Callable[[list[Step]], None] = lambda steps: None):
        self.endpoint_url = endpoint_url
        self.account = account
        self.region = region
        self.now = now
        self.on_progress = on_progress
        self.execution_id = str(uuid.uuid4())

    def run(self, document: dict, given: dict[str, Any]) -> Outcome:
        steps = [Step(s.get("name", f"step{i}")) for i, s in enumerate(document.get("mainSteps") or [])]
        try:
            if str(document.get("schemaVersion")) != "0.3":
                raise AutomationFailed(f"schemaVersion {document.get('schemaVersion')} is not an Automation "
                                       "document's (0.3)")
            variables = resolve_parameters(document.get("parameters") or {}, given)
            variables.update({"global:REGION": self.region, "global:ACCOUNT_ID": self.account,
                              "automation:EXECUTION_ID": self.execution_id})
            role = substitute(document.get("assumeRole") or "", variables)
            session = self._session(role if isinstance(role, str) else "")
        except AutomationFailed as exc:
            return Outcome("FAILED", steps, str(exc))
        self.on_progress(steps)
        return self._steps(document.get("mainSteps") or [], steps, variables, session)

    def _steps(self, specs: list[dict], steps: list[Step], variables: dict, session: boto3.Session) -> Outcome:
        by_name = {s.name: i for i, s in enumerate(steps)}
        index, failure, budget = 0, None, MAX_STEPS_RUN
        while 0 <= index < len(specs):
            budget -= 1
            if budget < 0:  # a nextStep or onFailure loop would hold the remediation thread forever
                failure = f"more than {MAX_STEPS_RUN} steps run: the document loops"
                break
            spec, step = specs[index], steps[index]
            step.state, step.start = "IN_PROGRESS", self.now()
            self.on_progress(steps)
            try:
                self._run_step(spec, step.name, variables, session)
                step.state = "SUCCEEDED"
            except Exception as exc:  # a failing step fails the execution, never the plane
                step.state, step.error = "FAILED", _message(exc)
            step.stop = self.now()
            self.on_progress(steps)
            if step.state == "FAILED":
                on_failure = spec.get("onFailure", "Abort")
                if on_failure == "Continue":
                    index += 1
                    continue
                if isinstance(on_failure, str) and on_failure.startswith("step:") and on_failure[5:] in by_name:
                    index = by_name[on_failure[5:]]
                    continue
                failure = f"Step {step.name} failed: {step.error}"
                break
            if spec.get("isEnd"):
                break
            index = by_name.get(spec.get("nextStep"), index + 1) if spec.get("nextStep") else index + 1
        if failure is None:
            # A failed step that was continued past still fails the execution unless it is not critical.
            failure = next((f"Step {s.name} failed: {s.error}" for s, spec in zip(steps, specs)
                            if s.state == "FAILED" and spec.get("isCritical", True) is not False), None)
        return Outcome("FAILED" if failure else "SUCCEEDED", steps, failure)

    def _run_step(self, spec: dict, name: str, variables: dict, session: boto3.Session) -> None:
        action = spec.get("action")
        if action not in SUPPORTED_ACTIONS:
            raise AutomationFailed(f"action {action} is not emulated (the plane runs {', '.join(SUPPORTED_ACTIONS)})")
        inputs = substitute(dict(spec.get("inputs") or {}), variables)
        attempts = max(1, int(spec.get("maxAttempts", 1)))
        for attempt in range(attempts):
            try:
                result = self._execute_api(inputs, session) if action == "aws:executeAwsApi" \
                    else self._invoke_lambda(inputs, session)
                break
            except Exception:
                if attempt == attempts - 1:
                    raise
        for output in spec.get("outputs") or []:
            variables[f"{name}.{output['Name']}"] = select(result, output.get("Selector", ""))

    def _execute_api(self, inputs: dict, session: boto3.Session) -> dict:
        inputs = dict(inputs)
        service, api = str(inputs.pop("Service", "")).lower(), str(inputs.pop("Api", ""))
        if not service or not api:
            raise AutomationFailed("aws:executeAwsApi needs Service and Api")
        client = session.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                                config=_CLIENT_CONFIG)
        response = getattr(client, xform_name(api))(**inputs)
        response.pop("ResponseMetadata", None)
        return response

    def _invoke_lambda(self, inputs: dict, session: boto3.Session) -> dict:
        payload = inputs.get("Payload")
        if payload is None and "InputPayload" in inputs:
            payload = json.dumps(inputs["InputPayload"])
        kwargs: dict[str, Any] = {"FunctionName": inputs["FunctionName"],
                                  "InvocationType": inputs.get("InvocationType", "RequestResponse"),
                                  "Payload": (payload if isinstance(payload, str) else json.dumps(payload or {}))}
        for key in ("Qualifier", "LogType", "ClientContext"):
            if key in inputs:
                kwargs[key] = inputs[key]
        client = session.client("lambda", endpoint_url=self.endpoint_url, region_name=self.region,
                                config=_CLIENT_CONFIG)
        response = client.invoke(**kwargs)
        body = response["Payload"].read().decode() if "Payload" in response else ""
        if response.get("FunctionError"):
            raise RuntimeError(f"{response['FunctionError']}: {body[:500]}")
        return {"StatusCode": response.get("StatusCode"), "Payload": body, "LogResult": response.get("LogResult"),
                "FunctionError": response.get("FunctionError")}

    def _session(self, role: str) -> boto3.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", apicall.LOADER)  # model files parsed once per process
        if role:
            try:
                creds = moto.mint_role_credentials(role, f"Automation-{self.execution_id}"[:64], self.region)
            except Exception as exc:
                raise AutomationFailed(f"cannot assume {role}: {exc}") from exc
            return boto3.Session(botocore_session=core, aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                                 aws_session_token=creds["AWS_SESSION_TOKEN"])
        # Known difference: without an assumeRole AWS runs as the caller's identity; here as moto's default user.
        return boto3.Session(botocore_session=core, aws_access_key_id="AKIAGAMEDAYAUTOMATION",
                             aws_secret_access_key="gameday")


def resolve_parameters(declared: dict, given: dict[str, Any]) -> dict[str, Any]:
    """The document's parameters from the given values (lists, as Config passes them) and defaults."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise AutomationFailed(f"parameters {', '.join(unknown)} are not defined in the document")
    values = {}
    for name, spec in declared.items():
        kind = (spec or {}).get("type", "String")
        if name in given:
            values[name] = _coerce(name, given[name], kind)
        elif "default" in (spec or {}):
            values[name] = spec["default"]
        else:
            raise AutomationFailed(f"parameter {name} is required")
    return values


def _coerce(name: str, value: Any, kind: str) -> Any:
    items = value if isinstance(value, list) else [value]
    if kind in ("StringList", "MapList"):
        return [json.loads(v) if kind == "MapList" and isinstance(v, str) else v for v in items]
    if len(items) != 1:
        raise AutomationFailed(f"parameter {name} of type {kind} takes one value, not {len(items)}")
    item = items[0]
    if kind == "Integer":
        return int(item)
    if kind == "Boolean":
        return item if isinstance(item, bool) else str(item).lower() == "true"
    if kind == "StringMap":
        return json.loads(item) if isinstance(item, str) else item
    return item


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace {{ name }}: a whole-string placeholder takes the value itself (a list stays a list)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), variables)
        return _PLACEHOLDER.sub(lambda m: _text(_lookup(m.group(1), variables)), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def _lookup(name: str, variables: dict[str, Any]) -> Any:
    if name not in variables:
        raise AutomationFailed(f"variable {{{{ {name} }}}} is not defined")
    return variables[name]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def select(data: Any, selector: str) -> Any:
    """A step output's value: a JSONPath-like "$.A.B[0]" selector over the step's response."""
    path = selector[1:] if selector.startswith("$") else selector
    for name, index in _SELECTOR_PART.findall(path):
        if name:
            data = data.get(name) if isinstance(data, dict) else None
        else:
            data = data[int(index)] if isinstance(data, list) and int(index) < len(data) else None
    return data


def _message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, AutomationFailed) else f"{type(exc).__name__}: {text}"
