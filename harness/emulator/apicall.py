"""Resolve one captured HTTP exchange with an AWS endpoint into the API call it carried."""
from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import unquote, unquote_plus

from botocore.loaders import Loader, create_loader
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.parsers import RpcV2CBORParser

__all__ = ["ApiCall", "resolve", "operation_model", "service_info", "ServiceInfo", "preload"]


@dataclass(frozen=True)
class ApiCall:
    service: str
    operation: str
    region: str
    access_key_id: str | None
    params: dict
    user_agent: str
    source_ip: str
    host: str
    status: int
    response: dict | None
    error_code: str | None
    error_message: str | None
    request_id: str | None
    # Beyond the lead's contract, defaulted: S3 records carry byte counts and the auth method.
    bytes_in: int = 0
    bytes_out: int = 0
    presigned: bool = False


@dataclass(frozen=True)
class ServiceInfo:
    """What the credential scope, the CloudTrail eventSource and the dispatch need, without the full model."""
    name: str
    signing_name: str
    endpoint_prefix: str
    protocols: tuple[str, ...]
    target_prefix: str | None


_IGNORED_PREFIXES = ("/moto-api", "/_gameday")
_CREDENTIAL = re.compile(r"Credential=([^,\s]+)")
_CBOR_PATH = re.compile(r"^/service/([^/]+)/operation/([^/?]+)")
_S3_VHOST = re.compile(r"^(?P<bucket>[^:]+?)\.s3[.-]")
_LABEL = re.compile(r"\{([^}]+)\}")

_lock = threading.RLock()
# The plain botocore loader of the process: each loader parses its own copy of every JSON model it is asked for.
LOADER = create_loader()
_infos: dict[str, ServiceInfo] | None = None
_by_signing_name: dict[str, tuple[str, ...]] | None = None
_services: dict[str, "_Service"] = {}


# -- model access -----------------------------------------------------------------------


def _get_loader() -> Loader:
    return LOADER


def _read_metadata(loader: Loader, name: str) -> dict:
    # Reading only the head of each model keeps the one-off index at ~0.2 s instead of seconds.
    versions = sorted(loader.list_api_versions(name, "service-2"))
    if versions:
        for base in loader.search_paths:
            for fname, opener in (("service-2.json", open), ("service-2.json.gz", gzip.open)):
                path = os.path.join(base, name, versions[-1], fname)
                if not os.path.isfile(path):
                    continue
                with opener(path, "rt", encoding="utf-8") as fh:
                    head = fh.read(8192)
                start = head.find('"metadata"')
                if start >= 0:
                    try:
                        meta, _ = json.JSONDecoder().raw_decode(head, head.index("{", start))
                        return meta
                    except ValueError:
                        pass
                break
    return loader.load_service_model(name, "service-2")["metadata"]


def _index() -> tuple[dict[str, ServiceInfo], dict[str, tuple[str, ...]]]:
    global _infos, _by_signing_name
    if _infos is None or _by_signing_name is None:
        with _lock:
            if _infos is None or _by_signing_name is None:
                loader = _get_loader()
                infos: dict[str, ServiceInfo] = {}
                rev: dict[str, list[str]] = {}
                for name in loader.list_available_services("service-2"):
                    meta = _read_metadata(loader, name)
                    prefix = meta.get("endpointPrefix", name)
                    signing = meta.get("signingName") or prefix
                    protocols = tuple(meta.get("protocols") or [meta.get("protocol", "json")])
                    infos[name] = ServiceInfo(name, signing, prefix, protocols, meta.get("targetPrefix"))
                    rev.setdefault(signing, []).append(name)
                _by_signing_name = {k: tuple(sorted(v, key=lambda s, k=k: (s != k, s))) for k, v in rev.items()}
                _infos = infos
    return _infos, _by_signing_name


def service_info(service: str) -> ServiceInfo | None:
    """Signing name, endpoint prefix and protocols of a botocore service (None if unknown)."""
    return _index()[0].get(service)


def _service(name: str) -> "_Service | None":
    svc = _services.get(name)
    if svc is None:
        with _lock:
            svc = _services.get(name)
            if svc is None:
                info = service_info(name)
                if info is None:
                    return None
                model = ServiceModel(_get_loader().load_service_model(name, "service-2"), service_name=name)
                svc = _services[name] = _Service(info, model)
    return svc


