"""Layered settings, and secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.core.credentials import environment_secrets, safe_endpoint
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.settings import load_settings


def make_home(tmp_path: Path, defaults: str = "", env_yaml: str = "", env: str = "local") -> Path:
    (tmp_path / "parameters" / "environments").mkdir(parents=True)
    (tmp_path / "parameters" / "defaults.yaml").write_text(defaults or "prometheus:\n  timeout_s: 7\n")
    (tmp_path / "parameters" / "environments" / f"{env}.yaml").write_text(env_yaml)
    return tmp_path


def test_layers_defaults_then_environment_file_then_variables_then_overrides(tmp_path: Path) -> None:
    home = make_home(
        tmp_path,
        defaults="prometheus:\n  url: http://a:9090\n  timeout_s: 7\nkernels:\n  cell_timeout_s: 100\n",
        env_yaml="prometheus:\n  url: http://b:9090\nkernels:\n  cell_timeout_s: 50\n",
    )
    environ = {"RUNBOOK_HOME": str(home), "RUNBOOK_CELL_TIMEOUT": "30"}
    s = load_settings(environ=environ)
    assert s.prometheus.url == "http://b:9090"  # environment file beats defaults
    assert s.prometheus.timeout_s == 7  # defaults survive where not overridden
    assert s.kernels.cell_timeout_s == 30  # variable beats file
    s2 = load_settings(
        environ={**environ, "RUNBOOK_PROMETHEUS_URL": "http://c:9090"}, overrides={"kernels.cell_timeout_s": 5}
    )
    assert s2.prometheus.url == "http://c:9090"
    assert s2.kernels.cell_timeout_s == 5  # explicit argument beats everything


def test_a_file_with_the_old_engine_section_still_loads_into_kernels(tmp_path: Path) -> None:
    home = make_home(
        tmp_path,
        defaults="kernels:\n  cell_timeout_s: 100\n  warm_kernels: 2\n",
        env_yaml="engine:\n  cell_timeout_s: 50\n",
    )
    s = load_settings(environ={"RUNBOOK_HOME": str(home)})
    assert (s.kernels.cell_timeout_s, s.kernels.warm_kernels) == (50, 2)
    assert not hasattr(s, "engine")


def test_project_defaults_leave_backends_unconfigured() -> None:
    s = load_settings(environ={})
    assert s.postgres.dsn is None and s.redis.url is None and s.kubernetes.kubeconfig is None
    assert s.metrics.http_requests == "http_requests_total"
    assert (s.metrics.status_label, s.metrics.endpoint_label) == ("status", "endpoint")
    assert s.thresholds.availability_objective == 0.999


def test_secret_from_file_and_never_from_yaml(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    secret_file = tmp_path / "dsn"
    secret_file.write_text("postgresql://app:s3cret-from-file@db:5432/omnihub\n")
    s = load_settings(environ={"RUNBOOK_HOME": str(home), "RUNBOOK_POSTGRES_DSN_FILE": str(secret_file)})
    assert s.postgres.dsn is not None
    assert s.postgres.dsn.get_secret_value().endswith("/omnihub")
    assert "s3cret-from-file" in s.secret_values()
    assert "s3cret-from-file" not in repr(s)  # SecretStr hides it

    bad = make_home(tmp_path / "bad", env_yaml="postgres:\n  dsn: postgresql://app:pw-in-yaml@db/omnihub\n")
    with pytest.raises(ConfigError, match=r"postgres\.dsn .* contains a password") as exc:
        load_settings(environ={"RUNBOOK_HOME": str(bad)})
    assert "pw-in-yaml" not in str(exc.value)

    url = make_home(tmp_path / "url", env_yaml="prometheus:\n  url: http://admin:hunter2x@prom:9090\n")
    with pytest.raises(ConfigError, match=r"prometheus\.url .* contains a password"):
        load_settings(environ={"RUNBOOK_HOME": str(url)})

    tok = make_home(tmp_path / "tok", env_yaml="receiver:\n  token: abc\n")
    with pytest.raises(ConfigError, match="receiver.token is a secret"):
        load_settings(environ={"RUNBOOK_HOME": str(tok)})


def test_unreadable_secret_file_and_unknown_environment_are_clear(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with pytest.raises(ConfigError, match="RUNBOOK_REDIS_URL_FILE names .* cannot be read"):
        load_settings(environ={"RUNBOOK_HOME": str(home), "RUNBOOK_REDIS_URL_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"unknown environment 'staging'.*known: local"):
        load_settings(env="staging", environ={"RUNBOOK_HOME": str(home)})
    with pytest.raises(ConfigError, match="not a plain name"):
        load_settings(env="../etc", environ={"RUNBOOK_HOME": str(home)})


def test_bad_value_names_the_setting(tmp_path: Path) -> None:
    home = make_home(tmp_path)
    with pytest.raises(ConfigError, match="kernels.cell_timeout_s"):
        load_settings(environ={"RUNBOOK_HOME": str(home), "RUNBOOK_CELL_TIMEOUT": "soon"})


def test_connection_urls_redact_only_their_password() -> None:
    secrets = environment_secrets(
        {
            "RUNBOOK_REDIS_URL": "redis://127.0.0.1:6379/0",
            "RUNBOOK_POSTGRES_DSN": "postgresql://app:p%40ss@db:5432/omnihub",
            "RUNBOOK_WEBHOOK_TOKEN": "tok-123456",
            "PGPASSWORD": "pgpw-9876",
            "HOME": "/root",
        }
    )
    assert "redis://127.0.0.1:6379/0" not in secrets  # no password: nothing to hide
    assert {"p@ss", "tok-123456", "pgpw-9876"} <= set(secrets)
    assert "/root" not in secrets
    assert safe_endpoint("postgresql://app:p%40ss@db:5432/omnihub") == "postgresql://db:5432/omnihub"
    assert safe_endpoint("host=db port=6432 dbname=x password='a b'") == "postgresql://db:6432/x"
