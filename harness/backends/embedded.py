"""The default backend: moto's server on 127.0.0.1 plus the monitoring plane, in this process."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

import boto3

from harness.backends.base import Backend, Capability
from harness.errors import HarnessBroken
from harness.mailbox import Mailbox

OPERATOR = "gameday-operator"
_PROFILE_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")


class EmbeddedBackend(Backend):
    name = "embedded"
    capabilities = frozenset(Capability)

    def __init__(self, settings, *, port: int = 0, warm: bool = True):
        # moto loads here, not at import: attaching to a running endpoint (AttachedEmbedded) does without it.
        from harness.emulator.server import EmbeddedServer

        super().__init__(settings)
        self.warm = warm
        self.server = EmbeddedServer(port=port, time_scale=self.time_scale, latency_profile=self.latency_profile,
                                     prewarm=warm)

    def start(self) -> None:
        from harness.emulator import motoadapter

        for name in _PROFILE_VARIABLES:
            # moto's services build boto3 sessions in this process; the user's profile is not this account's.
            os.environ.pop(name, None)
        shared = motoadapter.share_loaders()  # after the profile variables are gone: moto's session reads them
        motoadapter.serve_aws_managed_policies_on_demand()  # the stack attaches AWS_ConfigRole
        self.endpoint_url = self.server.start()
        self.account_id = motoadapter.account_for_access_key(None)
        # The harness acts as a real IAM user, so its calls carry a real userIdentity in the records.
        credentials = motoadapter.create_operator_user(self.account_id, OPERATOR)
        self._session = boto3.Session(region_name=self.region, botocore_session=shared, **credentials)

    def stop(self) -> None:
        super().stop()
        self.server.stop()

    @property
    def plane(self):
        return self.server.plane

    @property
    def mailbox(self) -> Mailbox:
        """The plane keeps what SNS sends to e-mail endpoints: the harness can act as their owner."""
        return Mailbox(self.plane.sns.outbox, lambda: self.client("sns"))

    @property
    def account_facts(self) -> AccountFacts:
        """Facts no AWS API can set (root MFA, an access key's age), through the endpoint's hooks."""
        return AccountFacts(self.endpoint_url or "", self.account_id)

    @property
    def detections(self) -> Detections:
        """GuardDuty and Inspector findings about a chosen instance, as if the services had detected them."""
        return Detections(self.endpoint_url or "", self.account_id, self.region)

    def settle(self, timeout: float = 30.0) -> None:
        """After a deploy: records delivered and functions warm, so the first scenario pays no cold start."""
        self.plane.drain(timeout)
        if self.warm and self.plane.runtime is not None:
            self.plane.runtime.wait_warm(timeout)


class AttachedEmbedded(Backend):
    """An embedded endpoint another process serves (`gameday up`, or a run `gameday cleanup` is undoing)."""

    name = "embedded"
    capabilities = frozenset(Capability)

    def __init__(self, settings, endpoint_url: str):
        super().__init__(settings)
        self.endpoint_url = endpoint_url

    def start(self) -> None:
        self._session = boto3.Session(region_name=self.region, aws_access_key_id="gameday",
                                      aws_secret_access_key="gameday")
        self.account_id = self.client("sts").get_caller_identity()["Account"]

    @property
    def mailbox(self) -> Mailbox:
        return Mailbox(self._outbox, lambda: self.client("sns"))

    @property
    def account_facts(self) -> AccountFacts:
        return AccountFacts(self.endpoint_url or "", self.account_id)

    @property
    def detections(self) -> Detections:
        return Detections(self.endpoint_url or "", self.account_id, self.region)

    def _outbox(self, endpoint: str) -> list[dict]:
        url = f"{self.endpoint_url}/_gameday/outbox?endpoint={urllib.parse.quote(endpoint, safe='')}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp).get("messages", [])


class AccountFacts:
    """Sets what only the account's owner could (root MFA, an access key's age) on an embedded endpoint."""

    def __init__(self, endpoint_url: str, account_id: str):
        self.endpoint_url = endpoint_url
        self.account_id = account_id

    def set_root_mfa(self, enabled: bool) -> None:
        self._post("root-mfa", enabled="1" if enabled else "0")

    def age_access_key(self, user: str, key: str, days: int) -> None:
        """Make the key look created `days` days ago."""
        self._post("age-access-key", user=user, key=key, days=str(days))

    def _post(self, hook: str, **params: str) -> None:
        query = urllib.parse.urlencode({"account": self.account_id, **params})
        request = urllib.request.Request(f"{self.endpoint_url}/_gameday/{hook}?{query}", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            raise HarnessBroken(f"the endpoint refused /_gameday/{hook}: {exc.code} {exc.read()[:200]!r}") from None


class Detections:
    """Makes GuardDuty or Inspector report a finding about a chosen instance on an embedded endpoint (its hooks)."""

    def __init__(self, endpoint_url: str, account_id: str, region: str):
        self.endpoint_url = endpoint_url
        self.account_id = account_id
        self.region = region

    def guardduty(self, finding_type: str, instance_id: str) -> dict | None:
        """The finding GuardDuty raised; None when no detector is enabled."""
        return self._post("guardduty-finding", type=finding_type, instance=instance_id)

    def inspector(self, instance_id: str, *, cve: str, severity: str, package: str, version: str) -> dict | None:
        """The package-vulnerability finding Inspector raised; None when it does not scan EC2."""
        return self._post("inspector-finding", instance=instance_id, cve=cve, severity=severity, package=package,
                          version=version)

    def _post(self, hook: str, **params: str) -> dict | None:
        query = urllib.parse.urlencode({"account": self.account_id, "region": self.region, **params})
        request = urllib.request.Request(f"{self.endpoint_url}/_gameday/{hook}?{query}", data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return json.load(resp).get("finding")
        except urllib.error.HTTPError as exc:
            raise HarnessBroken(f"the endpoint refused /_gameday/{hook}: {exc.code} {exc.read()[:200]!r}") from None
