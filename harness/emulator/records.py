"""Build CloudTrail records, shaped like real ones, from resolved API calls."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from botocore.model import OperationModel, Shape

from harness.emulator.apicall import ApiCall, operation_model, service_info

__all__ = [
    "build_record", "classify", "is_read_only", "event_name", "event_source",
    "iam_user_identity", "assumed_role_identity", "root_identity", "request_parameters", "response_elements",
    "HIDDEN",
]

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"

# Real records carry the version of the format each service logs with (fixtures: 1.08-1.10).
_EVENT_VERSIONS = {"cloudtrail": "1.10", "s3": "1.10", "sts": "1.08", "ssm": "1.08"}
_DEFAULT_EVENT_VERSION = "1.09"

# The embedded endpoint is plain HTTP; real endpoints are TLS, so records state what AWS would.
_TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256"}
_GLOBAL_HOSTS = {"iam": "iam.amazonaws.com", "cloudfront": "cloudfront.amazonaws.com",
                 "route53": "route53.amazonaws.com"}

# CloudTrail still logs S3 calls under the names of the older APIs they replaced.
_S3_EVENT_NAMES = {
    "PutBucketLifecycleConfiguration": "PutBucketLifecycle",
    "GetBucketLifecycleConfiguration": "GetBucketLifecycle",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
}
# Lambda logs its internal, API-versioned operation names.
_LAMBDA_EVENT_NAMES = {
    "CreateFunction": "CreateFunction20150331",
    "DeleteFunction": "DeleteFunction20150331",
    "GetFunction": "GetFunction20150331v2",
    "ListFunctions": "ListFunctions20150331",
    "UpdateFunctionCode": "UpdateFunctionCode20150331v2",
    "UpdateFunctionConfiguration": "UpdateFunctionConfiguration20150331v2",
    "GetFunctionConfiguration": "GetFunctionConfiguration20150331v2",
    "PublishVersion": "PublishVersion20150331",
    "AddPermission": "AddPermission20150331v2",
    "RemovePermission": "RemovePermission20150331v2",
    "GetPolicy": "GetPolicy20150331v2",
    "CreateEventSourceMapping": "CreateEventSourceMapping20150331",
    "DeleteEventSourceMapping": "DeleteEventSourceMapping20150331",
    "UpdateEventSourceMapping": "UpdateEventSourceMapping20150331",
    "CreateAlias": "CreateAlias20150331",
    "DeleteAlias": "DeleteAlias20150331",
    "UpdateAlias": "UpdateAlias20150331",
    "TagResource": "TagResource20170331v2",
    "UntagResource": "UntagResource20170331v2",
    "PutFunctionConcurrency": "PutFunctionConcurrency20171031",
    "DeleteFunctionConcurrency": "DeleteFunctionConcurrency20171031",
}

_S3_OBJECT_OPS = frozenset({
    "GetObject", "PutObject", "DeleteObject", "DeleteObjects", "HeadObject", "CopyObject",
    "GetObjectAcl", "PutObjectAcl", "GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging",
    "GetObjectAttributes", "GetObjectRetention", "PutObjectRetention", "GetObjectLegalHold",
    "PutObjectLegalHold", "GetObjectTorrent", "RestoreObject", "SelectObjectContent", "RenameObject",
    "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
    "AbortMultipartUpload", "ListParts", "ListObjects", "ListObjectsV2", "ListObjectVersions",
    "ListMultipartUploads",
})
_DATA_EVENTS = {
    "s3": _S3_OBJECT_OPS,
    "lambda": frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"}),
    "sns": frozenset({"Publish", "PublishBatch"}),
    "sqs": frozenset({"SendMessage", "SendMessageBatch", "ReceiveMessage", "DeleteMessage",
                      "DeleteMessageBatch", "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"}),
    "dynamodb": frozenset({"GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchGetItem",
                           "BatchWriteItem", "Query", "Scan", "TransactGetItems", "TransactWriteItems",
                           "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}),
}
# AWS documents these high-volume data-plane calls as not logged by CloudTrail at all.
_NOT_LOGGED = {
    "logs": frozenset({"GetLogEvents", "PutLogEvents", "FilterLogEvents"}),
    "cloudwatch": frozenset({"PutMetricData", "GetMetricStatistics", "ListMetrics"}),
}

_READ_PREFIXES = ("Get", "List", "Describe", "Head", "Lookup", "Test", "Search", "BatchGet", "Select",
                  "Scan", "Query", "Simulate", "Verify")
# CloudTrail marks these read-only although their names do not say so.
_READ_ONLY_ALSO = {
    "sts": frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot",
                      "DecodeAuthorizationMessage"}),
    "kms": frozenset({"Decrypt", "Encrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyPair",
                      "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPairWithoutPlaintext",
                      "GenerateRandom", "GenerateMac", "Sign"}),
    "sqs": frozenset({"ReceiveMessage"}),
}
# Read-only calls have null responseElements, except credential-issuing ones (the AssumeRole fixture).
_READ_ONLY_WITH_RESPONSE = {
    "sts": frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot",
                      "GetSessionToken", "GetFederationToken"}),
}
# CloudTrail drops secret keys from logged credentials rather than masking them.
_DROPPED = frozenset({"SecretAccessKey"})

# EC2 logs these list parameters as an empty object even when the call did not send them.
_EC2_EMPTY_LISTS = {
    "AuthorizeSecurityGroupIngress": ("ipPermissions",),
    "AuthorizeSecurityGroupEgress": ("ipPermissions",),
    "RevokeSecurityGroupIngress": ("ipPermissions",),
    "RevokeSecurityGroupEgress": ("ipPermissions",),
    "RunInstances": ("blockDeviceMapping",),
}
# EC2 logs item sets under its internal names, which the API model does not carry: the common ones.
_EC2_SET_NAMES = {
    "InstanceIds": ("instancesSet", "instanceId"),
    "SecurityGroupIds": ("groupSet", "groupId"),
    "Filters": ("filterSet", None),
    "Values": ("valueSet", "value"),
}
# ...and shows a permission's absent lists as empty objects.
_EC2_EMPTY_MEMBERS = {"IpPermission": ("groups", "ipRanges", "ipv6Ranges", "prefixListIds")}
# Newer EC2 APIs log the raw request/response documents instead of EC2's item-set form.
_EC2_RAW_STYLE = frozenset({"CreateFlowLogs", "DeleteFlowLogs"})
_EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/"

_S3_SKIPPED_HEADERS = ("x-amz-checksum", "x-amz-sdk-checksum", "x-amz-content-sha256", "x-amz-date",
                       "x-amz-expected-bucket-owner", "x-amz-security-token")
_S3_RESPONSE_OPS = frozenset({"PutObject", "CopyObject", "CompleteMultipartUpload", "UploadPart",
                              "UploadPartCopy"})


# -- identities ------------------------------------------------------------------------------


def iam_user_identity(*, account_id: str, user_name: str, user_id: str, access_key_id: str | None) -> dict:
    """userIdentity of an IAM user calling with its access key."""
    return {
        "type": "IAMUser",
        "principalId": user_id,
        "arn": f"arn:aws:iam::{account_id}:user/{user_name}",
        "accountId": account_id,
        "accessKeyId": access_key_id or "",
        "userName": user_name,
    }


def assumed_role_identity(*, account_id: str, role_name: str, role_id: str, session_name: str,
                          access_key_id: str | None, issued_at: datetime, mfa: bool = False,
                          role_path: str = "/") -> dict:
    """userIdentity of a role session (AssumeRole credentials)."""
    return {
        "type": "AssumedRole",
        "principalId": f"{role_id}:{session_name}",
        "arn": f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}",
        "accountId": account_id,
        "accessKeyId": access_key_id or "",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": role_id,
                "arn": f"arn:aws:iam::{account_id}:role{role_path.rstrip('/')}/{role_name}",
                "accountId": account_id,
                "userName": role_name,
            },
            "attributes": {
                "creationDate": _iso(issued_at),
                "mfaAuthenticated": "true" if mfa else "false",
            },
        },
    }


def root_identity(*, account_id: str, access_key_id: str | None) -> dict:
    """userIdentity of the account's root user."""
    return {
        "type": "Root",
        "principalId": account_id,
        "arn": f"arn:aws:iam::{account_id}:root",
        "accountId": account_id,
        "accessKeyId": access_key_id or "",
    }


