"""SNS as the plane runs it: delivery per subscription, confirmation, e-mail suspension, topic-policy Deny, KMS keys."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import secrets
import threading
import urllib.request
import uuid
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit
from xml.sax.saxutils import escape

from harness.emulator import motoadapter as moto
from harness.emulator import policy
from harness.emulator.clock import PlaneClock

log = logging.getLogger("gameday.plane.sns")

Response = tuple[int, dict[str, str], bytes]

# The endpoint's owner confirms these (SQS too when the queue is another account's); the rest are confirmed at once.
CONFIRMED_BY_ENDPOINT = frozenset({"email", "email-json", "http", "https"})
# Endpoints outside AWS: what the plane sends them is kept in an outbox the harness reads.
OUTSIDE_AWS = frozenset({"email", "email-json", "sms", "application", "http", "https"})
EMAIL = frozenset({"email", "email-json"})
# AWS: more than 10 messages a second to an e-mail endpoint suspends the subscription. The second is AWS time
# (at time scale 60 it lasts 17 ms of wall time), counted from when each message was published.
EMAIL_TPS = 10
RATE_WINDOW_MIN_WALL_S = 0.25
PENDING_TTL_S = 48 * 3600  # AWS deletes a subscription left pending confirmation for 48 hours
HTTP_TIMEOUT_S = 2.0
OUTBOX_LIMIT = 1000  # per endpoint
# SNS API calls checked against the topic policy's Deny statements: action -> (parameter naming the target, IAM action).
DENY_CHECKED = {
    "DeleteTopic": ("TopicArn", "DeleteTopic"), "SetTopicAttributes": ("TopicArn", "SetTopicAttributes"),
    "AddPermission": ("TopicArn", "AddPermission"), "RemovePermission": ("TopicArn", "RemovePermission"),
    "Subscribe": ("TopicArn", "Subscribe"), "Publish": ("TopicArn", "Publish"), "PublishBatch": ("TopicArn", "Publish"),
    "Unsubscribe": ("SubscriptionArn", "Unsubscribe"),
    "SetSubscriptionAttributes": ("SubscriptionArn", "SetSubscriptionAttributes"),
}
# What SNS asks of the topic's key when a service publishes to an encrypted topic.
KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")
# CloudWatch's own words when the topic uses the AWS managed key, whose policy no service can be granted.
MANAGED_KEY_DENIED = {"cloudwatch.amazonaws.com":
                      "CloudWatch Alarms does not have authorization to access the SNS topic encryption key."}
_XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"
# Loopback HTTP endpoints are reached directly, never through a proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class KmsDenied(Exception):
    """The topic's KMS key refused the publishing service; the text is what AWS services record for it."""


class Suspended(Exception):
    """An e-mail subscription went over EMAIL_TPS and was put back to PendingConfirmation."""


class InvalidToken(Exception):
    """ConfirmSubscription with a token this topic never sent."""