def operation_model(service: str, operation: str) -> OperationModel | None:
    """botocore's model of one operation, None when the service or operation is unknown."""
    svc = _service(service)
    return svc.op(operation) if svc else None


def preload(*services: str) -> None:
    """Build the signing-name index and compile the given services now, not on the first request."""
    _index()
    for name in services:
        _service(name)


@dataclass(frozen=True)
class _Route:
    operation: str
    path: re.Pattern
    labels: tuple[tuple[str, str, bool], ...]  # (regex group, member name, greedy)
    needs: frozenset[str]  # query keys that must be present: template literals and required members
    values: tuple[tuple[str, str], ...]  # template query literals with a fixed value (list-type=2)
    required_headers: tuple[str, ...]
    score: tuple


_ANY = ""  # routes whose first path segment is a label


class _Service:
    def __init__(self, info: ServiceInfo, model: ServiceModel):
        self.info = info
        self.model = model
        self.names = frozenset(model.operation_names)
        # method -> first literal path segment (or _ANY) -> routes, most specific first
        self.routes: dict[str, dict[str, list[_Route]]] = {}
        if any(p.startswith("rest") for p in info.protocols):
            flat: dict[str, list[tuple[str, _Route]]] = {}
            for name in model.operation_names:
                compiled = _compile_route(model.operation_model(name))
                if compiled is not None:
                    method, first, route = compiled
                    flat.setdefault(method, []).append((first, route))
            for method, items in flat.items():
                items.sort(key=lambda fr: fr[1].score, reverse=True)
                buckets: dict[str, list[_Route]] = {}
                for first, route in items:
                    buckets.setdefault(first, []).append(route)
                self.routes[method] = buckets

    def op(self, name: str) -> OperationModel | None:
        return self.model.operation_model(name) if name in self.names else None

    def candidates(self, method: str, path: str) -> list[_Route]:
        buckets = self.routes.get(method)
        if not buckets:
            return []
        first = path[1:].partition("/")[0]
        literal, wild = buckets.get(first), buckets.get(_ANY)
        if literal and wild:
            return sorted(literal + wild, key=lambda r: r.score, reverse=True)
        return literal or wild or []

    def match(self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str]):
        keys = query.keys()
        for route in self.candidates(method, path):
            if not route.needs <= keys:
                continue
            if route.values and any(v not in query[k] for k, v in route.values):
                continue
            if route.required_headers and any(h not in headers for h in route.required_headers):
                continue
            m = route.path.match(path)
            if m is not None:
                return route, m
        return None


def _compile_route(op: OperationModel) -> tuple[str, str, _Route] | None:
    http = op.http or {}
    uri = http.get("requestUri")
    if not uri:
        return None
    path_t, _, query_t = uri.partition("?")
    query = tuple((k, v if sep else None) for k, sep, v in
                  (item.partition("=") for item in query_t.split("&") if item))
    members = op.input_shape.members if op.input_shape is not None else {}
    by_location: dict[str, str] = {}
    for name, shape in members.items():
        if shape.serialization.get("location") == "uri":
            by_location[shape.serialization.get("name", name)] = name
    pattern, labels, pos = ["^"], [], 0
    trimmed = path_t.rstrip("/")
    literal_segments = sum(1 for seg in trimmed.split("/")[1:] if seg and not _LABEL.search(seg))
    for i, m in enumerate(_LABEL.finditer(trimmed)):
        pattern.append(re.escape(trimmed[pos:m.start()]))
        raw = m.group(1)
        greedy = raw.endswith("+")
        label = raw.rstrip("+")
        group = f"g{i}"
        pattern.append(f"(?P<{group}>.+)" if greedy else f"(?P<{group}>[^/]+)")
        labels.append((group, by_location.get(label, label), greedy))
        pos = m.end()
    pattern.append(re.escape(trimmed[pos:]))
    pattern.append("/?$")
    required = set(op.input_shape.required_members) if op.input_shape is not None else set()
    required_qs = tuple(members[n].serialization.get("name", n) for n in required
                        if members[n].serialization.get("location") == "querystring")
    required_headers = tuple(members[n].serialization.get("name", n).lower() for n in required
                             if members[n].serialization.get("location") == "header")
    plain = sum(1 for _, _, greedy in labels if not greedy)
    weight = 2 * (literal_segments + len(query) + len(required_qs) + len(required_headers)) + plain
    score = (weight, not op.deprecated, len(uri))
    first = trimmed[1:].partition("/")[0]
    first = _ANY if _LABEL.search(first) else first
    route = _Route(op.name, re.compile("".join(pattern)), tuple(labels),
                   frozenset([k for k, _ in query] + list(required_qs)),
                   tuple((k, v) for k, v in query if v is not None), required_headers, score)
    return http.get("method", "POST").upper(), first, route