# -- tables ------------------------------------------------------------------------------------


def event_source(service: str) -> str:
    """CloudTrail's eventSource for a botocore service, e.g. monitoring.amazonaws.com for cloudwatch."""
    info = service_info(service)
    return f"{info.signing_name if info else service}.amazonaws.com"


def event_name(call: ApiCall) -> str:
    """CloudTrail's eventName for the call (legacy S3 names, versioned Lambda names)."""
    if call.service == "s3":
        return _S3_EVENT_NAMES.get(call.operation, call.operation)
    if call.service == "lambda":
        return _LAMBDA_EVENT_NAMES.get(call.operation, call.operation)
    return call.operation


def classify(call: ApiCall) -> str | None:
    """'Management', 'Data', or None for calls CloudTrail does not log at all."""
    if call.operation in _NOT_LOGGED.get(call.service, ()):
        return None
    if call.operation in _DATA_EVENTS.get(call.service, ()):
        return "Data"
    return "Management"


def is_read_only(call: ApiCall) -> bool:
    """CloudTrail's readOnly flag (by name prefix plus a table; AWS decides per API, so edge cases may differ)."""
    return call.operation.startswith(_READ_PREFIXES) or call.operation in _READ_ONLY_ALSO.get(call.service, ())


# -- the record --------------------------------------------------------------------------------


