"""The interface every backend offers, and the capabilities a scenario can require."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from harness.config import Settings
from harness.scenario import Capability


_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=30,
    s3={"addressing_style": "path"},
)


class Backend:
    """A place scenarios run: boto3 clients for it, its account, region, clock scale and capabilities."""

    name = "abstract"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, settings: Settings):
        self.settings = settings
        self.region = settings.region
        self.time_scale = settings.effective_time_scale
        self.latency_profile = settings.latency_profile
        self.account_id = ""
        self.endpoint_url: str | None = None
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._clients.clear()

    def client(self, service: str) -> Any:
        """A cached boto3 client (clients are thread-safe and costly to build)."""
        with self._lock:
            if service not in self._clients:
                assert self._session is not None, "start() the backend first"
                self._clients[service] = self._session.client(
                    service, endpoint_url=self.endpoint_url, config=_CLIENT_CONFIG)
            return self._clients[service]

    def missing(self, required: frozenset[Capability] | set[Capability]) -> list[Capability]:
        return [c for c in required if c not in self.capabilities]

    def describe(self) -> dict:
        """Enough to reach this backend again from another process (journal, reports)."""
        return {"name": self.name, "endpoint": self.endpoint_url, "region": self.region,
                "account": self.account_id, "profile": self.settings.profile,
                "time_scale": self.time_scale, "latency_profile": self.latency_profile}
