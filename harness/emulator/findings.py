"""GuardDuty findings per detector: sample and detected findings, their API, and their "GuardDuty Finding" events."""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from harness.emulator import motoadapter as moto
from harness.emulator.apicall import ApiCall
from harness.emulator.events import envelope

Response = tuple[int, dict[str, str], bytes]

# GuardDuty sends a new finding to EventBridge within five minutes; later occurrences of it wait for the detector's
# findingPublishingFrequency (AWS seconds; the aws latency profile waits them, instant does not).
NEW_FINDING_TO_EVENTBRIDGE_S = 300.0
PUBLISHING_FREQUENCY_S = {"FIFTEEN_MINUTES": 900.0, "ONE_HOUR": 3600.0, "SIX_HOURS": 21600.0}
DETAIL_TYPE = "GuardDuty Finding"
# Calls that disable a trail (GuardDuty reads CloudTrail's event stream itself, whatever trails log).
# Known difference: UpdateTrail, which the docs also name, raises nothing (which updates count is not documented).
TRAIL_DISABLING = frozenset({"StopLogging", "DeleteTrail"})
MAX_RESULTS = 50
_PATH = re.compile(r"^/detector/([^/]+)/findings(?:/(create|get|archive|unarchive|statistics|feedback))?/?$")
_NOT_OWNED = "The request is rejected because the input detectorId is not owned by the current account."
_INVALID = "The request is rejected because an invalid or out-of-range value is specified as an input parameter."
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

# Severity is the number GuardDuty gives each level (Low 2, Medium 5, High 8), at each type's documented default.
_EC2_OUT = {"connectionDirection": "OUTBOUND", "blocked": False,
            "localPortDetails": {"port": 40000, "portName": "Unknown"}}
