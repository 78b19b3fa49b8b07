"""Where to trace: a fresh embedded endpoint with the reference stack, or a running one, or another backend."""

from __future__ import annotations

import contextlib
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from botocore.exceptions import BotoCoreError, ClientError

from harness.errors import ConfigError, EndpointUnreachable
from harness.stack.desired import StackOutputs, desired_state


@contextlib.contextmanager
def open_target(settings: Any) -> Iterator[tuple[Any, StackOutputs]]:
    """The backend and stack to trace: a fresh embedded endpoint with the reference stack, or an existing one."""
    if settings.backend == "embedded" and not settings.endpoint:
        from harness.session import start_session

        session = start_session(settings, warm=False)  # a trace never invokes the stack's functions
        try:
            yield session.backend, session.stack
        finally:
            session.close()
        return
    aws = _attach(settings)
    try:
        yield aws, _stack_of(aws, settings)
    finally:
        aws.stop()


def _attach(settings: Any) -> Any:
    from harness import backends
    from harness.backends.embedded import AttachedEmbedded

    unreachable = EndpointUnreachable(f"cannot reach {settings.endpoint or settings.backend}",
                                      "start it (`gameday up`) or fix --endpoint")
    if settings.backend == "embedded":
        if not _serving(settings.endpoint):  # at once, not after botocore's retries
            raise unreachable
        aws = AttachedEmbedded(settings, settings.endpoint.rstrip("/"))
    else:
        aws = backends.create(settings)
    try:
        aws.start()
    except (BotoCoreError, ClientError) as exc:
        raise EndpointUnreachable(f"{unreachable.problem} ({exc})", unreachable.fix) from None
    return aws


def _serving(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/_gameday/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stack_of(aws: Any, settings: Any) -> StackOutputs:
    """The stack file's outputs, or the reference stack's for the configured prefix (with the real sink URL)."""
    if settings.stack_file:
        try:
            return StackOutputs.from_json(Path(settings.stack_file).read_text())
        except ValueError as exc:
            raise ConfigError(f"stack file {settings.stack_file}: {exc}", "fix it (the shape `gameday up` prints)") \
                from None
    desired = desired_state(account_id=aws.account_id, region=aws.region, prefix=settings.stack_prefix)
    try:
        url = aws.client("sqs").get_queue_url(QueueName=desired.names.queue)["QueueUrl"]
    except ClientError:  # a missing sink is a hop to report, not a reason not to trace
        url = desired.queue.url
    return replace(desired.outputs(), sink_queue_url=url)
