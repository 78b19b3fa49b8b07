"""Settings, resolved in one place: CLI > environment > gameday.toml > pytest ini > defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from harness.errors import ConfigError
from harness.sla import parse_time_scale

BACKENDS = ("embedded", "localstack", "aws")
SABOTAGE = ("detection", "remediation", "prevention")
LATENCY_PROFILES = ("instant", "aws")
DEFAULT_TIME_SCALE = {"embedded": 60.0, "localstack": 1.0, "aws": 1.0}


@dataclass(frozen=True)
class Settings:
    backend: str = "embedded"
    endpoint: str | None = None
    region: str = "us-east-1"
    profile: str | None = None
    allowed_accounts: tuple[str, ...] = ()
    time_scale: float | None = None
    sabotage: str | None = None
    latency_profile: str = "instant"
    stack_prefix: str = "gameday"
    stack_file: str | None = None
    journal: str | None = None
    reports_dir: str = "reports"
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def effective_time_scale(self) -> float:
        return self.time_scale if self.time_scale is not None else DEFAULT_TIME_SCALE[self.backend]


_ENV = {
    "backend": "GAMEDAY_BACKEND",
    "endpoint": "GAMEDAY_ENDPOINT",
    "region": "GAMEDAY_REGION",
    "profile": "GAMEDAY_PROFILE",
    "allowed_accounts": "GAMEDAY_ALLOWED_ACCOUNTS",
    "time_scale": "GAMEDAY_TIME_SCALE",
    "sabotage": "GAMEDAY_SABOTAGE",
    "latency_profile": "GAMEDAY_LATENCY_PROFILE",
    "stack_prefix": "GAMEDAY_STACK_PREFIX",
    "stack_file": "GAMEDAY_STACK_FILE",
    "journal": "GAMEDAY_JOURNAL",
    "reports_dir": "GAMEDAY_REPORTS_DIR",
}
NAMES = tuple(_ENV)


def resolve(cli: Mapping[str, Any] | None = None, *, env: Mapping[str, str] | None = None,
            ini: Mapping[str, Any] | None = None, config_file: str | Path | None = None) -> Settings:
    """Merge every source, highest priority first, and validate; bad input raises ConfigError (one line)."""
    env = os.environ if env is None else env
    layers: list[Mapping[str, Any]] = [
        {k: v for k, v in (cli or {}).items() if v not in (None, "")},
        {k: env[name] for k, name in _ENV.items() if env.get(name)},
        _file_layer(config_file or env.get("GAMEDAY_CONFIG") or "gameday.toml", explicit=bool(config_file or env.get("GAMEDAY_CONFIG"))),
        {k: v for k, v in (ini or {}).items() if v not in (None, "", [])},
    ]
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    unknown = sorted(set(merged) - set(NAMES))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}; known settings: {', '.join(NAMES)}")
    return _validate(Settings(**{k: _coerce(k, v) for k, v in merged.items()}))


def _file_layer(path: str | Path, *, explicit: bool) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        if explicit:
            raise ConfigError(f"config file {p} does not exist; pass an existing gameday.toml or unset GAMEDAY_CONFIG")
        return {}
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p} is not valid TOML ({exc}); fix the file") from None
    return dict(data.get("gameday", data))


def _coerce(key: str, value: Any) -> Any:
    if key == "allowed_accounts":
        items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
        return tuple(str(a).strip() for a in items if str(a).strip())
    if key == "time_scale":
        return parse_time_scale(value)
    return value if value is None else str(value)


def _validate(s: Settings) -> Settings:
    if s.backend not in BACKENDS:
        raise ConfigError(f"unknown backend {s.backend!r}; choose one of: {', '.join(BACKENDS)}")
    if s.sabotage is not None and s.sabotage not in SABOTAGE:
        raise ConfigError(f"unknown sabotage {s.sabotage!r}; choose one of: {', '.join(SABOTAGE)}")
    if s.latency_profile not in LATENCY_PROFILES:
        raise ConfigError(f"unknown latency profile {s.latency_profile!r}; choose one of: {', '.join(LATENCY_PROFILES)}")
    if s.backend == "localstack" and not s.endpoint:
        raise ConfigError("the localstack backend needs its URL; pass --gameday-endpoint http://localhost:4566")
    for account in s.allowed_accounts:
        if not (account.isdigit() and len(account) == 12):
            raise ConfigError(f"allowed account {account!r} is not a 12-digit AWS account id; fix allowed_accounts")
    if s.backend == "aws" and not s.allowed_accounts:
        raise ConfigError("the aws backend runs only against allowlisted accounts; set allowed_accounts "
                          "(GAMEDAY_ALLOWED_ACCOUNTS or gameday.toml) to your sandbox account id")
    if s.stack_file and not Path(s.stack_file).exists():
        raise ConfigError(f"stack file {s.stack_file} does not exist; write it with `gameday up` or describe your stack")
    return s


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    return _validate(replace(settings, **changes))


__all__ = ["Settings", "resolve", "with_overrides", "BACKENDS", "SABOTAGE", "NAMES"]
