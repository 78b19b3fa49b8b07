"""SNS in the plane over HTTP: per-subscription delivery, confirmation, suspension, topic-policy Deny, KMS keys,
SetAlarmState and scheduled rules."""

from __future__ import annotations

import io
import json
import re
import textwrap
import threading
import time
import urllib.request
import uuid
import zipfile
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError

from harness.backends.embedded import EmbeddedBackend
from harness.config import Settings
from harness.poll import wait_for

ACCOUNT = "123456789012"
REGION = "us-east-1"
HOUR = 3600.0


@pytest.fixture(scope="module")
def aws():
    # 300 s alarm periods and rate(1 minute) schedules last 0.5 s and 0.1 s of wall time.
    backend = EmbeddedBackend(Settings(time_scale=600))
    backend.start()
    yield backend
    backend.stop()


def suffix() -> str:
    return uuid.uuid4().hex[:8]


def new_topic(aws, **attributes) -> str:
    return aws.client("sns").create_topic(Name=f"topic-{suffix()}", Attributes=attributes)["TopicArn"]


def new_queue(aws) -> tuple[str, str]:
    """(url, arn) of a fresh queue."""
    name = f"q-{suffix()}"
    return aws.client("sqs").create_queue(QueueName=name)["QueueUrl"], f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def received(aws, url: str) -> list[str]:
    """Bodies waiting in a queue, deleted once read."""
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for m in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return [m["Body"] for m in messages]


def wait_received(aws, url: str, timeout: float = 5) -> list[str]:
    got = wait_for(lambda: received(aws, url) or None, timeout=timeout, interval=0.02, describe=f"message in {url}")
    assert got, f"nothing reached {url}"
    return got


def metric(aws, arn: str, name: str, namespace: str = "AWS/SNS", dimension: str = "TopicName") -> float:
    """The sum of a topic's (or, with AWS/Events and RuleName, a rule's) metric so far."""
    aws.plane.drain()
    points = aws.client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=name, Dimensions=[{"Name": dimension, "Value": re.split("[:/]", arn)[-1]}],
        StartTime=time.time() - 3600, EndTime=time.time() + 3600, Period=60, Statistics=["Sum"])["Datapoints"]
    return sum(p["Sum"] for p in points)


def wait_metric(aws, arn: str, name: str, value: float, **kw) -> None:
    assert wait_for(lambda: metric(aws, arn, name, **kw) == value or None, timeout=5, interval=0.05,
                    describe=f"{name} = {value}"), f"{name} = {metric(aws, arn, name, **kw)}, not {value}"


def confirmations(aws, endpoint: str) -> list[dict]:
    return [m for m in aws.plane.sns.outbox(endpoint) if m["Type"] == "SubscriptionConfirmation"]


def notifications(aws, endpoint: str) -> list[dict]:
    aws.plane.drain()  # Publish returns before delivery, as on AWS
    return [m for m in aws.plane.sns.outbox(endpoint) if m["Type"] == "Notification"]


def subscribe_confirmed_email(aws, topic: str) -> tuple[str, str]:
    """(address, subscription ARN) of an e-mail subscription the on-call human confirmed from the outbox."""
    address = f"oncall-{suffix()}@example.com"
    aws.client("sns").subscribe(TopicArn=topic, Protocol="email", Endpoint=address)
    token = confirmations(aws, address)[-1]["Token"]
    return address, aws.client("sns").confirm_subscription(TopicArn=topic, Token=token)["SubscriptionArn"]


def attributes(aws, subscription_arn: str) -> dict:
    return aws.client("sns").get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]


class ManualClock:
    """AWS time that moves only when told to (suspension and expiry are measured in AWS seconds)."""

    time_scale = 1.0  # AWS's own rates, with no floor for wall time

    def __init__(self, at: float):
        self.at = at

    def now(self) -> float:
        return self.at


@pytest.fixture
def clock(aws, monkeypatch):
    manual = ManualClock(aws.plane.clock.now())
    monkeypatch.setattr(aws.plane.sns, "clock", manual)
    return manual


# -- delivery --------------------------------------------------------------------------------------


