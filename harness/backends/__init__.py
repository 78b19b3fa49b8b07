"""Backends: where scenarios run (embedded emulator, LocalStack, a real sandbox account)."""

from __future__ import annotations

from harness.backends.base import Backend
from harness.scenario import Capability
from harness.config import Settings


def create(settings: Settings, *, port: int = 0, warm: bool = True) -> Backend:
    """The backend the settings name (not started); port and warm (pre-warm Lambda) apply to the embedded endpoint."""
    if settings.backend == "embedded":
        from harness.backends.embedded import EmbeddedBackend

        return EmbeddedBackend(settings, port=port, warm=warm)
    if settings.backend == "localstack":
        from harness.backends.localstack import LocalStackBackend

        return LocalStackBackend(settings)
    from harness.backends.aws import AwsBackend

    return AwsBackend(settings)


__all__ = ["Backend", "Capability", "create"]