# -- resolve ---------------------------------------------------------------------------


def resolve(method: str, path: str, query: str, headers: Mapping[str, str], body: bytes,
            status: int, response_headers: Mapping[str, str], response_body: bytes,
            remote_addr: str) -> ApiCall | None:
    """The API call behind one HTTP exchange, or None if it is unsigned or not an AWS API call."""
    if path.startswith(_IGNORED_PREFIXES):
        return None
    h = {k.lower(): v for k, v in headers.items()}
    query = query[1:] if query.startswith("?") else query
    presigned = False
    auth = h.get("authorization", "")
    m = _CREDENTIAL.search(auth) if auth else None
    if m is not None:
        scope = m.group(1).split("/")
    elif "X-Amz-Credential" in query:
        presigned = True
        q = dict(_pairs(query))
        scope = q.get("X-Amz-Credential", "").split("/")
    elif auth.startswith("AWS ") and ":" in auth:
        # SigV2 survives only in S3 (old clients, boto3's default presigned URLs); it names no region.
        scope = [auth[4:].split(":", 1)[0], "", "us-east-1", "s3", "aws4_request"]
    elif "AWSAccessKeyId=" in query and "Signature=" in query:
        presigned = True
        scope = [dict(_pairs(query)).get("AWSAccessKeyId", ""), "", "us-east-1", "s3", "aws4_request"]
    else:  # unsigned calls CloudTrail does log (STS AssumeRoleWithWebIdentity/SAML) are not recorded
        return None
    if len(scope) < 5:
        if len(scope) == 4:  # SigV4a: AKID/date/service/aws4_request, regions in X-Amz-Region-Set
            scope = [scope[0], scope[1], h.get("x-amz-region-set", "us-east-1").split(",")[0], scope[2], scope[3]]
        else:
            return None
    access_key, region, signing = scope[0] or None, scope[2], scope[3]
    body = body or b""
    infos, by_signing = _index()
    candidates = by_signing.get(signing) or ((signing,) if signing in infos else ())
    if not candidates:
        return None
    host = h.get("host", "")
    common = dict(region=region, access_key_id=access_key, user_agent=h.get("user-agent", ""),
                  source_ip=remote_addr, host=host, status=status,
                  bytes_in=_content_length(h, body), bytes_out=len(response_body or b""), presigned=presigned)
    rh = {k.lower(): v for k, v in response_headers.items()}

    target = h.get("x-amz-target")
    if target:
        prefix, _, operation = target.rpartition(".")
        service = next((c for c in candidates if infos[c].target_prefix == prefix), candidates[0])
        svc = _service(service)
        params = _json_object(body)
        protocol = "json"
        op = svc.op(operation) if svc else None
    elif "smithy-protocol" in h or _CBOR_PATH.match(path):
        cm = _CBOR_PATH.match(path)
        if cm is None:
            return None
        prefix, operation = cm.group(1), cm.group(2)
        service = next((c for c in candidates if (infos[c].target_prefix or "").endswith(prefix)
                        or prefix.endswith(infos[c].target_prefix or "\0")), candidates[0])
        svc = _service(service)
        params = _jsonable(_cbor(body)) if body else {}
        params = params if isinstance(params, dict) else {}
        protocol = "cbor"
        op = svc.op(operation) if svc else None
    else:
        form = _form(method, query, h, body)
        if form is not None and "Action" in form[0]:
            fields = form[1]
            operation = form[0]["Action"]
            # Classic ELB and ELBv2 share a signing name and operation names: the request's Version tells them apart.
            known = [c for c in candidates if (svc := _service(c)) and operation in svc.names]
            service = next((c for c in known if _service(c).model.api_version == form[0].get("Version")),
                           known[0] if known else candidates[0])
            svc = _service(service)
            protocol = "ec2" if svc and "ec2" in svc.info.protocols else "query"
            op = svc.op(operation) if svc else None
            pairs = [(k, v) for k, v in fields if k not in ("Action", "Version")]
            params = _decode_query(pairs, op.input_shape, protocol == "ec2") if op and op.input_shape \
                else _unflatten(pairs)
        else:
            routed = _route(candidates, method.upper(), path, query, h, host)
            if routed is None:
                return None
            svc, route, match, qs, path = routed
            service, operation = svc.info.name, route.operation
            op = svc.op(operation)
            protocol = "rest-xml" if "rest-xml" in svc.info.protocols else "rest-json"
            params = _rest_params(op, match, route, qs, h, body, protocol)
    if svc is None:
        return None

    request_id = rh.get("x-amzn-requestid") or rh.get("x-amz-request-id") or rh.get("x-amzn-request-id")
    response = error_code = error_message = None
    if status >= 400:
        error_code, error_message, rid = _error(protocol, rh, response_body or b"")
        request_id = request_id or rid
    else:
        try:
            response, rid = _response(protocol, op, rh, status, response_body or b"")
        except (ValueError, ET.ParseError):  # a malformed body must not lose the call
            response, rid = None, None
        request_id = request_id or rid
    return ApiCall(service=service, operation=operation, params=params, response=response,
                   error_code=error_code, error_message=error_message, request_id=request_id, **common)


