"""A LocalStack the user runs: reached through localstack-client's endpoint resolution, never its patching."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from localstack_client.session import Session

from harness.backends.base import Backend, Capability
from harness.errors import EndpointUnreachable

# Community LocalStack: no CloudTrail, no Lambda without Docker, no Config evaluation, no GuardDuty (DESIGN.md),
# so these scenarios skip.
_SERVICE_CAPABILITIES = {
    "sns": Capability.SNS_TO_SQS,
    "events": Capability.EVENTBRIDGE_TARGETS,
    "logs": Capability.METRIC_FILTERS,
    "cloudwatch": Capability.ALARMS,
    "cloudfront": Capability.CLOUDFRONT,  # a Pro service: the community edition's health does not list it
}


class LocalStackBackend(Backend):
    name = "localstack"

    def start(self) -> None:
        url = (self.settings.endpoint or "").rstrip("/")
        services = self._probe(url)
        self.endpoint_url = url
        self.capabilities = frozenset(cap for svc, cap in _SERVICE_CAPABILITIES.items()
                                      if services.get(svc) in ("available", "running"))
        host = url.split("://", 1)[-1]
        self._session = Session(localstack_host=host, region_name=self.region)  # type: ignore[assignment]
        self.account_id = self.client("sts").get_caller_identity()["Account"]

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(service)  # type: ignore[union-attr]
            return self._clients[service]

    @staticmethod
    def _probe(url: str) -> dict:
        try:
            with urllib.request.urlopen(f"{url}/_localstack/health", timeout=3) as resp:
                return json.load(resp).get("services", {})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise EndpointUnreachable(
                f"LocalStack at {url} is unreachable ({getattr(exc, 'reason', exc)}); start it or fix --gameday-endpoint"
            ) from None