def test_a_deleted_queue_fails_its_delivery_only(aws):
    sns, sqs = aws.client("sns"), aws.client("sqs")
    topic = new_topic(aws)
    (kept, kept_arn), (gone, gone_arn) = new_queue(aws), new_queue(aws)
    for arn in (kept_arn, gone_arn):
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    address, _ = subscribe_confirmed_email(aws, topic)
    sqs.delete_queue(QueueUrl=gone)
    sns.publish(TopicArn=topic, Message="still delivered", Subject="s")
    envelope = json.loads(wait_received(aws, kept)[0])
    assert envelope["Type"] == "Notification" and envelope["Message"] == "still delivered"
    assert envelope["Subject"] == "s" and envelope["TopicArn"] == topic
    assert [m["Message"] for m in notifications(aws, address)] == ["still delivered"]
    wait_metric(aws, topic, "NumberOfMessagesPublished", 1)
    wait_metric(aws, topic, "NumberOfNotificationsDelivered", 2)
    wait_metric(aws, topic, "NumberOfNotificationsFailed", 1)


def test_filter_policies_drop_and_count(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    (by_attribute, a_arn), (by_body, b_arn) = new_queue(aws), new_queue(aws)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=a_arn,
                  Attributes={"FilterPolicy": json.dumps({"severity": ["high"]})})
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=b_arn,
                  Attributes={"FilterPolicyScope": "MessageBody",
                              "FilterPolicy": json.dumps({"detail": {"eventName": ["StopLogging"]}})})
    high = {"severity": {"DataType": "String", "StringValue": "high"}}
    sns.publish(TopicArn=topic, Message=json.dumps({"detail": {"eventName": "StopLogging"}}), MessageAttributes=high)
    sns.publish(TopicArn=topic, Message=json.dumps({"detail": {"eventName": "DescribeTrails"}}),
                MessageAttributes={"severity": {"DataType": "String", "StringValue": "low"}})
    assert [json.loads(json.loads(b)["Message"])["detail"]["eventName"]
            for b in wait_received(aws, by_attribute)] == ["StopLogging"]
    assert len(wait_received(aws, by_body)) == 1
    wait_metric(aws, topic, "NumberOfNotificationsFilteredOut", 2)
    wait_metric(aws, topic, "NumberOfNotificationsDelivered", 2)
    assert received(aws, by_attribute) == [] and received(aws, by_body) == []


def test_raw_delivery_and_message_structure_are_moto_s_formats(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    (raw, raw_arn), (wrapped, wrapped_arn) = new_queue(aws), new_queue(aws)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=raw_arn, Attributes={"RawMessageDelivery": "true"})
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=wrapped_arn)
    sns.publish(TopicArn=topic, MessageStructure="json", Message=json.dumps({"default": "d", "sqs": "for queues"}))
    assert wait_received(aws, raw) == ["for queues"]
    assert json.loads(wait_received(aws, wrapped)[0])["Message"] == "for queues"
    with pytest.raises(ClientError) as err:
        sns.publish(TopicArn=topic, MessageStructure="json", Message=json.dumps({"sqs": "no default"}))
    assert err.value.response["Error"]["Code"] == "InvalidParameter"
    assert "No default entry" in err.value.response["Error"]["Message"]


def test_publish_batch_goes_through_the_plane(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    url, arn = new_queue(aws)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[{"Id": str(i), "Message": f"m{i}"}
                                                                    for i in range(3)])
    bodies: list[str] = []  # deliveries are asynchronous: a poll may see part of the batch, and reading deletes
    got = wait_for(lambda: bodies.extend(received(aws, url)) or len(bodies) >= 3 or None, timeout=5, interval=0.02,
                   describe="batch")
    assert got and sorted(json.loads(b)["Message"] for b in bodies) == ["m0", "m1", "m2"]
    wait_metric(aws, topic, "NumberOfMessagesPublished", 3)


