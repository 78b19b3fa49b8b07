"""Settings resolve in one place, CLI > environment > gameday.toml > ini, and bad values get one line."""

from __future__ import annotations

import pytest

from harness.config import resolve
from harness.errors import ConfigError


def test_defaults_are_the_embedded_backend_at_time_scale_60():
    s = resolve({}, env={}, ini={})
    assert (s.backend, s.region, s.effective_time_scale, s.sabotage) == ("embedded", "us-east-1", 60.0, None)


def test_aws_defaults_to_real_time():
    s = resolve({"backend": "aws", "allowed_accounts": "123456789012"}, env={})
    assert s.effective_time_scale == 1.0 and s.allowed_accounts == ("123456789012",)


def test_precedence_cli_over_env_over_file_over_ini(tmp_path):
    toml = tmp_path / "gameday.toml"
    toml.write_text('[gameday]\nregion = "eu-west-1"\ntime_scale = 30\nstack_prefix = "file"\n')
    s = resolve({"region": "ap-south-1"}, env={"GAMEDAY_REGION": "us-west-2", "GAMEDAY_TIME_SCALE": "10"},
                ini={"region": "ini-region", "stack_prefix": "ini", "sabotage": "detection"}, config_file=toml)
    assert s.region == "ap-south-1"
    assert s.time_scale == 10.0
    assert s.stack_prefix == "file"
    assert s.sabotage == "detection"


@pytest.mark.parametrize("cli,message", [
    ({"backend": "docker"}, "unknown backend 'docker'"),
    ({"sabotage": "all"}, "unknown sabotage 'all'"),
    ({"time_scale": "0"}, "time scale"),
    ({"backend": "aws"}, "allowlisted accounts"),
    ({"backend": "aws", "allowed_accounts": "12345"}, "not a 12-digit AWS account id"),
    ({"backend": "localstack"}, "needs its URL"),
    ({"stack_file": "/nonexistent/stack.json"}, "does not exist"),
])
def test_bad_values_raise_one_line(cli, message):
    with pytest.raises(ConfigError) as err:
        resolve(cli, env={})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_file_setting_is_named(tmp_path):
    toml = tmp_path / "gameday.toml"
    toml.write_text('[gameday]\nbackendd = "aws"\n')
    with pytest.raises(ConfigError, match="unknown setting 'backendd'"):
        resolve({}, env={}, config_file=toml)


def test_broken_toml_is_one_line(tmp_path):
    toml = tmp_path / "gameday.toml"
    toml.write_text("[gameday\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        resolve({}, env={}, config_file=toml)
