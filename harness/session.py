"""A game-day session: a started backend, the stack under test, the journal; shared by pytest and the CLI."""

from __future__ import annotations

import gc
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness import backends
from harness.config import Settings
from harness.errors import HarnessBroken
from harness.journal import Journal, default_journal_path
from harness.stack.deploy import deploy
from harness.stack.desired import StackOutputs, desired_state


@dataclass
class Session:
    settings: Settings
    backend: Any
    stack: StackOutputs
    journal: Journal
    run_id: str
    deployed: bool

    def close(self) -> None:
        try:
            if self.deployed and self.settings.sabotage and self.backend.name != "embedded":
                # A sabotaged deploy on a real account must not outlive the negative-control run.
                deploy(self.backend.client, desired_state(account_id=self.backend.account_id,
                                                          region=self.backend.region,
                                                          prefix=self.settings.stack_prefix))
        finally:
            self.backend.stop()


def _confirm_oncall(backend: Any, stack: StackOutputs) -> None:
    """Where the harness can read the on-call mailbox (embedded), it confirms the subscription as its owner would."""
    mailbox = getattr(backend, "mailbox", None)
    if mailbox is None or not stack.oncall_email:
        return
    from harness.probes.sns import subscription

    found = subscription(backend, stack.topic_arn, "email", stack.oncall_email)
    if found is not None and found["SubscriptionArn"] == "PendingConfirmation":
        mailbox.confirm_latest(stack.topic_arn, stack.oncall_email)


def start_session(settings: Settings, *, port: int = 0, warm: bool = True) -> Session:
    """Start the backend and deploy (or load) the stack; GamedayError on bad input, nothing changed."""
    with _long_lived_start():
        return _start(settings, port=port, warm=warm)


@contextmanager
def _long_lived_start() -> Iterator[None]:
    """No cyclic GC while moto and the stack load; then what they built is frozen out of later collections.

    It lives as long as the process (moto's backends, botocore's models): every full collection rescanned it,
    about half a second each, several times during start-up and five more times at pytest's exit.
    """
    enabled = gc.isenabled()
    gc.unfreeze()  # an earlier session's objects can be collected again (a process may start several)
    gc.disable()
    try:
        yield
    finally:
        gc.collect()  # start-up's own garbage goes now rather than being frozen with the rest
        gc.freeze()
        if enabled:
            gc.enable()


def _start(settings: Settings, *, port: int, warm: bool) -> Session:
    backend = backends.create(settings, port=port, warm=warm)
    backend.start()
    try:
        journal = Journal(Path(settings.journal) if settings.journal else default_journal_path())
        if settings.stack_file:
            stack = StackOutputs.from_json(Path(settings.stack_file).read_text())
            deployed = False
        else:
            desired = desired_state(account_id=backend.account_id, region=backend.region,
                                    prefix=settings.stack_prefix, sabotage=settings.sabotage)
            try:
                # The report's outputs carry the backend's own queue URL (moto and LocalStack differ from AWS's).
                stack = deploy(backend.client, desired).outputs
            except Exception as exc:
                raise HarnessBroken(f"deploying the reference stack failed: {exc}") from exc
            _confirm_oncall(backend, stack)
            if hasattr(backend, "settle"):
                backend.settle()
            deployed = True
        return Session(settings, backend, stack, journal, uuid.uuid4().hex[:12], deployed)
    except BaseException:
        backend.stop()
        raise