FINDING_TYPES: dict[str, dict[str, Any]] = {
    "Stealth:IAMUser/CloudTrailLoggingDisabled": {
        "severity": 2.0, "resource": "AccessKey", "role": "TARGET", "action": "AWS_API_CALL",
        "title": "AWS CloudTrail trail {trail} was disabled.",
        "description": "AWS CloudTrail trail {trail} was disabled by {user} calling {api}. This can be an attacker's "
                       "attempt to cover their tracks by eliminating any trace of their activity.",
    },
    "Policy:IAMUser/RootCredentialUsage": {
        "severity": 2.0, "resource": "AccessKey", "role": "TARGET", "action": "AWS_API_CALL",
        "title": "API {api} was invoked using root credentials.",
        "description": "API {api} was invoked using root credentials from IP address {remote}.",
    },
    "CryptoCurrency:EC2/BitcoinTool.B": {
        "severity": 8.0, "resource": "Instance", "role": "ACTOR", "action": "NETWORK_CONNECTION",
        "network": {**_EC2_OUT, "protocol": "TCP", "remotePortDetails": {"port": 8333, "portName": "Unknown"}},
        "title": "Bitcoin-related IP address contacted by EC2 instance {instance}.",
        "description": "EC2 instance {instance} is communicating with IP address {remote}, which is associated "
                       "with Bitcoin or other cryptocurrency-related activity.",
    },
    "CryptoCurrency:EC2/BitcoinTool.B!DNS": {
        "severity": 8.0, "resource": "Instance", "role": "ACTOR", "action": "DNS_REQUEST",
        "title": "Bitcoin-related domain name queried by EC2 instance {instance}.",
        "description": "EC2 instance {instance} is querying a domain name {domain} that is associated with Bitcoin "
                       "or other cryptocurrency-related activity.",
    },
    "Impact:EC2/BitcoinDomainRequest.Reputation": {
        "severity": 8.0, "resource": "Instance", "role": "ACTOR", "action": "DNS_REQUEST",
        "title": "EC2 instance {instance} queried a cryptocurrency-related domain name.",
        "description": "EC2 instance {instance} is querying a domain name {domain} whose reputation links it with "
                       "cryptocurrency-related activity.",
    },
    "Backdoor:EC2/DenialOfService.Tcp": {
        "severity": 8.0, "resource": "Instance", "role": "ACTOR", "action": "NETWORK_CONNECTION",
        "network": {**_EC2_OUT, "protocol": "TCP", "remotePortDetails": {"port": 80, "portName": "HTTP"}},
        "title": "EC2 instance {instance} is behaving in a manner that may indicate it is being used to perform a "
                 "Denial of Service (DoS) attack using the TCP protocol.",
        "description": "EC2 instance {instance} is sending a large volume of TCP traffic to {remote}.",
    },
    "Backdoor:EC2/DenialOfService.Udp": {
        "severity": 8.0, "resource": "Instance", "role": "ACTOR", "action": "NETWORK_CONNECTION",
        "network": {**_EC2_OUT, "protocol": "UDP", "remotePortDetails": {"port": 53, "portName": "DNS"}},
        "title": "EC2 instance {instance} is behaving in a manner that may indicate it is being used to perform a "
                 "Denial of Service (DoS) attack using the UDP protocol.",
        "description": "EC2 instance {instance} is sending a large volume of UDP traffic to {remote}.",
    },
    "UnauthorizedAccess:EC2/SSHBruteForce": {  # Low when the instance is the target (High when it attacks)
        "severity": 2.0, "resource": "Instance", "role": "TARGET", "action": "NETWORK_CONNECTION",
        "network": {"connectionDirection": "INBOUND", "blocked": False, "protocol": "TCP",
                    "localPortDetails": {"port": 22, "portName": "SSH"},
                    "remotePortDetails": {"port": 45000, "portName": "Unknown"}},
        "title": "{remote} is performing SSH brute force attacks against {instance}.",
        "description": "{remote} is performing SSH brute force attacks against {instance}. Brute force attacks are "
                       "used to gain unauthorized access to your instance by guessing the SSH password.",
    },
    "Recon:EC2/PortProbeUnprotectedPort": {  # Low unless the probed port is Elasticsearch's (9200, 9300): High
        "severity": 2.0, "resource": "Instance", "role": "TARGET", "action": "PORT_PROBE",
        "probe": {"port": 80, "portName": "HTTP"},
        "title": "Unprotected port on EC2 instance {instance} is being probed.",
        "description": "EC2 instance {instance} has an unprotected port which is being probed by a known "
                       "malicious host {remote}.",
    },
}
# The placeholders GuardDuty's sample findings carry instead of real resources.
SAMPLE = {"instance": "i-99999999", "access_key": "ASIASAMPLEACCESSKEY", "user": "GeneratedFindingUserName",
          "principal": "GeneratedFindingPrincipalId", "remote": "198.51.100.0", "domain": "GeneratedFindingDomainName",
          "api": "GeneratedFindingAPIName", "trail": "GeneratedFindingTrailName"}


class GuardDutyError(Exception):
    """A GuardDuty BadRequestException (HTTP 400) with its __type."""

    def __init__(self, message: str, kind: str = "InvalidInputException"):
        super().__init__(message)
        self.kind = kind


