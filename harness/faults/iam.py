"""Faults on IAM account hygiene: an access key never rotated, the root user without MFA."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import iam as probes

__all__ = ["stale_access_key", "root_mfa_off"]

MAX_ACCESS_KEY_AGE = 90  # days: ACCESS_KEYS_ROTATED's default maxAccessKeyAge, and CIS 1.14's


def _user() -> str:
    return f"gameday-stale-key-{uuid.uuid4().hex[:8]}"


def _facts(aws: Any) -> Any:
    """The backend's way to set what no AWS API can (only an emulated account has one)."""
    facts = getattr(aws, "account_facts", None)
    if facts is None:
        raise LookupError(f"backend {aws.name} cannot set account facts no API can")
    return facts


@dataclass(frozen=True)
class StaleAccessKey(Fault):
    """A user whose active access key was created longer ago than the rotation limit."""

    days: int = MAX_ACCESS_KEY_AGE + 30
    max_age_days: int = MAX_ACCESS_KEY_AGE
    user: str = field(default_factory=_user)
    name = "iam.stale_access_key"
    iam_actions = ("iam:CreateUser", "iam:CreateAccessKey", "iam:ListAccessKeys", "iam:DeleteAccessKey",
                   "iam:DeleteUser")

    def describe(self) -> str:
        return f"user {self.user} with an access key {self.days} days old (limit {self.max_age_days})"

    def steady(self) -> Probe:
        return probes.keys_rotated(self.user, self.max_age_days)

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        iam = aws.client("iam")
        iam.create_user(UserName=self.user, Tags=[{"Key": "gameday-fault", "Value": self.name}])
        key = iam.create_access_key(UserName=self.user)["AccessKey"]["AccessKeyId"]
        _facts(aws).age_access_key(self.user, key, self.days)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Delete the user and its keys (the user is the fault's own)."""
        iam = aws.client("iam")
        try:
            for key in iam.list_access_keys(UserName=self.user)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=self.user, AccessKeyId=key["AccessKeyId"])
            iam.delete_user(UserName=self.user)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "NoSuchEntity":
                raise


@dataclass(frozen=True)
class RootMfaOff(Fault):
    """The root user loses its MFA device (a fact only the account's owner can change)."""

    name = "iam.root_mfa_off"
    iam_actions = ("iam:GetAccountSummary",)

    def describe(self) -> str:
        return "root user MFA switched off"

    def steady(self) -> Probe:
        return probes.root_mfa_enabled()

    def snapshot(self, aws: Any) -> dict | None:
        return {"enabled": probes.root_mfa_enabled()(aws)[0]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        _facts(aws).set_root_mfa(False)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        if probes.root_mfa_enabled()(aws)[0] != snapshot["enabled"]:
            _facts(aws).set_root_mfa(snapshot["enabled"])


def stale_access_key(days: int = MAX_ACCESS_KEY_AGE + 30, *, max_age_days: int = MAX_ACCESS_KEY_AGE) -> StaleAccessKey:
    """A new user with an access key `days` old, past the `max_age_days` rotation limit."""
    return StaleAccessKey(days=days, max_age_days=max_age_days)


root_mfa_off = RootMfaOff
