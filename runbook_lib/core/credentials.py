"""Secrets: where they may come from, how to recognise them, and how to talk about an
endpoint without showing one.

Secrets (passwords, tokens, URLs with credentials) are accepted only from environment variables
or from files named by ``<VAR>_FILE``; a secret found in a YAML file is a ConfigError. For a
connection URL only its password is secret: every message about a backend names its
``scheme://host:port/db`` (:func:`safe_endpoint`).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from runbook_lib.core.errors import ConfigError

SECRET_ENV_MAP: dict[str, tuple[str, ...]] = {
    "RUNBOOK_POSTGRES_DSN": ("postgres", "dsn"),
    "RUNBOOK_POSTGRES_DRILL_DSN": ("postgres", "drill_dsn"),
    "RUNBOOK_REDIS_URL": ("redis", "url"),
    "RUNBOOK_RABBITMQ_URL": ("rabbitmq", "url"),
    "RUNBOOK_BROKER_URL": ("receiver", "broker_url"),
    "RUNBOOK_PROMETHEUS_TOKEN": ("prometheus", "bearer_token"),
    "RUNBOOK_WEBHOOK_TOKEN": ("receiver", "token"),
    "RUNBOOK_WEBHOOK_PASSWORD": ("receiver", "basic_password"),
    "RUNBOOK_SLACK_WEBHOOK_URL": ("notify", "slack_webhook_url"),
    "RUNBOOK_PAGERDUTY_ROUTING_KEY": ("notify", "pagerduty_routing_key"),
    "RUNBOOK_LINK_SIGNING_KEY": ("notify", "link_signing_key"),
    "RUNBOOK_BROKER_SIGNING_KEY": ("receiver", "broker_signing_key"),
    "RUNBOOK_SLACK_SIGNING_SECRET": ("incident", "slack_signing_secret"),
    "RUNBOOK_PAGERDUTY_WEBHOOK_SECRET": ("incident", "pagerduty_webhook_secret"),
}
# Keys that must never carry a secret in a YAML file.
SECRET_KEYS = set(SECRET_ENV_MAP.values())
# Secret settings that are connection URLs: only the password inside is secret (the host is
# what every message about the backend names). Every other secret is secret as a whole.
URL_SECRETS = {
    ("postgres", "dsn"),
    ("postgres", "drill_dsn"),
    ("redis", "url"),
    ("rabbitmq", "url"),
    ("receiver", "broker_url"),
}
URL_SECRET_VARS = {var for var, path in SECRET_ENV_MAP.items() if path in URL_SECRETS}
# Environment variables whose values are redacted wherever they appear, whatever their use
# (AWS_SECRET_ACCESS_KEY, the credential of an archive in S3, ends in neither SECRET nor KEY alone).
SECRET_ENV_NAME = re.compile(r"(PASSWORD|PASSWD|TOKEN|SECRET|SECRET_KEY|SECRET_ACCESS_KEY|API_KEY|ROUTING_KEY)$", re.I)

MIN_SECRET_CHARS = 4


def reject_short_secrets(configured: Iterable[tuple[str, str]]) -> None:
    """A secret of one to three characters cannot be kept out of records (it is everywhere in
    ordinary text); refuse it rather than leak it or mangle every record. ``configured`` holds
    (environment variable, raw value) for every secret that is set."""
    for var, raw in configured:
        raw = raw.strip()
        pieces = password_of(raw) if var in URL_SECRET_VARS else {raw}
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
        if name in SECRET_ENV_MAP or SECRET_ENV_NAME.search(name):
            out.update(secret_parts(value, url_like=name in URL_SECRET_VARS))
        if name.endswith("_FILE") and name[:-5] in SECRET_ENV_MAP:
            try:
                out.update(secret_parts(Path(value).read_text().strip(), url_like=name[:-5] in URL_SECRET_VARS))
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


def secret_parts(raw: str, url_like: bool = False) -> set[str]:
    """The strings to redact for one secret value: the whole value, plus the password inside
    it when it is a URL or DSN. For a connection URL (``url_like``) only the password; when a
    URL-like value has no recognisable password field but is not a plain URL, all of it."""
    raw = raw.strip()
    passwords = password_of(raw)
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


def password_of(raw: str) -> set[str]:
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


def secret_from_env(environ: Mapping[str, str], var: str) -> str | None:
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


def reject_yaml_secrets(data: Mapping[str, Any], env_file: Path) -> None:
    for section, values in data.items():
        if not isinstance(values, Mapping):
            continue
        for key in ("url", "dsn", "pagerduty_url", "record_base_url", "prometheus_url", "grafana_url"):
            if isinstance(values.get(key), str) and password_of(values[key]):
                raise ConfigError(
                    f"{section}.{key} in defaults.yaml or {env_file.name} contains a password; "
                    f"set it in the environment instead (see README, 'Settings')"
                )
    for section, key in (p for p in SECRET_KEYS if len(p) == 2):
        value = (data.get(section) or {}).get(key)
        if value and key in ("dsn", "url"):
            if password_of(str(value)):
                raise ConfigError(
                    f"{section}.{key} in defaults.yaml or {env_file.name} contains a password; "
                    f"set it in the environment instead (see README, 'Settings')"
                )
        elif value:
            raise ConfigError(
                f"{section}.{key} is a secret and may not be set in defaults.yaml or {env_file.name}; "
                f"use the environment variable or its _FILE form"
            )