def _content_length(headers: Mapping[str, str], body: bytes) -> int:
    # Chunked SigV4 uploads frame the payload; the decoded length is what S3 reports.
    decoded = headers.get("x-amz-decoded-content-length")
    return int(decoded) if decoded and decoded.isdigit() else len(body)


def _route(candidates, method, path, query, headers, host):
    qs: dict[str, list[str]] = {}
    for k, v in _pairs(query):
        qs.setdefault(k, []).append(v)
    best = None
    for name in candidates:
        svc = _service(name)
        if svc is None or not svc.routes:
            continue
        p = path
        if svc.info.signing_name == "s3" and name == "s3":
            vh = _S3_VHOST.match(host)
            if vh and not host.startswith(("s3.", "s3-")):
                p = "/" + vh.group("bucket") + (path if path != "/" else "")
        x_id = qs.get("x-id", [None])[0]
        found = None
        if x_id and x_id in svc.names:  # newer SDKs name the S3 operation outright
            found = next(((r, m) for r in svc.candidates(method, p) if r.operation == x_id
                          and (m := r.path.match(p))), None)
        found = found or svc.match(method, p, qs, headers)
        if found and (best is None or found[0].score > best[1].score):
            best = (svc, found[0], found[1], qs, p)
    return best


# -- request parameters ------------------------------------------------------------------


