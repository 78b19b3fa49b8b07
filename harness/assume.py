"""Clients acting as another IAM role (the stack's break-glass role), built like the caller's own clients."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import boto3

ClientFactory = Callable[[str], Any]


def assumed(client: ClientFactory, role_arn: str, session_name: str) -> ClientFactory:
    """A client factory with `role_arn`'s temporary credentials, same endpoint, region and config as `client`'s."""
    credentials = client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]

    @functools.cache
    def make(service: str) -> Any:
        base = client(service)  # its endpoint is the backend's: embedded, LocalStack or AWS's own for that service
        return boto3.client(service, region_name=base.meta.region_name, endpoint_url=base.meta.endpoint_url,
                            config=base.meta.config, aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"])

    return make