def build_record(call: ApiCall, *, user_identity: dict, account_id: str, event_time: datetime,
                 event_id: str | None = None) -> dict:
    """The CloudTrail record AWS would write for this call, keys in AWS's order."""
    category = classify(call) or "Management"
    read_only = is_read_only(call)
    op = operation_model(call.service, call.operation)
    record: dict[str, Any] = {
        "eventVersion": _EVENT_VERSIONS.get(call.service, _DEFAULT_EVENT_VERSION),
        "userIdentity": user_identity,
        "eventTime": _iso(event_time),
        "eventSource": event_source(call.service),
        "eventName": event_name(call),
        "awsRegion": call.region,
        "sourceIPAddress": call.source_ip,
        "userAgent": call.user_agent,
    }
    if call.error_code is not None or call.status >= 400:
        record["errorCode"] = _error_code(call, op)
        record["errorMessage"] = call.error_message or ""
    record["requestParameters"] = request_parameters(call, op)
    record["responseElements"] = response_elements(call, op, read_only)
    if call.service == "s3":  # x-amz-id-2 is left out: the embedded S3 has no host ids
        record["additionalEventData"] = {
            "SignatureVersion": "SigV4",
            "CipherSuite": _TLS["cipherSuite"],
            "bytesTransferredIn": call.bytes_in,
            "AuthenticationMethod": "QueryString" if call.presigned else "AuthHeader",
            "bytesTransferredOut": call.bytes_out,
        }
    record["requestID"] = call.request_id or str(uuid.uuid4())
    record["eventID"] = event_id or str(uuid.uuid4())
    record["readOnly"] = read_only
    resources = _resources(call, account_id)
    if resources:
        record["resources"] = resources
    record["eventType"] = "AwsApiCall"
    record["managementEvent"] = category == "Management"
    record["recipientAccountId"] = account_id
    record["eventCategory"] = category
    record["tlsDetails"] = {**_TLS, "clientProvidedHostHeader": _real_host(call)}
    # Not emitted, for want of the feature: apiVersion, invokedBy, vpcEndpointId, sharedEventID, sessionCredentialFromConsole.
    return record


