"""Safe construction of PromQL from values that may come from alert labels."""

from __future__ import annotations

import re

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def quote(value: str) -> str:
    """A PromQL double-quoted string literal for any value (quotes, backslashes, newlines)."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'"{escaped}"'


def label_name(name: str) -> str:
    """A label name, checked: label names cannot be quoted in PromQL, so a bad one is refused."""
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"not a valid Prometheus label name: {name!r}")
    return name


def matcher(name: str, value: str, op: str = "=") -> str:
    if op not in ("=", "!=", "=~", "!~"):
        raise ValueError(f"not a PromQL matcher operator: {op!r}")
    return f"{label_name(name)}{op}{quote(value)}"


def selector(metric: str, **matchers: str | tuple[str, str]) -> str:
    """metric{a="x",b=~"y"}: values given as str use '=', as (op, value) use that operator."""
    if not _LABEL_NAME.fullmatch(metric.replace(":", "_")):
        raise ValueError(f"not a valid metric name: {metric!r}")
    parts = []
    for name, spec in matchers.items():
        op, value = spec if isinstance(spec, tuple) else ("=", spec)
        parts.append(matcher(name, value, op))
    return f"{metric}{{{','.join(parts)}}}" if parts else metric