def _text(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data


def _json_object(body: bytes) -> dict:
    if not body:
        return {}
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _pairs(data: str) -> list[tuple[str, str]]:
    # parse_qsl without its per-field overhead: this runs on every query-protocol call.
    out = []
    for part in data.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        if "%" in k or "+" in k:
            k = unquote_plus(k)
        if "%" in v or "+" in v:
            v = unquote_plus(v)
        out.append((k, v))
    return out


def _form(method: str, query: str, headers: Mapping[str, str], body: bytes):
    pairs: list[tuple[str, str]] = []
    if query and ("Action=" in query):
        pairs.extend(_pairs(query))
    ctype = headers.get("content-type", "")
    if body and "x-www-form-urlencoded" in ctype:
        pairs.extend(_pairs(_text(body)))
    if not pairs:
        return None
    first = {}
    for k, v in pairs:
        first.setdefault(k, v)
    return first, pairs


def _tree(pairs) -> dict:
    root: dict = {}
    for key, value in pairs:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    return root


_SCALARS = {"integer": int, "long": int, "float": float, "double": float}


def _scalar(type_name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if type_name == "boolean":
        return value.lower() == "true"
    conv = _SCALARS.get(type_name)
    if conv is not None:
        try:
            return conv(value)
        except ValueError:
            return value
    return value


def _query_key(name: str, shape: Shape, ec2: bool) -> str:
    ser = shape.serialization
    if ec2:
        if "queryName" in ser:
            return ser["queryName"]
        if "name" in ser:
            return ser["name"][0].upper() + ser["name"][1:]
        return name
    if shape.type_name == "list" and ser.get("flattened") and shape.member.serialization.get("name"):
        return shape.member.serialization["name"]
    return ser.get("name", name)


_wire_cache: dict[tuple[int, bool], list[tuple[str, str, Shape]]] = {}


def _members(shape: Shape, ec2: bool) -> list[tuple[str, str, Shape]]:
    key = (id(shape), ec2)
    cached = _wire_cache.get(key)
    if cached is None:
        cached = _wire_cache[key] = [(name, _query_key(name, m, ec2), m) for name, m in shape.members.items()]
    return cached


def _indexed(node: dict) -> list:
    return [v for _, v in sorted((int(k), v) for k, v in node.items() if k.isdigit())]


def _decode_query(pairs, shape: Shape, ec2: bool) -> dict:
    """Form fields back into member-named params, lists and maps rebuilt from dotted names."""
    out = _walk_query(_tree(pairs), shape, ec2)
    return out if isinstance(out, dict) else {}


def _walk_query(node: Any, shape: Shape, ec2: bool) -> Any:
    t = shape.type_name
    if t == "structure":
        if not isinstance(node, dict):
            return {}
        return {name: _walk_query(node[key], m, ec2) for name, key, m in _members(shape, ec2) if key in node}
    if t == "list":
        if not isinstance(node, dict):
            return []
        if not ec2 and not shape.serialization.get("flattened"):
            node = node.get(shape.member.serialization.get("name", "member"), node)
            if not isinstance(node, dict):
                return []
        return [_walk_query(v, shape.member, ec2) for v in _indexed(node)]
    if t == "map":
        if not isinstance(node, dict):
            return {}
        if not shape.serialization.get("flattened"):
            node = node.get("entry", node)
        kname = shape.key.serialization.get("name", "key")
        vname = shape.value.serialization.get("name", "value")
        return {e[kname]: _walk_query(e.get(vname, ""), shape.value, ec2)
                for e in _indexed(node) if isinstance(e, dict) and kname in e}
    return _scalar(t, node)


def _unflatten(pairs) -> dict:
    """Shape-less best effort: numeric segments become lists, member/entry wrappers vanish."""
    def fold(node):
        if not isinstance(node, dict):
            return node
        if set(node) == {"member"} or set(node) == {"entry"}:
            node = next(iter(node.values()))
            if not isinstance(node, dict):
                return node
        if node and all(k.isdigit() for k in node):
            items = [fold(v) for v in _indexed(node)]
            if all(isinstance(i, dict) and set(i) <= {"key", "value"} and "key" in i for i in items):
                return {i["key"]: i.get("value") for i in items}
            return items
        return {k: fold(v) for k, v in node.items()}

    out = fold(_tree(pairs))
    return out if isinstance(out, dict) else {}


_plan_cache: dict[int, tuple] = {}


def _rest_plan(shape: Shape) -> tuple:
    """Per input shape, once: where each member travels (querystring, header, header prefix)."""
    plan = _plan_cache.get(id(shape))
    if plan is None:
        qs, hdr, prefixed = [], [], []
        for name, m in shape.members.items():
            ser = m.serialization
            loc = ser.get("location")
            if loc == "querystring" and m.type_name != "map":  # a map takes "all other" keys: unused here
                qs.append((name, ser.get("name", name), m.type_name,
                           m.member.type_name if m.type_name == "list" else None))
            elif loc == "header":
                hdr.append((name, ser.get("name", name).lower(), m.type_name))
            elif loc == "headers":
                prefixed.append((name, ser.get("name", "").lower()))
            elif loc == "statusCode":
                hdr.append((name, None, "statusCode"))
        plan = _plan_cache[id(shape)] = (tuple(qs), tuple(hdr), tuple(prefixed))
    return plan


def _rest_params(op: OperationModel | None, match: re.Match, route: _Route, qs: dict[str, list[str]],
                 headers: Mapping[str, str], body: bytes, protocol: str) -> dict:
    params: dict = {}
    for group, member, greedy in route.labels:
        params[member] = unquote(match.group(group))
    shape = op.input_shape if op else None
    if shape is None:
        return params
    in_qs, in_headers, in_prefixed = _rest_plan(shape)
    for name, wire, type_name, item_type in in_qs:
        values = qs.get(wire)
        if values is not None:
            params[name] = [_scalar(item_type, v) for v in values] if item_type else _scalar(type_name, values[-1])
    for name, wire, type_name in in_headers:
        value = headers.get(wire) if wire else None
        if value is not None:
            params[name] = value.split(",") if type_name == "list" else _scalar(type_name, value)
    for name, prefix in in_prefixed:
        found = {k[len(prefix):]: v for k, v in headers.items() if k.startswith(prefix)}
        if found:
            params[name] = found
    payload = shape.serialization.get("payload")
    if payload:
        pm = shape.members[payload]
        if pm.type_name == "structure" and body:
            if protocol == "rest-xml":
                try:
                    params[payload] = _xml_orgjson(ET.fromstring(body))
                except ET.ParseError:
                    pass
            else:
                params[payload] = _json_object(body)
        elif pm.type_name == "string" and body:  # e.g. S3 PutBucketPolicy's JSON policy text
            params[payload] = _text(body)
        # blob payloads (object bytes, Lambda Invoke payload) are data, not parameters: left out
    elif body and protocol == "rest-json":
        for key, value in _json_object(body).items():
            params.setdefault(key, value)
    elif body and protocol == "rest-xml":
        try:
            parsed = _xml_orgjson(ET.fromstring(body))
            if isinstance(parsed, dict):
                params.update(parsed)
        except ET.ParseError:
            pass
    return params


# -- XML ---------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _orgjson_value(text: str) -> Any:
    # CloudTrail renders XML bodies like Java's org.json: numbers and booleans typed, the rest strings.
    if not text:
        return ""
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low == "null":
        return None
    c = text[0]
    if c.isdigit() or (c == "-" and len(text) > 1):
        if len(text) > 1 and text[0] == "0" and text[1].isdigit():
            return text
        try:
            return float(text) if any(x in text for x in ".eE") else int(text)
        except ValueError:
            return text
    return text


def _xml_orgjson(elem: ET.Element, parent_ns: str = "") -> Any:
    """One XML element as CloudTrail shows it: xmlns and attributes as keys, repeats as lists."""
    out: dict[str, Any] = {}
    ns = _ns(elem.tag)
    if ns and ns != parent_ns:
        out["xmlns"] = ns
    for key, value in elem.attrib.items():
        out["xsi:" + _local(key) if _ns(key) == _XSI else _local(key)] = _orgjson_value(value)
    for child in elem:
        tag = _local(child.tag)
        value = _xml_orgjson(child, ns)
        if tag in out:
            prev = out[tag]
            if isinstance(prev, list):
                prev.append(value)
            else:
                out[tag] = [prev, value]
        else:
            out[tag] = value
    text = (elem.text or "").strip()
    if not out:
        return _orgjson_value(text)
    if text:
        out["content"] = _orgjson_value(text)
    return out


def _children(elem: ET.Element) -> dict[str, list[ET.Element]]:
    idx: dict[str, list[ET.Element]] = {}
    for child in elem:
        idx.setdefault(_local(child.tag), []).append(child)
    return idx


def _xml_shape(elem: ET.Element, shape: Shape) -> Any:
    """One XML element read through its botocore shape, keyed by member names."""
    t = shape.type_name
    if t == "structure":  # members sent as XML attributes are not read
        idx = _children(elem)
        out: dict[str, Any] = {}
        for name, m in shape.members.items():
            ser = m.serialization
            if ser.get("location"):
                continue
            key = ser.get("name", name)
            flat = ser.get("flattened")
            if m.type_name == "list" and flat:
                elems = idx.get(m.member.serialization.get("name", key)) or idx.get(key)
                if elems:
                    out[name] = [_xml_shape(e, m.member) for e in elems]
                continue
            if m.type_name == "map" and flat:
                elems = idx.get(key)
                if elems:
                    out[name] = _xml_map(elems, m)
                continue
            elems = idx.get(key)
            if elems:
                out[name] = _xml_shape(elems[0], m)
        return out
    if t == "list":
        tag = shape.member.serialization.get("name", "member")
        return [_xml_shape(c, shape.member) for c in elem if _local(c.tag) == tag]
    if t == "map":
        return _xml_map([c for c in elem if _local(c.tag) == "entry"], shape)
    return _scalar(t, elem.text or "")


def _xml_map(entries: list[ET.Element], shape: Shape) -> dict:
    kname = shape.key.serialization.get("name", "key")
    vname = shape.value.serialization.get("name", "value")
    out = {}
    for entry in entries:
        idx = _children(entry)
        if kname in idx:
            v = idx.get(vname)
            out[idx[kname][0].text or ""] = _xml_shape(v[0], shape.value) if v else None
    return out


def _request_id(root: ET.Element) -> str | None:
    # EC2 puts <requestId> under the root; query services under <ResponseMetadata>.
    for child in root:
        tag = _local(child.tag)
        if tag in ("requestId", "RequestId"):
            return (child.text or "").strip()
        if tag == "ResponseMetadata":
            return _request_id(child)
    return None


def _find_text(root: ET.Element, *names: str) -> str | None:
    for el in root.iter():
        if _local(el.tag) in names:
            return (el.text or "").strip()
    return None


# -- responses and errors ----------------------------------------------------------------


def _response(protocol: str, op: OperationModel | None, headers: Mapping[str, str], status: int,
              body: bytes) -> tuple[dict | None, str | None]:
    shape = op.output_shape if op else None
    if protocol in ("json", "rest-json", "cbor"):
        if protocol == "cbor":
            value = _jsonable(_cbor(body)) if body else {}
            out = value if isinstance(value, dict) else {}
        elif protocol == "rest-json" and shape is not None and shape.serialization.get("payload"):
            payload = shape.serialization["payload"]
            pm = shape.members[payload]
            out = {payload: _json_object(body)} if pm.type_name == "structure" and body else {}
        else:
            out = _json_object(body)
        if protocol == "rest-json" and shape is not None:
            out.update(_rest_out_headers(shape, headers, status))
        return (out or None), None
    if protocol in ("query", "ec2"):
        if not body:
            return None, None
        root = ET.fromstring(body)
        rid = _request_id(root)
        if shape is None:
            return None, rid
        if protocol == "query":
            wrapper = shape.serialization.get("resultWrapper") or f"{op.name}Result"
            result = next((c for c in root if _local(c.tag) == wrapper), None)
            if result is None:
                return None, rid
            root = result
        return (_xml_shape(root, shape) or None), rid
    # rest-xml
    out: dict[str, Any] = {}
    if shape is not None:
        payload = shape.serialization.get("payload")
        if body:
            if payload:
                pm = shape.members[payload]
                if pm.type_name == "structure":
                    out[payload] = _xml_shape(ET.fromstring(body), pm)
                elif pm.type_name == "string":
                    out[payload] = _text(body)
            elif body.lstrip().startswith(b"<"):
                out.update(_xml_shape(ET.fromstring(body), shape))
        out.update(_rest_out_headers(shape, headers, status))
    elif body.lstrip().startswith(b"<"):
        value = _xml_orgjson(ET.fromstring(body))
        out = value if isinstance(value, dict) else {}
    return (out or None), None


def _rest_out_headers(shape: Shape, headers: Mapping[str, str], status: int) -> dict:
    out = {}
    for name, wire, type_name in _rest_plan(shape)[1]:
        if wire is None:
            out[name] = status
        else:
            value = headers.get(wire)
            if value is not None:
                out[name] = _scalar(type_name, value)
    return out


def _error(protocol: str, headers: Mapping[str, str], body: bytes) -> tuple[str | None, str | None, str | None]:
    code = message = rid = None
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        try:
            root = ET.fromstring(body)
            code = _find_text(root, "Code")
            message = _find_text(root, "Message")
            rid = _find_text(root, "RequestId", "RequestID")
        except ET.ParseError:
            pass
    elif stripped:
        data = _json_object(body) if stripped.startswith(b"{") else _jsonable(_cbor(body)) if protocol == "cbor" else {}
        if isinstance(data, dict):
            code = data.get("__type") or data.get("code") or data.get("Code")
            message = data.get("message") or data.get("Message") or data.get("errorMessage")
    header_type = headers.get("x-amzn-errortype")
    if header_type and (protocol == "rest-json" or not code):
        code = header_type
    if code:
        code = str(code).split(":", 1)[0].rpartition("#")[2]
    return code or None, message, rid


# -- CBOR ----------------------------------------------------------------------------------


def _cbor(body: bytes) -> Any:
    try:
        return RpcV2CBORParser().parse_data_item(io.BufferedReader(io.BytesIO(body)))
    except Exception:  # botocore raises its own parser errors; undecodable stays empty
        return {}


def _jsonable(value: Any) -> Any:
    # CBOR timestamps become ISO strings and blobs base64, so params stay JSON-serialisable.
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value
