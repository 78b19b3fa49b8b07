"""The on-call mailbox as the harness reads it: what SNS sent to an e-mail endpoint (where a backend can show it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable


class Mailbox:
    """Reads an endpoint's messages and confirms a subscription the way its owner would, by the token sent."""

    def __init__(self, read: Callable[[str], list[dict]], sns: Callable[[], Any]):
        self._read = read
        self._sns = sns

    def confirmation(self, endpoint: str, topic: str, *, since: float = 0.0) -> dict | None:
        """The newest SubscriptionConfirmation for `topic` sent to `endpoint` at or after `since` (epoch seconds)."""
        for message in reversed(self._read(endpoint)):
            if message.get("Type") == "SubscriptionConfirmation" and message.get("TopicArn") == topic \
                    and _epoch(message.get("Timestamp", "")) >= since:
                return message
        return None

    def confirm_latest(self, topic: str, endpoint: str, *, since: float = 0.0) -> bool:
        """Confirm with the newest confirmation sent; False when none was sent."""
        found = self.confirmation(endpoint, topic, since=since)
        if found is None:
            return False
        self._sns().confirm_subscription(TopicArn=topic, Token=found["Token"])
        return True


def _epoch(stamp: str) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
