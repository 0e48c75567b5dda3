"""Layered settings.

defaults.yaml < environments/<env>.yaml < RUNBOOK_* environment variables < explicit overrides.

Secrets (passwords, tokens, URLs with credentials) are accepted only from environment variables
or from files named by ``<VAR>_FILE``; a secret found in a YAML file is a ConfigError. Nothing is
read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import copy
import html
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import ConfigError

PACKAGE_HOME = Path(__file__).resolve().parent.parent


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrometheusSettings(_Section):
    url: str | None = None
    timeout_s: float = 10.0
    verify_tls: bool = True
    bearer_token: SecretStr | None = None


class PostgresSettings(_Section):
    dsn: SecretStr | None = None
    connect_timeout_s: float = 5.0
    statement_timeout_ms: int = 5000


class RedisSettings(_Section):
    url: SecretStr | None = None
    timeout_s: float = 3.0


class AmqpSettings(_Section):
    url: SecretStr | None = None
    timeout_s: float = 5.0


class KubernetesSettings(_Section):
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "omnihub-prod"
    timeout_s: float = 10.0


class MetricNames(_Section):
    http_requests: str = "http_requests_total"
    status_label: str = "status"
    endpoint_label: str = "endpoint"
    error_status_regex: str = "5.."
    job_label: str = "job"
    api_job: str = "api-gateway"
    latency_histogram: str = "http_request_duration_seconds"


class ServiceSettings(_Section):
    name: str = "api-gateway"
    deployment: str = "api-gateway"
    log_tail_lines: int = 200
    error_patterns: dict[str, str] = Field(default_factory=dict)


class Thresholds(_Section):
    availability_objective: float = 0.999
    burn_rate_page: float = 14.4
    burn_rate_ticket: float = 6.0
    burn_rate_slow: float = 3.0
    endpoint_dominance: float = 0.5
    rollout_suspect_window_s: float = 1800
    spike_lookback_s: float = 10800
    pod_cpu_saturation: float = 0.85
    pod_memory_saturation: float = 0.9
    redis_latency_warn_ms: float = 50
    postgres_latency_warn_ms: float = 200
    postgres_connections_warn: float = 0.8


class EngineSettings(_Section):
    kernel_name: str = "python3"
    cell_timeout_s: float = 120
    start_timeout_s: float = 60


class ArchiveSettings(_Section):
    path: str = "executed"


class ReceiverSettings(_Section):
    host: str = "127.0.0.1"
    port: int = 9095
    workers: int = Field(default=2, ge=1, le=64)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    journal: str | None = None
    poll_interval_s: float = 0.2
    max_attempts: int = Field(default=2, ge=1)
    journal_busy_timeout_s: float = Field(default=5.0, gt=0)
    token: SecretStr | None = None
    basic_user: str | None = None
    basic_password: SecretStr | None = None


class NotifySettings(_Section):
    slack_webhook_url: SecretStr | None = None
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    pagerduty_routing_key: SecretStr | None = None
    record_base_url: str | None = None
    timeout_s: float = 5.0


class Settings(_Section):
    env: str = "local"
    home: Path = PACKAGE_HOME
    runbooks_dir: Path | None = None
    catalog_path: Path | None = None
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    amqp: AmqpSettings = Field(default_factory=AmqpSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    metrics: MetricNames = Field(default_factory=MetricNames)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    # -- derived paths -------------------------------------------------------------------
    @property
    def parameters_dir(self) -> Path:
        return self.home / "parameters"

    @property
    def runbooks_path(self) -> Path:
        return self.runbooks_dir or (self.home / "runbooks")

    @property
    def catalog_file(self) -> Path:
        return self.catalog_path or (self.parameters_dir / "catalog.yaml")

    @property
    def archive_path(self) -> Path:
        p = Path(self.archive.path).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def journal_path(self) -> Path:
        if self.receiver.journal:
            p = Path(self.receiver.journal).expanduser()
            return p if p.is_absolute() else self.home / p
        return self.archive_path / "intake.sqlite3"

    # -- secrets ---------------------------------------------------------------------------
    def secret_values(self) -> list[str]:
        """Every configured secret value, for redaction (longest first)."""
        found: set[str] = set()

        def visit(model: BaseModel, section: str) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, BaseModel):
                    visit(value, name)
                elif isinstance(value, SecretStr):
                    raw = value.get_secret_value()
                    found.update(_secret_parts(raw, url_like=(section, name) in _URL_SECRETS))
                elif isinstance(value, str) and name in ("url", "dsn", "record_base_url"):
                    found.update(_secret_parts(value, url_like=True))

        visit(self, "")
        return sorted((s for s in found if s), key=len, reverse=True)

    def describe(self, section: str) -> str:
        """A safe one-line description of a backend endpoint (never a password)."""
        value = getattr(self, section)
        raw = None
        for key in ("url", "dsn", "kubeconfig"):
            v = getattr(value, key, None)
            if v is not None:
                raw = v.get_secret_value() if isinstance(v, SecretStr) else str(v)
                break
        return safe_endpoint(raw) if raw else "not configured"


# Environment variables -> settings keys. Secret ones also accept <VAR>_FILE.
ENV_MAP: dict[str, tuple[str, ...]] = {
    "RUNBOOK_PROMETHEUS_URL": ("prometheus", "url"),
    "RUNBOOK_KUBE_NAMESPACE": ("kubernetes", "namespace"),
    "RUNBOOK_KUBE_CONTEXT": ("kubernetes", "context"),
    "KUBECONFIG": ("kubernetes", "kubeconfig"),
    "RUNBOOK_ARCHIVE": ("archive", "path"),
    "RUNBOOK_CELL_TIMEOUT": ("engine", "cell_timeout_s"),
    "RUNBOOK_WORKERS": ("receiver", "workers"),
    "RUNBOOK_JOURNAL": ("receiver", "journal"),
    "RUNBOOK_WEBHOOK_USER": ("receiver", "basic_user"),
    "RUNBOOK_PAGERDUTY_URL": ("notify", "pagerduty_url"),
    "RUNBOOK_RECORD_BASE_URL": ("notify", "record_base_url"),
    "RUNBOOK_RUNBOOKS_DIR": ("runbooks_dir",),
    "RUNBOOK_CATALOG": ("catalog_path",),
}
SECRET_ENV_MAP: dict[str, tuple[str, ...]] = {
    "RUNBOOK_POSTGRES_DSN": ("postgres", "dsn"),
    "RUNBOOK_REDIS_URL": ("redis", "url"),
    "RUNBOOK_AMQP_URL": ("amqp", "url"),
    "RUNBOOK_PROMETHEUS_TOKEN": ("prometheus", "bearer_token"),
    "RUNBOOK_WEBHOOK_TOKEN": ("receiver", "token"),
    "RUNBOOK_WEBHOOK_PASSWORD": ("receiver", "basic_password"),
    "RUNBOOK_SLACK_WEBHOOK_URL": ("notify", "slack_webhook_url"),
    "RUNBOOK_PAGERDUTY_ROUTING_KEY": ("notify", "pagerduty_routing_key"),
}
# Keys that must never carry a secret in a YAML file.
_SECRET_KEYS = {path for path in SECRET_ENV_MAP.values()}
# Secret settings that are connection URLs: only the password inside is secret (the host is
# what every message about the backend names). Every other secret is secret as a whole.
_URL_SECRETS = {("postgres", "dsn"), ("redis", "url"), ("amqp", "url")}
_URL_SECRET_VARS = {var for var, path in SECRET_ENV_MAP.items() if path in _URL_SECRETS}
# Environment variables whose values are redacted wherever they appear, whatever their use.
_SECRET_ENV_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|ROUTING_KEY)$", re.I)


def load_settings(
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from the layers. ``environ`` defaults to ``os.environ`` (read now)."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("RUNBOOK_HOME") or PACKAGE_HOME).expanduser().resolve()
    env_name = env or environ.get("RUNBOOK_ENV") or "local"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", env_name):
        raise ConfigError(f"environment name {env_name!r} is not a plain name (letters, digits, -_.)")

    params = home / "parameters"
    data: dict[str, Any] = {}
    _merge(data, _read_yaml(params / "defaults.yaml", required=True))
    env_file = params / "environments" / f"{env_name}.yaml"
    if not env_file.exists():
        known = sorted(p.stem for p in (params / "environments").glob("*.yaml"))
        raise ConfigError(f"unknown environment {env_name!r}: no {env_file} (known: {', '.join(known)})")
    _merge(data, _read_yaml(env_file, required=True))
    _reject_yaml_secrets(data, env_file)

    for var, path in ENV_MAP.items():
        if environ.get(var):
            _set(data, path, environ[var])
    for var, path in SECRET_ENV_MAP.items():
        value = _secret_from_env(environ, var)
        if value is not None:
            _set(data, path, value)
    if overrides:
        for dotted, value in overrides.items():
            _set(data, tuple(dotted.split(".")), value)

    data["env"] = env_name
    data["home"] = home
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"setting {where}: {err['msg']} (check {env_file.name} and RUNBOOK_* variables)") from None
    _reject_short_secrets(settings)
    return settings


MIN_SECRET_CHARS = 4


def _reject_short_secrets(settings: Settings) -> None:
    """A secret of one to three characters cannot be kept out of records (it is everywhere in
    ordinary text); refuse it rather than leak it or mangle every record."""
    for var, (section, key) in SECRET_ENV_MAP.items():
        value = getattr(getattr(settings, section), key)
        if value is None:
            continue
        raw = value.get_secret_value().strip()
        url_like = (section, key) in _URL_SECRETS
        pieces = _password_of(raw) if url_like else {raw}
        if any(0 < len(p) < MIN_SECRET_CHARS for p in pieces):
            raise ConfigError(
                f"{var}: its secret is shorter than {MIN_SECRET_CHARS} characters and cannot be kept out of "
                f"records and logs; use a real password or token"
            )


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of secret-looking environment variables (PGPASSWORD, *_TOKEN, ...) and *_FILE contents."""
    environ = os.environ if environ is None else environ
    out: set[str] = set()
    for name, value in environ.items():
        if name in SECRET_ENV_MAP or _SECRET_ENV_NAME.search(name):
            out.update(_secret_parts(value, url_like=name in _URL_SECRET_VARS))
        if name.endswith("_FILE") and name[:-5] in SECRET_ENV_MAP:
            try:
                out.update(_secret_parts(Path(value).read_text().strip(), url_like=name[:-5] in _URL_SECRET_VARS))
            except OSError:
                pass
    # Values this short are ordinary text, not secrets we could find (configured secrets that
    # short are refused at load time).
    return sorted((s for s in out if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)


_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.S)


