"""The sink the harness reads: an SQS queue subscribed to the security topic (the stand-in inbox)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Notification:
    message_id: str
    sent_at: float  # epoch seconds, from SQS's own SentTimestamp
    subject: str | None
    payload: Any  # the SNS Message, JSON-decoded when it is JSON
    raw: str

    def matches(self, matching: dict[str, Any]) -> bool:
        """Every key/value found in the payload: dotted keys are paths, plain keys match at any depth."""
        return all(_has(self.payload, key, want) for key, want in matching.items())


class Sink:
    """Reads and deletes the queue's messages, keeping what it saw for the report."""

    def __init__(self, sqs: Any, queue_url: str):
        self.sqs = sqs
        self.queue_url = queue_url
        self.seen: list[Notification] = []

    def receive(self) -> list[Notification]:
        resp = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=0, AttributeNames=["SentTimestamp"])
        batch = [_parse(m) for m in resp.get("Messages", [])]
        if resp.get("Messages"):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(resp["Messages"])])
        self.seen.extend(batch)
        return batch

    def drain(self) -> int:
        """Empty the queue so older notifications cannot be mistaken for this run's."""
        count = 0
        while batch := self.receive():
            count += len(batch)
        return count


def _parse(message: dict) -> Notification:
    raw = message["Body"]
    subject = None
    payload: Any = raw
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
            subject = body.get("Subject")
            inner = body["Message"]
            try:
                payload = json.loads(inner)
            except ValueError:
                payload = inner
        else:
            payload = body
    except ValueError:
        pass
    return Notification(message_id=message["MessageId"], sent_at=int(message["Attributes"]["SentTimestamp"]) / 1000,
                        subject=subject, payload=payload, raw=raw)


def _has(node: Any, key: str, want: Any) -> bool:
    if "." in key:
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        # A list holds the value when any element is it (DeleteAlarms names its alarms in a list).
        return node == want or isinstance(node, list) and not isinstance(want, list) and want in node
    if isinstance(node, dict):
        if node.get(key, _MISSING) == want:
            return True
        return any(_has(v, key, want) for v in node.values())
    if isinstance(node, list):
        return any(_has(v, key, want) for v in node)
    return False


_MISSING = object()
