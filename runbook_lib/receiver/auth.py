"""Webhook credentials: what Alertmanager's ``http_config`` sends (a Bearer token and/or basic
auth), compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from runbook_lib.core.settings import Settings


def check_auth(settings: Settings, header: str | None) -> bool:
    """True when the Authorization header carries the configured token or user and password."""
    cfg = settings.receiver
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and cfg.token is not None:
        return hmac.compare_digest(value.encode(), cfg.token.get_secret_value().encode())
    if scheme.lower() == "basic" and cfg.basic_user and cfg.basic_password is not None:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), cfg.basic_user.encode())
        ok_pw = hmac.compare_digest(password.encode(), cfg.basic_password.get_secret_value().encode())
        return ok_user and ok_pw
    return False


def auth_configured(settings: Settings) -> bool:
    cfg = settings.receiver
    return cfg.token is not None or bool(cfg.basic_user and cfg.basic_password is not None)