class NotificationService:
    """Delivers every publish subscription by subscription and keeps what went to endpoints outside AWS.

    As on AWS, Publish returns once the message is accepted and delivery follows (on the plane's delivery
    thread, through `enqueue`), so a burst reaches its subscribers at the rate it was published. A failing
    subscriber never fails the Publish: it is counted in AWS/SNS NumberOfNotificationsFailed.
    Known difference: deliveries are tried once; AWS retries per the delivery policy (HTTP: 3 times, 20 s apart).
    """

    def __init__(self, *, clock: PlaneClock, enqueue: Callable[[Callable[[], None]], None],
                 emit_metric: Callable[..., None], invoke_lambda: Callable[[str, bytes], None]):
        self.clock = clock
        self.endpoint_url = ""
        self._enqueue = enqueue
        self._emit_metric = emit_metric
        self._invoke_lambda = invoke_lambda
        self._lock = threading.Lock()
        self._outbox: dict[str, deque] = defaultdict(lambda: deque(maxlen=OUTBOX_LIMIT))
        self._tokens: dict[str, str] = {}  # confirmation token -> subscription ARN
        self._pending_since: dict[str, float] = {}  # subscription ARN -> AWS time it became pending
        self._confirmed_at: dict[str, float] = {}  # subscription ARN -> AWS time of its latest confirmation
        self._recent: dict[str, deque] = defaultdict(deque)  # e-mail subscription ARN -> AWS times of deliveries
        self._http = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gameday-sns-http")

    def start(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        moto.listen_to_sns(self.published, self.subscribed)

    def stop(self) -> None:
        moto.stop_listening_to_sns(self.published)
        self._http.shutdown(wait=False, cancel_futures=True)

    # -- for the harness ---------------------------------------------------------------------------

    def outbox(self, endpoint: str) -> list[dict]:
        """What reached an endpoint outside AWS (address, phone, URL): notifications and confirmations, newest last."""
        with self._lock:
            return [dict(m) for m in self._outbox.get(endpoint, ())]

    def confirm(self, topic_arn: str, token: str) -> str:
        """ConfirmSubscription: confirms the token's subscription (again, after a suspension) and returns its ARN."""
        with self._lock:
            arn = self._tokens.get(token)
        if arn is None or arn.rsplit(":", 1)[0] != topic_arn or moto.sns_subscription(arn) is None:
            raise InvalidToken(token)
        moto.sns_set_pending(arn, False)
        with self._lock:
            self._pending_since.pop(arn, None)
            self._recent.pop(arn, None)
            self._confirmed_at[arn] = self.clock.now()
        return arn

    def tick(self) -> None:
        """Delete the subscriptions left pending (new or suspended) for 48 hours of AWS time."""
        cutoff = self.clock.now() - PENDING_TTL_S
        with self._lock:
            expired = {arn for arn, since in self._pending_since.items() if since <= cutoff}
            for arn in expired:
                del self._pending_since[arn]
            if expired:
                self._tokens = {t: a for t, a in self._tokens.items() if a not in expired}
        for arn in expired:
            sub = moto.sns_subscription(arn)
            if sub is not None and sub.pending:
                moto.sns_delete_subscription(arn)

    # -- moto's hooks ------------------------------------------------------------------------------

    def subscribed(self, sub: moto.SubscriptionView, created: bool) -> None:
        """A new subscription needing confirmation starts pending; Subscribe on a pending one re-sends it."""
        if created:
            if not self._needs_confirmation(sub):
                return
            moto.sns_set_pending(sub.arn, True)
            with self._lock:
                self._pending_since[sub.arn] = self.clock.now()
        elif not sub.pending:
            return
        self._send_confirmation(sub)

    def published(self, pub: moto.Publication) -> None:
        """Accept a message for delivery; raises only when the topic's key refuses the publishing service."""
        if pub.publisher:
            # Known difference: an API Publish by an IAM principal is not checked against the key (no IAM evaluation).
            self._check_key(pub)
        self._enqueue(functools.partial(self._fan_out, pub, self.clock.now()))

    def _fan_out(self, pub: moto.Publication, accepted: float) -> None:
        """Deliver to every confirmed subscription whose filter policy matches (`accepted`: AWS time published)."""
        delivered = failed = filtered = 0
        for sub in moto.sns_subscriptions(pub.topic_arn):
            # A message accepted before the subscription's latest confirmation (while it was suspended) is not owed.
            if sub.pending or accepted < self._confirmed_at.get(sub.arn, accepted):
                continue
            if not moto.sns_filter_matches(sub, pub):
                filtered += 1
                continue
            try:
                done = self._deliver(sub, pub, accepted)
            except Exception as exc:  # one subscriber's failure is counted, never raised to the publisher
                log.info("sns delivery to %s %s failed: %s", sub.protocol, sub.endpoint, exc)
                failed += 1
                continue
            delivered += done
        self._count(pub.topic_arn, NumberOfMessagesPublished=1, NumberOfNotificationsDelivered=delivered,
                    NumberOfNotificationsFailed=failed, NumberOfNotificationsFilteredOut=filtered)

    # -- the SNS API calls the plane answers ---------------------------------------------------------

    def serve(self, params: Mapping[str, str], *, access_key: str | None) -> Response | None:
        """ConfirmSubscription (moto's is a no-op), and refusals by a topic policy's explicit Deny."""
        action = params.get("Action", "")
        if action == "ConfirmSubscription":
            return self._confirm_call(params)
        if action in DENY_CHECKED:
            return self._refusal(action, params, access_key)
        return None

    def _confirm_call(self, params: Mapping[str, str]) -> Response:
        topic_arn = params.get("TopicArn", "")
        if not _is_topic_arn(topic_arn) or moto.sns_topic(topic_arn) is None:
            return _error(404, "NotFound", "Topic does not exist")
        try:
            arn = self.confirm(topic_arn, params.get("Token", ""))
        except InvalidToken:
            return _error(400, "InvalidParameter", "Invalid parameter: Token")
        body = (f'<ConfirmSubscriptionResponse xmlns="{_XMLNS}"><ConfirmSubscriptionResult>'
                f"<SubscriptionArn>{escape(arn)}</SubscriptionArn></ConfirmSubscriptionResult>"
                f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                f"</ConfirmSubscriptionResponse>")
        return 200, {"Content-Type": "text/xml"}, body.encode()

    def _refusal(self, action: str, params: Mapping[str, str], access_key: str | None) -> Response | None:
        """Only an explicit Deny in the topic policy refuses: moto evaluates no IAM, so identity policies and
        implicit denies are not evaluated (known difference)."""
        parameter, iam_action = DENY_CHECKED[action]
        target = params.get(parameter) or (params.get("TargetArn", "") if action == "Publish" else "")
        topic_arn = target.rsplit(":", 1)[0] if parameter == "SubscriptionArn" else target
        topic = moto.sns_topic(topic_arn) if _is_topic_arn(topic_arn) else None
        if topic is None or not policy.has_deny(topic.policy):
            return None
        principal, context = policy.caller(moto.user_identity(access_key))
        if policy.denies(topic.policy, action=f"sns:{iam_action}", resource=topic_arn, principal=principal,
                         context=context) is None:
            return None
        return _error(403, "AuthorizationError",
                      f"User: {principal.arn} is not authorized to perform: SNS:{iam_action} on resource: "
                      f"{topic_arn} with an explicit deny in a resource-based policy")

    # -- delivery ----------------------------------------------------------------------------------

    def _deliver(self, sub: moto.SubscriptionView, pub: moto.Publication, accepted: float) -> int:
        """1 when delivered now, 0 when an HTTP POST is under way (counted when it ends); raises on failure."""
        if sub.protocol == "sqs":
            moto.sns_to_sqs(sub, pub)
            return 1
        if sub.protocol == "lambda":
            # SNS invokes asynchronously: a missing function fails the delivery, a function error does not.
            self._invoke_lambda(sub.endpoint, json.dumps(_lambda_event(sub, moto.sns_envelope(sub, pub))).encode())
            return 1
        if sub.protocol in EMAIL:
            self._throttle(sub, accepted)
        if sub.protocol not in OUTSIDE_AWS:
            raise NotImplementedError(f"SNS protocol {sub.protocol} is not emulated")
        if sub.protocol in ("email", "sms"):
            # Known difference: kept as an unsigned JSON document; AWS sends a plain-text mail or SMS.
            self._keep(sub.endpoint, _unsigned(sub, pub))
            return 1
        document = moto.sns_envelope(sub, pub)
        if sub.protocol in ("http", "https") and _loopback(sub.endpoint):
            self._http.submit(self._post_notification, sub, document)
            return 0
        # Known difference: non-loopback URLs are never contacted; kept, they count as delivered.
        self._keep(sub.endpoint, document)
        return 1

    def _post_notification(self, sub: moto.SubscriptionView, document: dict) -> None:
        ok = _post(sub.endpoint, document, "Notification", sub.arn)
        if ok:
            self._keep(sub.endpoint, document)
        self._count(sub.topic_arn, NumberOfNotificationsDelivered=int(ok), NumberOfNotificationsFailed=int(not ok))

    def _throttle(self, sub: moto.SubscriptionView, now: float) -> None:
        with self._lock:
            window = self._recent[sub.arn]
            window.append(now)
            # Known difference: the one-second window lasts at least RATE_WINDOW_MIN_WALL_S of wall time. At 60x an
            # AWS second is 17 ms, shorter than a client takes to publish eleven messages, so no storm could count.
            span = max(1.0, RATE_WINDOW_MIN_WALL_S * self.clock.time_scale)
            while window[0] <= now - span:
                window.popleft()
            suspend = len(window) > EMAIL_TPS
            if suspend:
                del self._recent[sub.arn]
                self._pending_since[sub.arn] = now
        if suspend:
            moto.sns_set_pending(sub.arn, True)
            raise Suspended(f"{sub.endpoint} got more than {EMAIL_TPS} messages in one second: suspended")

    def _keep(self, endpoint: str, document: dict) -> None:
        with self._lock:
            self._outbox[endpoint].append(document)

    def _count(self, topic_arn: str, **counts: int) -> None:
        _, _, _, region, account, name = topic_arn.split(":", 5)
        for metric, value in counts.items():
            if value:
                self._emit_metric(account, region, "AWS/SNS", metric, float(value), dimensions={"TopicName": name},
                                  unit="Count")

    def _check_key(self, pub: moto.Publication) -> None:
        """A service publishing to an encrypted topic needs the key enabled and its policy to allow the service."""
        topic = moto.sns_topic(pub.topic_arn)
        if topic is None or not topic.kms_key_id:
            return
        _, _, _, region, account, _ = pub.topic_arn.split(":", 5)
        key = moto.kms_key(account, region, topic.kms_key_id)
        if key is not None and key.aws_managed:
            raise KmsDenied(MANAGED_KEY_DENIED.get(pub.publisher or "") or _kms_error("AccessDeniedException"))
        if key is None:
            code = "NotFoundException"
        elif key.state != "Enabled":
            code = "DisabledException" if key.state == "Disabled" else "KMSInvalidStateException"
        elif not all(policy.allows(key.policy, action=action, resource=key.arn,
                                   principal=policy.Principal(service=pub.publisher or ""),
                                   context={"aws:sourceaccount": account, "aws:sourceowner": account})
                     for action in KMS_ACTIONS):
            code = "AccessDeniedException"
        else:
            return
        raise KmsDenied(_kms_error(code))

    # -- confirmation --------------------------------------------------------------------------------

    def _needs_confirmation(self, sub: moto.SubscriptionView) -> bool:
        if sub.protocol in CONFIRMED_BY_ENDPOINT:
            return True
        # A queue owned by another account than the subscriber's is confirmed by its owner. Known difference:
        # a Lambda function of another account is confirmed at once.
        return sub.protocol == "sqs" and sub.endpoint.split(":")[4:5] != [sub.owner]

    def _send_confirmation(self, sub: moto.SubscriptionView) -> None:
        token = secrets.token_hex(64)
        with self._lock:
            self._tokens[token] = sub.arn
        topic = sub.topic_arn
        # Known differences: not signed, and the SubscribeURL points at the embedded endpoint (a GET confirms).
        document = {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.\n"
                       "To confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": f"{self.endpoint_url}/?Action=ConfirmSubscription&TopicArn={quote(topic, safe='')}"
                            f"&Token={token}",
            "Timestamp": _now(),
        }
        if sub.protocol == "sqs":
            if not moto.sqs_send_if_exists(sub.endpoint, json.dumps(document)):
                log.info("confirmation for %s not sent: queue %s does not exist", sub.arn, sub.endpoint)
        elif sub.protocol in ("http", "https") and _loopback(sub.endpoint):
            self._http.submit(self._post_confirmation, sub, document)
        else:
            self._keep(sub.endpoint, document)

    def _post_confirmation(self, sub: moto.SubscriptionView, document: dict) -> None:
        if _post(sub.endpoint, document, "SubscriptionConfirmation", sub.arn):
            self._keep(sub.endpoint, document)


def sns_params(method: str, query: str, body: bytes) -> dict[str, str]:
    """The flat parameters of a query-protocol SNS call (form body, or the URL for a GET such as SubscribeURL)."""
    text = body.decode("utf-8", "replace") if method == "POST" else query
    return dict(parse_qsl(text, keep_blank_values=True))


def _post(url: str, document: dict, kind: str, subscription_arn: str) -> bool:
    """POST an SNS document as AWS does; any 2xx is delivered, anything else (refused, timeout, 4xx, 5xx) failed."""
    headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": kind,
               "x-amz-sns-message-id": document["MessageId"], "x-amz-sns-topic-arn": document["TopicArn"],
               "User-Agent": "Amazon Simple Notification Service Agent"}
    if kind == "Notification":
        headers["x-amz-sns-subscription-arn"] = subscription_arn
    request = urllib.request.Request(url, data=json.dumps(document).encode(), headers=headers, method="POST")
    try:
        with _DIRECT.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        log.info("sns POST to %s failed: %s", url, exc)
        return False


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unsigned(sub: moto.SubscriptionView, pub: moto.Publication) -> dict:
    document = {"Type": "Notification", "MessageId": pub.message_id, "TopicArn": pub.topic_arn,
                "Message": moto.sns_message_for(sub, pub), "Timestamp": _now()}
    if pub.subject:
        document["Subject"] = pub.subject
    return document