def request_parameters(call: ApiCall, op: OperationModel | None = None) -> dict | None:
    """requestParameters as CloudTrail writes them (lowerCamel member names, EC2 item sets, S3 form)."""
    op = op or operation_model(call.service, call.operation)
    shape = op.input_shape if op else None
    if call.service == "s3":
        return _s3_request(call, op)
    if call.service == "ec2":
        if call.operation in _EC2_RAW_STYLE:
            return {f"{call.operation}Request": _ec2_raw(call.params, shape)}
        out = _ec2(call.params, shape, call.service)
        return _ec2_quirks(call.operation, out) or None
    out = _plain(call.params, shape, call.service, request=True)
    return out or None


def response_elements(call: ApiCall, op: OperationModel | None = None, read_only: bool | None = None) -> dict | None:
    """responseElements: null on errors, for read-only calls and for empty answers."""
    if call.error_code is not None or call.status >= 400 or not call.response:
        if call.service == "ec2" and call.operation in _EC2_RAW_STYLE and call.status < 400:
            return {f"{call.operation}Response": {"requestId": call.request_id or "", "xmlns": _EC2_XMLNS}}
        return None
    read_only = is_read_only(call) if read_only is None else read_only
    if read_only and call.operation not in _READ_ONLY_WITH_RESPONSE.get(call.service, ()):
        return None
    op = op or operation_model(call.service, call.operation)
    shape = op.output_shape if op else None
    if call.service == "s3":
        return _s3_response(call, shape)
    if call.service == "ec2":
        if call.operation in _EC2_RAW_STYLE:
            body = {"requestId": call.request_id or ""}
            body.update(_ec2_raw_response(call.response, shape))
            body["xmlns"] = _EC2_XMLNS
            return {f"{call.operation}Response": body}
        out = _ec2(call.response, shape, call.service, response=True)
        return ({"requestId": call.request_id, **out} if call.request_id else out) or None
    return _plain(call.response, shape, call.service, request=False) or None


def _error_code(call: ApiCall, op: OperationModel | None) -> str:
    code = call.error_code or str(call.status)
    if call.service == "ec2":
        # EC2 records say who failed: Client.<Code> for 4xx, Server.<Code> for 5xx.
        return f"{'Server' if call.status >= 500 else 'Client'}.{code}"
    if call.service == "iam" and op is not None:
        # IAM logs modelled errors by their exception name (NoSuchEntity -> NoSuchEntityException).
        for shape in op.error_shapes:
            if shape.error_code == code:
                return shape.name
    return code


# -- value conversion --------------------------------------------------------------------------


def _lc(name: str) -> str:
    # CloudTrail lower-cases only the first letter (ARN -> aRN), like the fixtures' trailARN.
    return name[:1].lower() + name[1:]


def _iso(when: datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, timezone.utc)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                return _as_datetime(float(value))
            except ValueError:
                return None
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return None


def _timestamp(value: Any, service: str) -> Any:
    """Dates the way each service's records print them (Java's formats; EC2 epoch milliseconds)."""
    dt = _as_datetime(value)
    if dt is None:
        return value
    dt = dt.astimezone(timezone.utc)
    if service == "ec2":
        return int(dt.timestamp() * 1000)
    hour = dt.hour % 12 or 12
    sep = "" if service == "iam" else ","  # the IAM fixture has no comma before the time
    return f"{dt:%b} {dt.day}, {dt.year}{sep} {hour}:{dt:%M:%S} {'AM' if dt.hour < 12 else 'PM'}"


def _sensitive(shape: Shape | None) -> bool:
    return bool(shape is not None and shape.metadata.get("sensitive"))


def _plain(value: Any, shape: Shape | None, service: str, *, request: bool) -> Any:
    if shape is not None and _sensitive(shape) and value not in (None, "", [], {}):
        return HIDDEN
    t = shape.type_name if shape is not None else None
    if isinstance(value, dict):
        if t == "map":
            return {k: _plain(v, shape.value, service, request=request) for k, v in value.items()}
        members = shape.members if t == "structure" else {}
        out = {}
        for k, v in value.items():
            if not request and k in _DROPPED:
                continue
            out[_lc(k)] = _plain(v, members.get(k), service, request=request)
        return out
    if isinstance(value, list):
        member = shape.member if t == "list" else None
        return [_plain(v, member, service, request=request) for v in value]
    if t == "timestamp":
        return _timestamp(value, service)
    return value