def safe_endpoint(raw: str) -> str:
    """scheme://host:port/path of a URL or DSN, never its user info. Used in every message about
    a backend. Never raises: an unparseable value is described without any of its text."""
    raw = raw.strip()
    m = _URL.match(raw)
    if m:
        after = m["rest"].rpartition("@")[2]
        host = re.match(r"[^/?#]*", after).group(0)  # type: ignore[union-attr]
        path = re.match(r"/[^?#]*", after[len(host) :])
        shown = path.group(0) if path and path.group(0) != "/" else ""
        return f"{m['scheme']}://{host or '?'}{shown}"
    if "=" in raw:  # libpq key=value DSN
        kv = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", raw))
        host = kv.get("host", "localhost").strip("'")
        port = kv.get("port", "5432").strip("'")
        db = kv.get("dbname", "").strip("'")
        return f"postgresql://{host}:{port}/{db}"
    return "(a value that is not a URL)"


def _secret_parts(raw: str, url_like: bool = False) -> set[str]:
    """The strings to redact for one secret value: the whole value, plus the password inside
    it when it is a URL or DSN. For a connection URL (``url_like``) only the password; when a
    URL-like value has no recognisable password field but is not a plain URL, all of it."""
    raw = raw.strip()
    passwords = _password_of(raw)
    if url_like and _URL.match(raw):
        parts = passwords
    elif url_like and "=" in raw and passwords:
        parts = passwords
    else:
        parts = ({raw} if raw else set()) | passwords
    # the encodings a secret shows up in: URL-encoded, Python repr, JSON string, HTML text
    for p in list(parts):
        parts.add(quote(p, safe=""))
        parts.add(p.encode("unicode_escape").decode("ascii", "replace"))
        parts.add(json.dumps(p)[1:-1])
        parts.add(html.escape(p, quote=True))
        parts.add(html.escape(p, quote=False))
    return {p for p in parts if p}