def _lambda_event(sub: moto.SubscriptionView, document: dict) -> dict:
    """The event SNS gives a function (note SigningCertUrl/UnsubscribeUrl, spelled unlike the HTTP document)."""
    return {"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": sub.arn,
        "Sns": {"Type": document["Type"], "MessageId": document["MessageId"], "TopicArn": document["TopicArn"],
                "Subject": document.get("Subject"), "Message": document["Message"],
                "Timestamp": document["Timestamp"], "SignatureVersion": document["SignatureVersion"],
                "Signature": document["Signature"], "SigningCertUrl": document["SigningCertURL"],
                "UnsubscribeUrl": document["UnsubscribeURL"],
                "MessageAttributes": document.get("MessageAttributes", {})},
    }]}


def _kms_error(code: str) -> str:
    # How a failed KMS call reads in the AWS service that made it (e.g. a CloudWatch alarm's action history).
    return (f"null (Service: AWSKMS; Status Code: 400; Error Code: {code}; Request ID: {uuid.uuid4()}; "
            f"Proxy: null)")


def _error(status: int, code: str, message: str) -> Response:
    body = (f'<ErrorResponse xmlns="{_XMLNS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return status, {"Content-Type": "text/xml"}, body.encode()


def _is_topic_arn(arn: str) -> bool:
    parts = arn.split(":")
    return len(parts) == 6 and parts[0] == "arn" and parts[2] == "sns" and parts[4].isdigit() and bool(parts[5])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