def _ec2_key(name: str, shape: Shape | None) -> str:
    if name == "Return":
        return "_return"  # EC2's <return> element, renamed by CloudTrail's Java mapping
    if shape is not None and shape.serialization.get("name"):
        return _lc(shape.serialization["name"])
    return _lc(name)


def _ec2(value: Any, shape: Shape | None, service: str, *, response: bool = False, item: str | None = None) -> Any:
    """EC2 style: wire names, lists wrapped as {"items": [...]}."""
    if _sensitive(shape) and value not in (None, "", [], {}):
        return HIDDEN
    t = shape.type_name if shape is not None else None
    if isinstance(value, dict):
        if t == "map":
            return {k: _ec2(v, shape.value, service) for k, v in value.items()}
        members = shape.members if t == "structure" else {}
        out = {}
        for k, v in value.items():
            m = members.get(k)
            named = _EC2_SET_NAMES.get(k) if not response else None
            out[named[0] if named else _ec2_key(k, m)] = _ec2(v, m, service, response=response, item=named and named[1])
        if not response and shape is not None:
            for key in _EC2_EMPTY_MEMBERS.get(shape.name, ()):
                out.setdefault(key, {})
        return out
    if isinstance(value, list):
        member = shape.member if t == "list" else None
        items = []
        for v in value:
            if isinstance(v, dict) or member is None or member.type_name in ("structure", "map"):
                items.append(_ec2(v, member, service, response=response))
            else:
                # Scalar lists become one-key items named after the element.
                name = item or member.serialization.get("name") or shape.serialization.get("name") or "value"
                if name == "item":
                    name = shape.serialization.get("name", "value")
                items.append({_lc(name): _ec2(v, member, service)})
        return {"items": items}
    if t == "timestamp":
        return _timestamp(value, service)
    return value


def _ec2_quirks(operation: str, params: dict) -> dict:
    for key in _EC2_EMPTY_LISTS.get(operation, ()):
        params.setdefault(key, {})
    if operation == "RunInstances":
        # EC2 logs the instance spec as instancesSet and fills in its defaults.
        item = {k: params.pop(k) for k in ("imageId", "minCount", "maxCount", "keyName") if k in params}
        params["instancesSet"] = {"items": [item]}
        params.setdefault("disableApiTermination", False)
        params.setdefault("disableApiStop", False)
        params.setdefault("monitoring", {"enabled": False})
    return dict(sorted(params.items()))


def _ec2_raw(params: dict, shape: Shape | None) -> dict:
    """Raw-style EC2 request: query names, list entries as {"content": v, "tag": index}."""
    out: dict[str, Any] = {}
    members = shape.members if shape is not None else {}
    for name, value in params.items():
        m = members.get(name)
        ser = m.serialization if m is not None else {}
        key = ser.get("queryName") or (ser["name"][0].upper() + ser["name"][1:] if "name" in ser else name)
        if isinstance(value, list):
            entries = [{"content": v, "tag": i} if not isinstance(v, dict) else {**v, "tag": i}
                       for i, v in enumerate(value, 1)]
            out[key] = entries[0] if len(entries) == 1 else entries
        else:
            out[key] = value
    return out


def _ec2_raw_response(response: dict, shape: Shape | None) -> dict:
    members = shape.members if shape is not None else {}
    out: dict[str, Any] = {}
    for name, value in response.items():
        m = members.get(name)
        key = m.serialization.get("name", _lc(name)) if m is not None else _lc(name)
        out[key] = "" if value in ([], {}, None) else value
    return out


def _s3_host(bucket: str | None, region: str) -> str:
    # As botocore addresses S3: the global endpoint from us-east-1, regional ones elsewhere.
    base = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
    return f"{bucket}.{base}" if bucket else base