class Findings:
    """Findings per detector, published to the default bus; occurrences of a type on one resource (an instance,
    a principal) aggregate into one finding, as GuardDuty counts them."""

    def __init__(self, *, enqueue: Callable[..., None], delay: Callable[[float], float],
                 put_event: Callable[[dict, str], Any]):
        self._enqueue = enqueue  # Plane._enqueue
        self._delay = delay  # Plane._delay: AWS seconds under the aws profile, 0 under instant
        self._put_event = put_event
        self._by_detector: dict[str, dict[str, dict]] = {}  # detector id -> finding id -> finding
        self._keys: dict[tuple, str] = {}  # aggregation key -> finding id
        self._publishing: set[str] = set()  # finding ids with an event on its way
        self._lock = threading.Lock()

    # -- the API (Plane.intercept) -------------------------------------------------------------

    def serve(self, method: str, path: str, body: bytes, account: str, region: str) -> Response | None:
        match = _PATH.match(path)
        if match is None or method != "POST":
            return None
        detector_id, verb = match.group(1), match.group(2) or "list"
        try:
            params = json.loads(body or b"{}")
            detector = moto.guardduty_detector(account, region, detector_id)
            if detector is None:
                raise GuardDutyError(_NOT_OWNED)
            handler = getattr(self, f"_api_{verb}")
            return 200, {"Content-Type": "application/json"}, json.dumps(
                handler(detector, params, account, region)).encode()
        except GuardDutyError as exc:
            return 400, {"Content-Type": "application/json", "x-amzn-ErrorType": "BadRequestException"}, \
                json.dumps({"message": str(exc), "__type": exc.kind}).encode()
        except (ValueError, TypeError, AttributeError, KeyError):  # malformed input: AWS's generic 400
            return 400, {"Content-Type": "application/json", "x-amzn-ErrorType": "BadRequestException"}, \
                json.dumps({"message": _INVALID, "__type": "InvalidInputException"}).encode()

    def _api_create(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        types = params.get("findingTypes") or list(FINDING_TYPES)
        unknown = [t for t in types if t not in FINDING_TYPES]
        if unknown:
            raise GuardDutyError(_INVALID)
        # A suspended detector generates no new findings (the docs name no error for samples: accepted, none made).
        if detector.enabled:
            for finding_type in types:
                self._occur(detector, account, region, finding_type, sample=True)
        return {}

    def _api_list(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        size = params.get("maxResults", MAX_RESULTS)
        token = params.get("nextToken") or "0"
        if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS or not token.isdigit():
            raise GuardDutyError(_INVALID)
        found = self._select(detector.id, params.get("findingCriteria"), params.get("sortCriteria"))
        start = int(token)
        page = found[start:start + size]
        more = start + size < len(found)
        return {"findingIds": [f["id"] for f in page], "nextToken": str(start + size) if more else ""}

    def _api_get(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        ids = params.get("findingIds") or []
        if len(ids) > MAX_RESULTS:
            raise GuardDutyError(_INVALID)
        with self._lock:
            held = self._by_detector.get(detector.id, {})
            chosen = [copy.deepcopy(held[i]) for i in dict.fromkeys(ids) if i in held]  # unknown ids are left out
        return {"findings": [_api_form(f) for f in _sorted(chosen, params.get("sortCriteria"))]}

    def _api_archive(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        return self._set(detector.id, params.get("findingIds") or [], "archived", True)

    def _api_unarchive(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        return self._set(detector.id, params.get("findingIds") or [], "archived", False)

    def _api_feedback(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        if params.get("feedback") not in ("USEFUL", "NOT_USEFUL"):
            raise GuardDutyError(_INVALID)
        return self._set(detector.id, params.get("findingIds") or [], "userFeedback", params["feedback"])

    def _api_statistics(self, detector: moto.DetectorView, params: dict, account: str, region: str) -> dict:
        kinds = params.get("findingStatisticTypes") or []
        if params.get("groupBy") or kinds != ["COUNT_BY_SEVERITY"]:
            # Known difference: only COUNT_BY_SEVERITY is emulated; groupBy is refused rather than answered wrongly.
            raise GuardDutyError(_INVALID)
        counts: dict[str, int] = {}
        for finding in self._select(detector.id, params.get("findingCriteria"), None):
            key = str(float(finding["severity"]))
            counts[key] = counts.get(key, 0) + 1
        return {"findingStatistics": {"countBySeverity": counts}}

    def _set(self, detector_id: str, ids: list[str], field: str, value: Any) -> dict:
        if len(ids) > MAX_RESULTS:
            raise GuardDutyError(_INVALID)
        with self._lock:
            held = self._by_detector.get(detector_id, {})
            for finding_id in ids:
                if finding_id in held:  # Known difference: unknown ids are ignored (AWS's answer is undocumented)
                    held[finding_id]["service"][field] = value
        return {}

    def _select(self, detector_id: str, criteria: dict | None, sort: dict | None) -> list[dict]:
        criterion = (criteria or {}).get("criterion") or {}
        with self._lock:
            found = [copy.deepcopy(f) for f in self._by_detector.get(detector_id, {}).values()
                     if all(_holds(f, field, cond) for field, cond in criterion.items())]
        return _sorted(found, sort)

    # -- what GuardDuty detects ----------------------------------------------------------------

    def follow(self, call: ApiCall, account: str) -> None:
        """A successful call the plane saw: a trail disabled makes a finding; a deleted detector takes its own."""
        if call.service == "cloudtrail" and call.operation in TRAIL_DISABLING:
            name = str(call.params.get("Name", ""))
            arn = name if name.startswith("arn:") else \
                f"arn:{moto.PARTITION}:cloudtrail:{call.region}:{account}:trail/{name}"
            self.raise_finding(account, call.region, "Stealth:IAMUser/CloudTrailLoggingDisabled",
                               access_key_id=call.access_key_id, api=call.operation, trail_arn=arn,
                               remote_ip=call.source_ip, user_agent=call.user_agent,
                               service_name="cloudtrail.amazonaws.com")
        elif call.service == "guardduty" and call.operation == "DeleteDetector":
            self.detector_deleted(str(call.params.get("DetectorId", "")))

    def raise_finding(self, account: str, region: str, finding_type: str, *, instance_id: str | None = None,
                      access_key_id: str | None = None, api: str | None = None, trail_arn: str | None = None,
                      remote_ip: str | None = None, domain: str | None = None,
                      user_agent: str | None = None, service_name: str | None = None) -> dict | None:
        """A detected (not sample) finding in the region's enabled detector; None when none is enabled.

        Instance types need `instance_id` (an instance that exists); AccessKey types name the caller behind
        `access_key_id`. Raises ValueError for an unknown type or missing resource, LookupError for a missing instance.
        """
        spec = FINDING_TYPES.get(finding_type)
        if spec is None:
            raise ValueError(f"finding type {finding_type} is not emulated; known: {sorted(FINDING_TYPES)}")
        details = None
        if spec["resource"] == "Instance":
            if not instance_id:
                raise ValueError(f"{finding_type} is about an EC2 instance: give instance_id")
            details = moto.ec2_instance_details(account, region, instance_id)
            if details is None:
                raise LookupError(f"instance {instance_id} does not exist in {account}/{region}")
        detector = next((d for d in moto.guardduty_detectors(account, region) if d.enabled), None)
        if detector is None:
            return None
        facts = {"instance_details": details, "access_key_id": access_key_id, "api": api, "trail_arn": trail_arn,
                 "remote": remote_ip, "domain": domain, "user_agent": user_agent, "service_name": service_name}
        return self._occur(detector, account, region, finding_type, sample=False, facts=facts)

    def detector_deleted(self, detector_id: str) -> None:
        """Deleting a detector deletes its findings."""
        with self._lock:
            self._by_detector.pop(detector_id, None)
            for key in [k for k in self._keys if k[0] == detector_id]:
                del self._keys[key]

    def findings(self, detector_id: str) -> list[dict]:
        """The detector's findings as GuardDuty's events carry them (for the harness and tests)."""
        with self._lock:
            return [copy.deepcopy(f) for f in self._by_detector.get(detector_id, {}).values()]

    # -- aggregation and publication -----------------------------------------------------------

    def _occur(self, detector: moto.DetectorView, account: str, region: str, finding_type: str, *, sample: bool,
               facts: dict | None = None) -> dict:
        """One occurrence: a new finding, or one more count on the finding it aggregates into."""
        now = _stamp(datetime.now(timezone.utc))
        doc = _document(detector.id, account, region, finding_type, sample=sample, facts=facts or {}, at=now)
        key = (detector.id, finding_type, sample, _resource_key(doc))
        with self._lock:
            held = self._by_detector.setdefault(detector.id, {})
            existing = held.get(self._keys.get(key, ""))
            if existing is not None:  # the latest occurrence's details replace the earlier ones
                existing["service"]["count"] += 1
                existing["service"]["eventLastSeen"] = now
                existing["service"]["action"] = doc["service"]["action"]
                existing.update(updatedAt=now, title=doc["title"], description=doc["description"])
                doc, new = existing, False
            else:
                held[doc["id"]] = doc
                self._keys[key] = doc["id"]
                new = True
            scheduled = doc["id"] in self._publishing
            self._publishing.add(doc["id"])
            result = copy.deepcopy(doc)
        if not scheduled:
            # Occurrences before the event leaves ride in it, as GuardDuty folds the first five minutes into one.
            wait = NEW_FINDING_TO_EVENTBRIDGE_S if new else PUBLISHING_FREQUENCY_S.get(detector.publishing_frequency,
                                                                                     21600.0)
            self._enqueue("run", functools.partial(self._publish, detector.id, doc["id"]),
                          delay_aws=self._delay(wait))
        return result

    def _publish(self, detector_id: str, finding_id: str) -> None:
        with self._lock:
            self._publishing.discard(finding_id)
            finding = copy.deepcopy(self._by_detector.get(detector_id, {}).get(finding_id))
        if finding is None:  # the detector was deleted meanwhile
            return
        self._put_event(envelope(source="aws.guardduty", detail_type=DETAIL_TYPE, detail=finding,
                                 account=finding["accountId"], region=finding["region"]), "default")


def _document(detector_id: str, account: str, region: str, finding_type: str, *, sample: bool, facts: dict,
              at: str) -> dict:
    """A finding as GuardDuty writes it (additionalInfo as an object, the form events carry)."""
    spec = FINDING_TYPES[finding_type]
    finding_id = uuid.uuid4().hex
    remote = facts.get("remote") or SAMPLE["remote"]
    domain = facts.get("domain") or SAMPLE["domain"]
    words = {"remote": remote, "domain": domain, "api": facts.get("api") or SAMPLE["api"]}
    if spec["resource"] == "Instance":
        details = facts.get("instance_details") or {"instanceId": SAMPLE["instance"], "instanceType": "m3.xlarge",
                                                    "instanceState": "running", "imageId": "ami-99999999",
                                                    "availabilityZone": f"{region}a", "networkInterfaces": [],
                                                    "tags": [], "productCodes": []}
        resource = {"resourceType": "Instance", "instanceDetails": details}
        words["instance"] = details["instanceId"]
    else:
        resource = {"resourceType": "AccessKey", "accessKeyDetails": _access_key(facts, sample)}
        words["user"] = resource["accessKeyDetails"]["userName"]
        words["trail"] = (facts.get("trail_arn") or SAMPLE["trail"]).rsplit("/", 1)[-1]
    info: dict[str, Any] = {"sample": True} if sample else {}
    return {
        "schemaVersion": "2.0",
        "accountId": account,
        "region": region,
        "partition": moto.PARTITION,
        "id": finding_id,
        "arn": f"arn:{moto.PARTITION}:guardduty:{region}:{account}:detector/{detector_id}/finding/{finding_id}",
        "type": finding_type,
        "resource": resource,
        "service": {
            "serviceName": "guardduty",
            "detectorId": detector_id,
            "action": _action(spec, facts, remote, domain, sample),
            "resourceRole": spec["role"],
            "additionalInfo": info,
            "eventFirstSeen": at,
            "eventLastSeen": at,
            "archived": False,
            "count": 1,
        },
        "severity": spec["severity"],
        "createdAt": at,
        "updatedAt": at,
        "title": spec["title"].format(**words),
        "description": spec["description"].format(**words),
    }


def _access_key(facts: dict, sample: bool) -> dict:
    if sample:
        return {"accessKeyId": SAMPLE["access_key"], "principalId": SAMPLE["principal"], "userName": SAMPLE["user"],
                "userType": "IAMUser"}
    who = moto.user_identity(facts.get("access_key_id"))
    issuer = who.get("sessionContext", {}).get("sessionIssuer", {})
    name = who.get("userName") or issuer.get("userName") or ("Root" if who["type"] == "Root" else "")
    return {"accessKeyId": who.get("accessKeyId", ""), "principalId": who["principalId"], "userName": name,
            "userType": who["type"]}


def _action(spec: dict, facts: dict, remote: str, domain: str, sample: bool) -> dict:
    kind = spec["action"]
    remote_ip = {"ipAddressV4": remote, "organization": {"asn": "-1", "asnOrg": "GeneratedFindingASNOrg",
                                                          "isp": "GeneratedFindingISP", "org": "GeneratedFindingORG"}}
    if kind == "AWS_API_CALL":
        call = {"api": facts.get("api") or SAMPLE["api"],
                "serviceName": facts.get("service_name") or "cloudtrail.amazonaws.com",
                "callerType": "Remote IP", "remoteIpDetails": remote_ip}
        if facts.get("user_agent"):
            call["userAgent"] = facts["user_agent"]
        trail = facts.get("trail_arn") or (None if not sample else SAMPLE["trail"])
        if trail:
            call["affectedResources"] = {"AWS::CloudTrail::Trail": trail}
        return {"actionType": kind, "awsApiCallAction": call}
    if kind == "DNS_REQUEST":
        return {"actionType": kind, "dnsRequestAction": {"domain": domain, "protocol": "UDP", "blocked": False}}
    if kind == "PORT_PROBE":
        return {"actionType": kind, "portProbeAction": {"blocked": False, "portProbeDetails": [
            {"localPortDetails": dict(spec["probe"]), "remoteIpDetails": remote_ip}]}}
    network = copy.deepcopy(spec["network"])
    network["remoteIpDetails"] = remote_ip
    return {"actionType": kind, "networkConnectionAction": network}


def _resource_key(doc: dict) -> str:
    resource = doc["resource"]
    if "instanceDetails" in resource:
        return resource["instanceDetails"]["instanceId"]
    return resource["accessKeyDetails"]["principalId"]


def _api_form(finding: dict) -> dict:
    """The finding as GetFindings returns it: additionalInfo is a JSON string with a type."""
    finding["service"]["additionalInfo"] = {"value": json.dumps(finding["service"]["additionalInfo"]),
                                            "type": "default"}
    return finding


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _values(doc: Any, path: str) -> list:
    """Every value at a dotted attribute path (lists along the way are searched element by element)."""
    found = [doc]
    for part in path.split("."):
        step = []
        for node in found:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, dict) and part in item:
                    step.append(item[part])
        found = step
    return [v for node in found for v in (node if isinstance(node, list) else [node])]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and _ISO.match(value):
        # Timestamps are compared as epoch milliseconds, as the criteria give them.
        return datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp() * 1000
    return None


def _equal(value: Any, wanted: str) -> bool:
    if isinstance(value, bool):
        return str(value).lower() == str(wanted).lower()
    number = _number(value)
    if number is not None and not isinstance(value, str):
        try:
            return number == float(wanted)
        except ValueError:
            return False
    return str(value) == str(wanted)


_COMPARE = {"gt": float.__gt__, "greaterThan": float.__gt__, "gte": float.__ge__, "greaterThanOrEqual": float.__ge__,
            "lt": float.__lt__, "lessThan": float.__lt__, "lte": float.__le__, "lessThanOrEqual": float.__le__}


def _holds(finding: dict, field: str, condition: dict) -> bool:
    """One findingCriteria criterion: every operator given must hold."""
    values = _values(finding, field)
    for op, arg in condition.items():
        if op in ("eq", "equals"):
            ok = any(_equal(v, a) for v in values for a in arg)
        elif op in ("neq", "notEquals"):
            ok = not any(_equal(v, a) for v in values for a in arg)
        elif op in ("matches", "notMatches"):
            hit = any(fnmatch.fnmatchcase(str(v), a) for v in values for a in arg)
            ok = hit if op == "matches" else not hit
        elif op in _COMPARE:
            numbers = [n for n in (_number(v) for v in values) if n is not None]
            ok = any(_COMPARE[op](n, float(arg)) for n in numbers)
        else:
            raise GuardDutyError(_INVALID)
        if not ok:
            return False
    return True


def _sorted(findings: list[dict], sort: dict | None) -> list[dict]:
    if not sort or not sort.get("attributeName"):
        return findings
    name, descending = sort["attributeName"], sort.get("orderBy", "ASC") == "DESC"

    def key(finding: dict) -> tuple:
        values = _values(finding, name)
        if not values:
            return (1, 0.0, "")
        number = _number(values[0])
        return (0, number if number is not None else 0.0, "" if number is not None else str(values[0]))

    present = sorted((f for f in findings if _values(f, name)), key=key, reverse=descending)
    return present + [f for f in findings if not _values(f, name)]