def _zip(source: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", textwrap.dedent(source))
    return buf.getvalue()


def test_lambda_subscriber_gets_the_sns_event_and_its_errors_are_not_sns_failures(aws):
    iam, lam, sns = aws.client("iam"), aws.client("lambda"), aws.client("sns")
    url, _ = new_queue(aws)
    role = iam.create_role(RoleName=f"fn-{suffix()}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    source = f'''
        import json, boto3
        def handler(event, context):
            boto3.client("sqs").send_message(QueueUrl="{url}", MessageBody=json.dumps(event))
            raise RuntimeError("the handler failed after reading")
    '''
    fn = lam.create_function(FunctionName=f"fn-{suffix()}", Runtime="python3.12", Role=role, Handler="app.handler",
                             Code={"ZipFile": _zip(source)}, Timeout=10)["FunctionArn"]
    topic = new_topic(aws)
    sub = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=fn)["SubscriptionArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=f"{fn}-missing")
    sns.publish(TopicArn=topic, Message="to the function", Subject="subj")
    record = json.loads(wait_received(aws, url, timeout=20)[0])["Records"][0]
    assert record["EventSource"] == "aws:sns" and record["EventSubscriptionArn"] == sub
    assert record["Sns"]["Message"] == "to the function" and record["Sns"]["Subject"] == "subj"
    assert {"SigningCertUrl", "UnsubscribeUrl", "Signature"} <= set(record["Sns"])
    wait_metric(aws, topic, "NumberOfNotificationsDelivered", 1)
    wait_metric(aws, topic, "NumberOfNotificationsFailed", 1)  # the missing function, not the failing one


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    """A loopback HTTP endpoint recording what SNS POSTs; answers `status`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.got, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/sns"
    yield server
    server.shutdown()
    server.server_close()


def posted(receiver, kind: str) -> list[dict]:
    return [body for headers, body in receiver.got if headers["x-amz-sns-message-type"] == kind]


def test_http_endpoint_confirms_from_the_posted_token_then_receives(aws, receiver):
    sns = aws.client("sns")
    topic = new_topic(aws)
    assert sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=receiver.url)["SubscriptionArn"] == \
        "pending confirmation"
    confirmation = wait_for(lambda: posted(receiver, "SubscriptionConfirmation"), timeout=5, interval=0.02,
                            describe="confirmation POST")[0]
    sns.publish(TopicArn=topic, Message="before confirming")
    arn = sns.confirm_subscription(TopicArn=topic, Token=confirmation["Token"])["SubscriptionArn"]
    assert attributes(aws, arn)["PendingConfirmation"] == "false"
    sns.publish(TopicArn=topic, Message="after confirming")
    got = wait_for(lambda: posted(receiver, "Notification"), timeout=5, interval=0.02, describe="notification")
    assert [n["Message"] for n in got] == ["after confirming"]
    headers = next(h for h, b in receiver.got if h["x-amz-sns-message-type"] == "Notification")
    assert headers["x-amz-sns-subscription-arn"] == arn and headers["x-amz-sns-topic-arn"] == topic
    wait_metric(aws, topic, "NumberOfNotificationsDelivered", 1)


def test_failing_http_endpoints_count_as_failed_and_never_fail_publish(aws, receiver):
    sns = aws.client("sns")
    topic = new_topic(aws)
    refused = "http://127.0.0.1:9/refused"  # the discard port: nothing listens there
    for url in (receiver.url, refused):
        sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=url)
    # The refused endpoint never got its confirmation; the harness confirms in-process with the token it knows.
    token = wait_for(lambda: posted(receiver, "SubscriptionConfirmation"), timeout=5, interval=0.02,
                     describe="confirmation")[0]["Token"]
    aws.plane.sns.confirm(topic, token)
    assert confirmations(aws, refused) == []
    lost = next(t for t, arn in aws.plane.sns._tokens.items() if arn.startswith(topic) and t != token)
    aws.plane.sns.confirm(topic, lost)
    receiver.status = 500
    sns.publish(TopicArn=topic, Message="nobody takes this")
    wait_metric(aws, topic, "NumberOfNotificationsFailed", 2)
    assert notifications(aws, receiver.url) == []


def test_non_loopback_http_is_never_contacted_but_kept_in_the_outbox(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    url = f"https://hooks.example.com/{suffix()}"
    arn = sns.subscribe(TopicArn=topic, Protocol="https", Endpoint=url, ReturnSubscriptionArn=True)["SubscriptionArn"]
    sns.confirm_subscription(TopicArn=topic, Token=confirmations(aws, url)[-1]["Token"])
    sns.publish(TopicArn=topic, Message="kept")
    assert [m["Message"] for m in notifications(aws, url)] == ["kept"]
    assert attributes(aws, arn)["PendingConfirmation"] == "false"
    wait_metric(aws, topic, "NumberOfNotificationsDelivered", 1)


def test_sms_goes_to_the_outbox(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    phone = "+15555550123"
    sns.subscribe(TopicArn=topic, Protocol="sms", Endpoint=phone)
    sns.publish(TopicArn=topic, Message="page")
    assert notifications(aws, phone)[-1]["Message"] == "page"


# -- confirmation -----------------------------------------------------------------------------------


def test_email_starts_pending_and_the_on_call_human_confirms_it(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    address = f"human-{suffix()}@example.com"
    assert sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address)["SubscriptionArn"] == \
        "pending confirmation"
    arn = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address,
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    listed = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["SubscriptionArn"] for s in listed] == ["PendingConfirmation"]
    assert any(s["Endpoint"] == address and s["SubscriptionArn"] == "PendingConfirmation"
               for s in sns.list_subscriptions()["Subscriptions"])
    assert attributes(aws, arn)["PendingConfirmation"] == "true"
    sent = confirmations(aws, address)
    assert len(sent) == 2, "Subscribe on a pending subscription re-sends the confirmation"
    assert sent[-1]["TopicArn"] == topic and "SubscribeURL" in sent[-1] and sent[-1]["Token"] != sent[0]["Token"]
    sns.publish(TopicArn=topic, Message="not for the unconfirmed")
    assert notifications(aws, address) == []
    with pytest.raises(ClientError) as err:
        sns.confirm_subscription(TopicArn=topic, Token="not-a-token")
    assert err.value.response["Error"]["Code"] == "InvalidParameter"
    assert sns.confirm_subscription(TopicArn=topic, Token=sent[0]["Token"])["SubscriptionArn"] == arn
    assert attributes(aws, arn)["PendingConfirmation"] == "false"
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"][0]["SubscriptionArn"] == arn
    sns.publish(TopicArn=topic, Message="now delivered")
    assert [m["Message"] for m in notifications(aws, address)] == ["now delivered"]


def test_visiting_the_subscribe_url_confirms_and_the_outbox_is_served_over_http(aws):
    topic = new_topic(aws)
    address = f"clicker-{suffix()}@example.com"
    arn = aws.client("sns").subscribe(TopicArn=topic, Protocol="email-json", Endpoint=address,
                                      ReturnSubscriptionArn=True)["SubscriptionArn"]
    view = f"{aws.endpoint_url}/_gameday/outbox?endpoint={urllib.request.quote(address)}"
    with urllib.request.urlopen(view) as response:
        served = json.loads(response.read())["messages"]
    assert served == aws.plane.sns.outbox(address) and served[0]["Type"] == "SubscriptionConfirmation"
    with urllib.request.urlopen(served[0]["SubscribeURL"]) as response:
        assert arn.encode() in response.read()
    assert attributes(aws, arn)["PendingConfirmation"] == "false"


def test_queue_and_function_subscriptions_of_the_account_are_confirmed_at_once(aws):
    sns = aws.client("sns")
    topic = new_topic(aws)
    _, queue_arn = new_queue(aws)
    own = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    fn = sns.subscribe(TopicArn=topic, Protocol="lambda",
                       Endpoint=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:f")["SubscriptionArn"]
    foreign = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:210987654321:theirs",
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
    assert attributes(aws, own)["PendingConfirmation"] == "false"
    assert attributes(aws, fn)["PendingConfirmation"] == "false"
    assert attributes(aws, foreign)["PendingConfirmation"] == "true"


# -- suspension and expiry on the plane's clock -----------------------------------------------------------


def test_more_than_ten_emails_in_one_aws_second_suspend_until_confirmed_again(aws, clock):
    sns = aws.client("sns")
    topic = new_topic(aws)
    address, arn = subscribe_confirmed_email(aws, topic)
    for i in range(12):
        sns.publish(TopicArn=topic, Message=f"storm {i}")  # the manual clock stands still: one AWS second
    assert len(notifications(aws, address)) == 10
    assert attributes(aws, arn)["PendingConfirmation"] == "true"
    assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"][0]["SubscriptionArn"] == \
        "PendingConfirmation"
    wait_metric(aws, topic, "NumberOfNotificationsFailed", 1)  # the 11th; the 12th found it pending
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address)  # re-sends the confirmation
    clock.at += 5
    assert sns.confirm_subscription(TopicArn=topic, Token=confirmations(aws, address)[-1]["Token"])[
        "SubscriptionArn"] == arn
    sns.publish(TopicArn=topic, Message="after the storm")
    assert notifications(aws, address)[-1]["Message"] == "after the storm"


def test_ten_emails_a_second_do_not_suspend(aws, clock):
    sns = aws.client("sns")
    topic = new_topic(aws)
    address, arn = subscribe_confirmed_email(aws, topic)
    for i in range(25):
        clock.at += 0.11  # at most ten in any one-second window
        sns.publish(TopicArn=topic, Message=f"steady {i}")
    assert len(notifications(aws, address)) == 25
    assert attributes(aws, arn)["PendingConfirmation"] == "false"


def test_unconfirmed_subscriptions_are_deleted_after_48_hours(aws, clock):
    sns = aws.client("sns")
    topic = new_topic(aws)
    address = f"ignored-{suffix()}@example.com"
    arn = sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=address,
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    _, suspended = subscribe_confirmed_email(aws, topic)

    def arns():
        return {s["Endpoint"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]}

    clock.at += 47 * HOUR
    aws.plane.sns.tick()
    assert address in arns()
    assert sns.confirm_subscription(TopicArn=topic, Token=confirmations(aws, address)[-1]["Token"])
    clock.at += 2 * HOUR
    aws.plane.sns.tick()
    assert address in arns(), "confirmed in time: kept"
    later = f"late-{suffix()}@example.com"
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint=later)
    clock.at += 48 * HOUR + 1
    assert wait_for(lambda: later not in arns() or None, timeout=2, interval=0.02, describe="expiry on the ticker")
    assert attributes(aws, arn)["PendingConfirmation"] == "false"
    with pytest.raises(ClientError):
        sns.confirm_subscription(TopicArn=topic, Token=confirmations(aws, later)[-1]["Token"])
    assert attributes(aws, suspended)["PendingConfirmation"] == "false"


# -- topic policy: explicit Deny for the calling principal -------------------------------------------


@pytest.fixture
def guarded(aws):
    """A topic whose policy denies DeleteTopic/Unsubscribe/SetTopicAttributes to all but a break-glass role,
    a subscription on it, and an SNS client acting as that role."""
    iam, sns = aws.client("iam"), aws.client("sns")
    role = iam.create_role(RoleName=f"break-glass-{suffix()}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    topic = new_topic(aws)
    _, queue_arn = new_queue(aws)
    sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)["SubscriptionArn"]
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "SNS:*", "Resource": topic},
            {"Sid": "BreakGlassOnly", "Effect": "Deny", "Principal": "*",
             "Action": ["sns:DeleteTopic", "sns:Unsubscribe", "sns:SetTopicAttributes"], "Resource": topic,
             "Condition": {"ArnNotEquals": {"aws:PrincipalArn": role}}},
            {"Sid": "UnknownKey", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": topic,
             "Condition": {"StringEquals": {"aws:RequestedRegion": REGION}}},
        ]}))
    creds = aws.client("sts").assume_role(RoleArn=role, RoleSessionName="oncall")["Credentials"]
    as_role = boto3.client("sns", endpoint_url=aws.endpoint_url, region_name=REGION,
                           aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"])
    return {"topic": topic, "sub": sub, "role": role, "as_role": as_role}


def refused(call, **params) -> dict:
    with pytest.raises(ClientError) as err:
        call(**params)
    return err.value.response


def test_denied_calls_are_refused_like_aws_and_change_nothing(aws, guarded):
    sns, topic = aws.client("sns"), guarded["topic"]
    user = f"arn:aws:iam::{ACCOUNT}:user/gameday-operator"
    response = refused(sns.delete_topic, TopicArn=topic)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert response["Error"]["Code"] == "AuthorizationError"
    assert response["Error"]["Message"] == (
        f"User: {user} is not authorized to perform: SNS:DeleteTopic on resource: {topic} "
        "with an explicit deny in a resource-based policy")
    assert "SNS:Unsubscribe" in refused(sns.unsubscribe, SubscriptionArn=guarded["sub"])["Error"]["Message"]
    refused(sns.set_topic_attributes, TopicArn=topic, AttributeName="DisplayName", AttributeValue="muted")
    attrs = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
    assert attrs["DisplayName"] == "" and "BreakGlassOnly" in attrs["Policy"]
    assert [s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]] == [
        guarded["sub"]]
    sns.publish(TopicArn=topic, Message="a Deny on an unknown key does not apply")


def test_the_exempted_role_may_delete(aws, guarded):
    guarded["as_role"].unsubscribe(SubscriptionArn=guarded["sub"])
    guarded["as_role"].delete_topic(TopicArn=guarded["topic"])
    with pytest.raises(ClientError) as err:
        aws.client("sns").get_topic_attributes(TopicArn=guarded["topic"])
    assert err.value.response["Error"]["Code"] == "NotFound"


def test_a_deny_naming_the_role_refuses_its_sessions_with_the_session_arn(aws, guarded):
    sns, topic = aws.client("sns"), guarded["topic"]
    policy = json.loads(sns.get_topic_attributes(TopicArn=topic)["Attributes"]["Policy"])
    policy["Statement"].append({"Effect": "Deny", "Principal": {"AWS": guarded["role"]}, "Action": "sns:Publish",
                                "Resource": "*"})
    guarded["as_role"].set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(policy))
    message = refused(guarded["as_role"].publish, TopicArn=topic, Message="m")["Error"]["Message"]
    assert message.startswith(f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{guarded['role'].split('/')[-1]}/oncall ")
    sns.publish(TopicArn=topic, Message="the operator is not named")


def test_refused_calls_are_recorded_by_cloudtrail(aws, guarded):
    refused(aws.client("sns").delete_topic, TopicArn=guarded["topic"])
    aws.plane.drain()
    events = aws.client("cloudtrail").lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "DeleteTopic"}])["Events"]
    records = [json.loads(e["CloudTrailEvent"]) for e in events]
    record = next(r for r in records if (r["requestParameters"] or {}).get("topicArn") == guarded["topic"])
    assert record["errorCode"] == "AuthorizationError"
    assert "explicit deny in a resource-based policy" in record["errorMessage"]
    assert record["userIdentity"]["userName"] == "gameday-operator"


# -- KMS-encrypted topics ---------------------------------------------------------------------------


def key_policy(*services: str) -> str:
    statements = [{"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                   "Action": "kms:*", "Resource": "*"}]
    statements += [{"Sid": f"Allow{i}", "Effect": "Allow", "Principal": {"Service": service},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"}
                   for i, service in enumerate(services)]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def encrypted_topic_with_inbox(aws, key_id: str) -> tuple[str, str]:
    topic = new_topic(aws, KmsMasterKeyId=key_id)
    url, arn = new_queue(aws)
    aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, url


def breach(aws, topic: str) -> str:
    """An alarm on a fresh metric with the topic as its action, breached; returns the alarm's name."""
    name = f"alarm-{suffix()}"
    cw = aws.client("cloudwatch")
    cw.put_metric_alarm(AlarmName=name, MetricName=name, Namespace="GamedayTest", Statistic="Sum", Period=300,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                        TreatMissingData="notBreaching", AlarmActions=[topic])
    cw.put_metric_data(Namespace="GamedayTest", MetricData=[{"MetricName": name, "Value": 5.0}])
    return name


def action_items(aws, alarm: str) -> list[dict]:
    return aws.client("cloudwatch").describe_alarm_history(AlarmName=alarm, HistoryItemType="Action")[
        "AlarmHistoryItems"]


def test_alarm_action_on_a_key_without_the_cloudwatch_grant_fails_with_aws_text(aws):
    sqs, events = aws.client("sqs"), aws.client("events")
    key = aws.client("kms").create_key(Policy=key_policy())["KeyMetadata"]["KeyId"]
    topic, inbox = encrypted_topic_with_inbox(aws, key)
    changes, changes_arn = new_queue(aws)
    rule = f"changes-{suffix()}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["aws.cloudwatch"],
                                                        "detail-type": ["CloudWatch Alarm State Change"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": changes_arn}])
    alarm = breach(aws, topic)
    items = wait_for(lambda: action_items(aws, alarm), timeout=5, interval=0.02, describe="action history")
    assert re.fullmatch(
        rf'Failed to execute action {re.escape(topic)}\. Received error: "null \(Service: AWSKMS; Status Code: 400; '
        r'Error Code: AccessDeniedException; Request ID: [0-9a-f-]{36}; Proxy: null\)"', items[0]["HistorySummary"])
    assert json.loads(items[0]["HistoryData"])["actionState"] == "Failed"
    history = aws.client("cloudwatch").describe_alarm_history(AlarmName=alarm, HistoryItemType="StateUpdate")
    assert any(i["HistorySummary"].endswith("to ALARM") for i in history["AlarmHistoryItems"])
    assert any(json.loads(b)["detail"]["alarmName"] == alarm for b in wait_received(aws, changes))
    aws.plane.drain()
    assert received(aws, inbox) == []
    sqs.delete_queue(QueueUrl=changes)
    events.remove_targets(Rule=rule, Ids=["q"])


def test_alarm_action_with_the_grant_is_delivered_whatever_names_the_key(aws):
    kms = aws.client("kms")
    key = kms.create_key(Policy=key_policy("cloudwatch.amazonaws.com"))["KeyMetadata"]
    alias = f"alias/topic-{suffix()}"
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    for key_id in (key["KeyId"], key["Arn"], alias, f"arn:aws:kms:{REGION}:{ACCOUNT}:{alias}"):
        topic, inbox = encrypted_topic_with_inbox(aws, key_id)
        alarm = breach(aws, topic)
        assert json.loads(json.loads(wait_received(aws, inbox)[0])["Message"])["AlarmName"] == alarm
        assert action_items(aws, alarm)[0]["HistorySummary"] == f"Successfully executed action {topic}"


def test_alarm_action_on_the_aws_managed_key_is_never_allowed(aws):
    topic, inbox = encrypted_topic_with_inbox(aws, "alias/aws/sns")
    alarm = breach(aws, topic)
    items = wait_for(lambda: action_items(aws, alarm), timeout=5, interval=0.02, describe="action history")
    assert items[0]["HistorySummary"] == (f'Failed to execute action {topic}. Received error: "CloudWatch Alarms '
                                          'does not have authorization to access the SNS topic encryption key."')
    assert received(aws, inbox) == []


def test_alarm_action_on_a_disabled_key_fails(aws):
    kms = aws.client("kms")
    key = kms.create_key(Policy=key_policy("cloudwatch.amazonaws.com"))["KeyMetadata"]["KeyId"]
    kms.disable_key(KeyId=key)
    topic, _ = encrypted_topic_with_inbox(aws, key)
    alarm = breach(aws, topic)
    items = wait_for(lambda: action_items(aws, alarm), timeout=5, interval=0.02, describe="action history")
    assert "Error Code: DisabledException" in items[0]["HistorySummary"]


def put_custom_event(aws, source: str) -> None:
    aws.client("events").put_events(Entries=[{"Source": source, "DetailType": "d", "Detail": "{}"}])


def test_eventbridge_to_an_encrypted_topic_needs_the_events_grant(aws):
    events, kms = aws.client("events"), aws.client("kms")
    for services, ok in (((), False), (("events.amazonaws.com",), True)):
        topic, inbox = encrypted_topic_with_inbox(aws, kms.create_key(Policy=key_policy(*services))["KeyMetadata"][
            "KeyId"])
        rule, source = f"to-topic-{suffix()}", f"custom.{suffix()}"
        events.put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
        events.put_targets(Rule=rule, Targets=[{"Id": "t", "Arn": topic}])
        put_custom_event(aws, source)
        aws.plane.drain()
        delivery = next(d for d in aws.plane.bus.deliveries if d.rule == rule)
        assert delivery.ok is ok
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"
        wait_metric(aws, rule_arn, "Invocations", 1, namespace="AWS/Events", dimension="RuleName")
        if ok:
            assert json.loads(json.loads(wait_received(aws, inbox)[0])["Message"])["source"] == source
            assert metric(aws, rule_arn, "FailedInvocations", namespace="AWS/Events", dimension="RuleName") == 0
        else:
            assert "AccessDeniedException" in delivery.error
            wait_metric(aws, rule_arn, "FailedInvocations", 1, namespace="AWS/Events", dimension="RuleName")
            assert received(aws, inbox) == []


def test_api_publish_by_an_iam_principal_is_not_checked_against_the_key(aws):
    topic, inbox = encrypted_topic_with_inbox(aws, "alias/aws/sns")
    aws.client("sns").publish(TopicArn=topic, Message="by the operator")
    assert json.loads(wait_received(aws, inbox)[0])["Message"] == "by the operator"


# -- SetAlarmState ----------------------------------------------------------------------------------


def test_set_alarm_state_runs_the_transition_like_aws(aws):
    cw, sns = aws.client("cloudwatch"), aws.client("sns")
    topic = new_topic(aws)
    inbox, arn = new_queue(aws)
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    name = f"pager-test-{suffix()}"
    cw.put_metric_alarm(AlarmName=name, MetricName=name, Namespace="GamedayTest", Statistic="Sum", Period=300,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                        TreatMissingData="notBreaching", AlarmActions=[topic])

    def state():
        return cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]

    assert wait_for(lambda: state() == "OK" or None, timeout=5, interval=0.02, describe="OK")
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing the pager")
    message = json.loads(json.loads(wait_received(aws, inbox)[0])["Message"])
    assert (message["AlarmName"], message["OldStateValue"], message["NewStateValue"]) == (name, "OK", "ALARM")
    assert message["NewStateReason"] == "testing the pager"
    updates = cw.describe_alarm_history(AlarmName=name, HistoryItemType="StateUpdate")["AlarmHistoryItems"]
    update = next(u for u in updates if u["HistorySummary"] == "Alarm updated from OK to ALARM")
    assert json.loads(update["HistoryData"])["newState"]["stateReason"] == "testing the pager"
    # The next evaluation of a period without data puts it back, as on AWS.
    assert wait_for(lambda: state() == "OK" or None, timeout=5, interval=0.05, describe="back to OK")


def test_set_alarm_state_to_the_current_state_runs_nothing(aws):
    cw = aws.client("cloudwatch")
    topic = new_topic(aws)
    inbox, arn = new_queue(aws)
    aws.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    name = f"quiet-{suffix()}"
    cw.put_metric_alarm(AlarmName=name, MetricName=name, Namespace="GamedayTest", Statistic="Sum", Period=300,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanOrEqualToThreshold",
                        TreatMissingData="notBreaching", OKActions=[topic])
    assert wait_for(lambda: received(aws, inbox) or None, timeout=5, interval=0.02, describe="initial OK action")
    cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="already OK")
    aws.plane.drain()
    assert received(aws, inbox) == []


# -- scheduled rules ---------------------------------------------------------------------------------


def test_rate_rules_fire_on_the_plane_clock_and_disabled_ones_do_not(aws):
    events = aws.client("events")
    (fired, fired_arn), (quiet, quiet_arn) = new_queue(aws), new_queue(aws)
    rule, off = f"every-minute-{suffix()}", f"disabled-{suffix()}"
    created = aws.plane.clock.now()
    rule_arn = events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)")["RuleArn"]
    events.put_rule(Name=off, ScheduleExpression="rate(1 minute)", State="DISABLED")
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": fired_arn}])
    events.put_targets(Rule=off, Targets=[{"Id": "q", "Arn": quiet_arn}])
    first = json.loads(wait_received(aws, fired)[0])
    assert (first["source"], first["detail-type"], first["resources"], first["detail"]) == (
        "aws.events", "Scheduled Event", [rule_arn], {})
    fired_at = datetime.strptime(first["time"], "%Y-%m-%dT%H:%M:%SZ").timestamp()
    assert fired_at >= int(created) + 60 - 1, "the first run is one interval after creation (AWS time)"
    assert wait_for(lambda: received(aws, fired) or None, timeout=5, interval=0.02, describe="a later run")
    assert received(aws, quiet) == []
    events.disable_rule(Name=rule)


def test_cron_rules_are_reported_once_as_not_emulated(aws):
    rule = f"cron-{suffix()}"
    aws.client("events").put_rule(Name=rule, ScheduleExpression="cron(0 12 * * ? *)")

    def notes():
        return [f for f in aws.plane.failures if f.startswith(f"rule {rule}:")]

    assert wait_for(notes, timeout=5, interval=0.05, describe="cron note")
    for _ in range(3):  # later ticks do not repeat it
        assert aws.plane.schedules.due([(ACCOUNT, REGION)]) is not None
    assert notes() == [f"rule {rule}: cron schedules are not emulated (cron(0 12 * * ? *))"]
    aws.client("events").delete_rule(Name=rule)


def test_a_schedule_only_rule_ignores_events(aws):
    events = aws.client("events")
    url, arn = new_queue(aws)
    rule, source = f"hourly-{suffix()}", f"custom.{suffix()}"
    events.put_rule(Name=rule, ScheduleExpression="rate(1 day)")
    events.put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": arn}])
    put_custom_event(aws, source)
    aws.plane.drain()
    assert received(aws, url) == []


def test_at_a_fast_time_scale_the_rate_window_lasts_a_quarter_wall_second(aws, clock):
    """At 60x an AWS second is 17 ms of wall time: too short for any client's storm, so the window has a floor."""
    clock.time_scale = 60.0  # 0.25 wall seconds are 15 AWS seconds
    sns = aws.client("sns")
    topic = new_topic(aws)
    address, arn = subscribe_confirmed_email(aws, topic)
    for i in range(11):
        clock.at += 1.2  # more than one AWS second apart, all within 15
        sns.publish(TopicArn=topic, Message=f"storm {i}")
    assert wait_for(lambda: attributes(aws, arn)["PendingConfirmation"] == "true" or None, timeout=5,
                    interval=0.02, describe="suspended")