def _s3_request(call: ApiCall, op: OperationModel | None) -> dict:
    """S3 style: bucketName, Host, the subresource key, headers by name and the XML body as sent."""
    p = call.params
    out: dict[str, Any] = {}
    bucket = p.get("Bucket")
    if bucket:
        out["bucketName"] = bucket
    out["Host"] = _s3_host(bucket, call.region)
    if "Key" in p:
        out["key"] = p["Key"]
    if op is None:
        return out
    uri = (op.http or {}).get("requestUri", "")
    for item in uri.partition("?")[2].split("&"):
        if item:
            k, _, v = item.partition("=")
            out[k] = v
    shape = op.input_shape
    if shape is None:
        return out
    payload = shape.serialization.get("payload")
    for name, m in shape.members.items():
        if name in ("Bucket", "Key") or name not in p or name == payload:
            continue
        loc, wire = m.serialization.get("location"), m.serialization.get("name", name)
        if loc == "querystring":
            out[wire] = p[name]
        elif loc == "header" and wire.lower().startswith("x-amz-") and not wire.lower().startswith(_S3_SKIPPED_HEADERS):
            out[wire.lower()] = p[name]
    if payload and payload in p:
        if call.operation == "PutBucketPolicy":
            try:
                out["bucketPolicy"] = json.loads(p[payload])
            except (TypeError, ValueError):
                out["bucketPolicy"] = p[payload]
        elif shape.members[payload].type_name == "structure":
            out[shape.members[payload].serialization.get("name", payload)] = p[payload]
    return out


def _s3_response(call: ApiCall, shape: Shape | None) -> dict | None:
    # S3 logs response headers for object writes only; bucket configuration calls log null.
    if call.operation not in _S3_RESPONSE_OPS or shape is None or not call.response:
        return None
    out = {}
    for name, m in shape.members.items():
        wire = m.serialization.get("name", "").lower()
        if m.serialization.get("location") == "header" and name in call.response and \
                wire.startswith(("x-amz-server-side-encryption", "x-amz-version-id")):
            out[wire] = call.response[name]
    return out or None


def _resources(call: ApiCall, account_id: str) -> list[dict] | None:
    p, region = call.params, call.region
    if call.service == "s3":
        bucket = p.get("Bucket")
        if not bucket:
            return None
        bucket_arn = {"accountId": account_id, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}
        if "Key" in p:
            return [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{p['Key']}"}, bucket_arn]
        return [bucket_arn]
    if call.service == "sts" and call.operation.startswith("AssumeRole") and p.get("RoleArn"):
        arn = p["RoleArn"]
        owner = arn.split(":")[4] if arn.count(":") >= 5 else account_id
        return [{"ARN": arn, "accountId": owner, "type": "AWS::IAM::Role"}]
    if classify(call) != "Data":
        return None
    if call.service == "lambda" and p.get("FunctionName"):
        name = p["FunctionName"]
        arn = name if name.startswith("arn:") else f"arn:aws:lambda:{region}:{account_id}:function:{name}"
        return [{"accountId": account_id, "type": "AWS::Lambda::Function", "ARN": arn}]
    if call.service == "sns" and p.get("TopicArn"):
        return [{"accountId": account_id, "type": "AWS::SNS::Topic", "ARN": p["TopicArn"]}]
    if call.service == "sqs" and p.get("QueueUrl"):
        parts = p["QueueUrl"].rstrip("/").split("/")
        owner = parts[-2] if len(parts) >= 2 and parts[-2].isdigit() else account_id
        return [{"accountId": owner, "type": "AWS::SQS::Queue",
                 "ARN": f"arn:aws:sqs:{region}:{owner}:{parts[-1]}"}]
    if call.service == "dynamodb" and p.get("TableName"):
        name = p["TableName"]
        arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account_id}:table/{name}"
        return [{"accountId": account_id, "type": "AWS::DynamoDB::Table", "ARN": arn}]
    return None


def _real_host(call: ApiCall) -> str:
    if call.service == "s3":
        return _s3_host(call.params.get("Bucket"), call.region)
    if call.service in _GLOBAL_HOSTS:
        return _GLOBAL_HOSTS[call.service]
    info = service_info(call.service)
    return f"{info.endpoint_prefix if info else call.service}.{call.region}.amazonaws.com"