def _password_of(raw: str) -> set[str]:
    """Every candidate password in a URL or DSN. libpq accepts unencoded '#', '?', '@', '/' in a
    URL password, so each '@' is tried as the end of the user info: redacting one candidate too
    many costs a little readability, one too few leaks the secret."""
    out: set[str] = set()
    m = _URL.match(raw)
    if m:
        rest = m["rest"]
        for i, ch in enumerate(rest):
            if ch == "@":
                userinfo = rest[:i]
                if ":" in userinfo:
                    pw = userinfo.split(":", 1)[1]
                    out.update({pw, unquote(pw)})
        query = rest.split("?", 1)[1] if "?" in rest else ""
        for value in parse_qs(query).get("password", []):
            out.add(value)
        return {p for p in out if p}
    for km in re.finditer(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", raw):
        value = km.group(1)
        if value.startswith("'"):
            value = value[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        out.add(value)
    return {p for p in out if p}


def _secret_from_env(environ: Mapping[str, str], var: str) -> str | None:
    if environ.get(var):
        return environ[var]
    file_var = f"{var}_FILE"
    if environ.get(file_var):
        path = Path(environ[file_var]).expanduser()
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{file_var} names {path}, which cannot be read: {exc.strerror}") from None
    return None


def _read_yaml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"missing settings file {path}")
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return loaded


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _reject_yaml_secrets(data: Mapping[str, Any], env_file: Path) -> None:
    for section, values in data.items():
        if not isinstance(values, Mapping):
            continue
        for key in ("url", "dsn", "pagerduty_url", "record_base_url"):
            if isinstance(values.get(key), str) and _password_of(values[key]):
                raise ConfigError(
                    f"{section}.{key} in defaults.yaml or {env_file.name} contains a password; "
                    f"set it in the environment instead (see README, 'Settings')"
                )
    for section, key in (p for p in _SECRET_KEYS if len(p) == 2):
        value = (data.get(section) or {}).get(key)
        if value and key in ("dsn", "url"):
            if _password_of(str(value)):
                raise ConfigError(
                    f"{section}.{key} in defaults.yaml or {env_file.name} contains a password; "
                    f"set it in the environment instead (see README, 'Settings')"
                )
        elif value:
            raise ConfigError(
                f"{section}.{key} is a secret and may not be set in defaults.yaml or {env_file.name}; "
                f"use the environment variable or its _FILE form"
            )
