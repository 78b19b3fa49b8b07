"""A real sandbox account: boto3's standard credential chain, and only allowlisted account ids."""

from __future__ import annotations

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from harness.backends.base import Backend, Capability
from harness.errors import AccountNotAllowed, EndpointUnreachable


class AwsBackend(Backend):
    name = "aws"
    # Nobody reads the on-call mailbox for us, no API ages a key or switches the root user's MFA, and no API makes
    # Inspector report a chosen instance (docs/aws-backend-part5.md).
    capabilities = frozenset(Capability) - {Capability.MAILBOX, Capability.ACCOUNT_FACTS, Capability.ROOT_MFA,
                                            Capability.INSPECTOR_ON_DEMAND}

    def start(self) -> None:
        self._session = boto3.Session(profile_name=self.settings.profile, region_name=self.region)
        # AWS_ENDPOINT_URL is honoured by boto3 itself; None keeps the standard resolution.
        try:
            identity = self.client("sts").get_caller_identity()
        except (BotoCoreError, ClientError) as exc:
            raise EndpointUnreachable(f"cannot identify the AWS account ({exc}); check your credentials/profile") from None
        account = identity["Account"]
        if account not in self.settings.allowed_accounts:
            self._clients.clear()
            raise AccountNotAllowed(
                f"account {account} ({identity['Arn']}) is not allowlisted; add it to allowed_accounts "
                f"only if it is a sandbox (allowed: {', '.join(self.settings.allowed_accounts)})")
        self.account_id = account
