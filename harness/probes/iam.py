"""Probes of IAM account hygiene: the root user's MFA and access key age."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from harness.probes import Probe

__all__ = ["root_mfa_enabled", "keys_rotated"]


def root_mfa_enabled() -> Probe:
    """The root user has an MFA device (GetAccountSummary's AccountMFAEnabled)."""

    def check(aws: Any) -> tuple[bool, str]:
        on = aws.client("iam").get_account_summary()["SummaryMap"].get("AccountMFAEnabled") == 1
        return on, f"root user MFA {'enabled' if on else 'not enabled'}"

    return Probe("the root user has MFA", check, ("iam:GetAccountSummary",))


def keys_rotated(user: str, max_age_days: int) -> Probe:
    """The user (if it exists) has no active access key older than max_age_days."""

    def check(aws: Any) -> tuple[bool, str]:
        try:
            keys = aws.client("iam").list_access_keys(UserName=user)["AccessKeyMetadata"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchEntity":
                return True, f"user {user} does not exist"
            raise
        now = datetime.now(timezone.utc)
        old = [f"{k['AccessKeyId']} ({(now - k['CreateDate']).days} days)" for k in keys
               if k.get("Status") == "Active" and (now - k["CreateDate"]).days > max_age_days]
        if old:
            return False, f"user {user} has access keys older than {max_age_days} days: {', '.join(old)}"
        return True, f"user {user} has no active access key older than {max_age_days} days"

    return Probe(f"user {user}'s access keys are rotated within {max_age_days} days", check, ("iam:ListAccessKeys",))
