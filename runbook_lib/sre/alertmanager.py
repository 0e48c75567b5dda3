"""Alertmanager webhook (version 4) payloads and single alerts, as validated models.

Unknown extra fields are ignored (newer Alertmanagers add some). Validation errors become an
AlertError whose one-line message names the offending field, e.g.
``alerts[0].labels.alertname: field required``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runbook_lib.core.errors import AlertError

MAX_LABELS = 256
MAX_VALUE_CHARS = 16_384


def _check_strings(value: dict[str, str], what: str) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(f"more than {MAX_LABELS} {what}")
    for k, v in value.items():
        if len(k) > 1024 or len(v) > MAX_VALUE_CHARS:
            raise ValueError(f"{what} {k[:40]!r} is longer than allowed ({MAX_VALUE_CHARS} characters)")
    return value


class Alert(BaseModel):
    """One alert, as Alertmanager sends it inside a webhook notification."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        _check_strings(value, "labels")
        if not value.get("alertname"):
            raise ValueError("labels.alertname is required and must not be empty")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return _check_strings(value, "annotations")

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, value: datetime | None, info: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value.year <= 1:  # Alertmanager's zero time ("not ended"); any offset
            if info.field_name == "startsAt":
                raise ValueError("startsAt is the zero time")
            return None
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of range") from None
        if not 1970 <= value.year <= 9999:
            raise ValueError(f"year {value.year} is out of range")
        return value

    @field_validator("generatorURL", "fingerprint")
    @classmethod
    def _short(cls, value: str) -> str:
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"longer than {MAX_VALUE_CHARS} characters")
        return value

    def model_post_init(self, _context: Any) -> None:
        if not self.fingerprint:
            self.fingerprint = label_fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def to_param(self) -> dict[str, Any]:
        """The JSON-able dict injected into a notebook as the ``alert`` parameter."""
        return json.loads(self.model_dump_json())


class WebhookPayload(BaseModel):
    """Alertmanager's webhook notification, version 4."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"] = "firing"
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1, max_length=10_000)


def label_fingerprint(labels: dict[str, str]) -> str:
    """A stable 16-hex fingerprint of a label set, used when the sender gave none."""
    canon = json.dumps(sorted(labels.items()), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line naming the first wrong field and what is wrong with it."""
    err = exc.errors()[0]
    path = prefix
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    if err["type"] == "missing":
        return f"{path}: field required"
    expected = (err.get("ctx") or {}).get("expected", "")
    if err["type"] == "literal_error" and isinstance(got, int | float) and "'" in str(expected):
        return f"{path}: must be the string {expected.replace(chr(39), chr(34))}, not the number {got!r}"
    if err["type"] == "literal_error" and isinstance(got, str | int | float | type(None)):
        return f"{path}: {msg} (got {str(got)[:40]!r})"
    return f"{path or 'payload'}: {msg}"


def parse_payload(data: Any) -> WebhookPayload:
    if not isinstance(data, dict):
        raise AlertError(f"payload: must be a JSON object, got {type(data).__name__}")
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        raise AlertError(format_validation_error(exc)) from None


def parse_alert(data: Any) -> Alert:
    if not isinstance(data, dict):
        raise AlertError(f"alert: must be a JSON object, got {type(data).__name__}")
    try:
        return Alert.model_validate(data)
    except ValidationError as exc:
        raise AlertError(format_validation_error(exc)) from None


def load_alert_text(text: str | bytes, fingerprint: str | None = None) -> tuple[Alert, WebhookPayload | None]:
    """Parse either a whole webhook payload or one alert object.

    From a payload, pick the alert with ``fingerprint``, else the first firing one.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AlertError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise AlertError("not valid JSON: input is not UTF-8") from None
    if isinstance(data, dict) and "alerts" in data:
        payload = parse_payload(data)
        if fingerprint:
            for alert in payload.alerts:
                if alert.fingerprint == fingerprint:
                    return alert, payload
            known = ", ".join(a.fingerprint for a in payload.alerts[:10])
            raise AlertError(f"--fingerprint {fingerprint}: no such alert in the payload (has: {known})")
        firing = [a for a in payload.alerts if a.status == "firing"]
        return (firing or payload.alerts)[0], payload
    if isinstance(data, dict) and "labels" in data:
        alert = parse_alert(data)
        if fingerprint and alert.fingerprint != fingerprint:
            raise AlertError(f"--fingerprint {fingerprint}: the alert's fingerprint is {alert.fingerprint}")
        return alert, None
    raise AlertError("input is neither an Alertmanager webhook payload (no 'alerts') nor an alert (no 'labels')")
