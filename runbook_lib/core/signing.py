"""Signed, expiring links to one record (what Slack and PagerDuty messages carry, because a
browser opening a link from a chat cannot send the receiver's bearer token), and signed broker
messages (the celery executor's tasks and completion reports: :func:`sign_message`).

A link is ``/r/<record id>?exp=<unix seconds>&sig=<hex HMAC-SHA256 of "<record id>\\n<exp>">``
under the key ``notify.link_signing_key`` (RUNBOOK_LINK_SIGNING_KEY[_FILE]). It opens that one
record's page until ``exp`` and grants nothing else: the index and every other record still
need the receiver's credentials. Altering the id, the expiry or the signature breaks it.

Stdlib only, so any side may use it; the key is passed in, never read here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import quote

from runbook_lib.core.errors import ConfigError

# The longest a link may live (notify.link_ttl_s is capped at it); an ``exp`` further ahead than
# this is refused as absurd, whatever its signature.
MAX_TTL_S = 365 * 86400
_EXP = re.compile(r"[1-9][0-9]{0,11}")  # one spelling: no leading zeros
_SIG = re.compile(r"[0-9a-f]{64}")


def _key(key: str | bytes) -> bytes:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not raw:
        raise ConfigError("the link signing key is empty")
    return raw


def _seconds(now: float | datetime) -> int:
    return int(now.timestamp() if isinstance(now, datetime) else now)


def sign(key: str | bytes, record_id: str, exp: int) -> str:
    """The signature of a link: hex HMAC-SHA256 over ``"<record_id>\\n<exp>"``."""
    message = f"{record_id}\n{int(exp)}".encode()
    return hmac.new(_key(key), message, hashlib.sha256).hexdigest()


def signed_path(key: str | bytes, record_id: str, now: float | datetime, ttl: float) -> str:
    """``/r/<record_id>?exp=...&sig=...``, valid for ``ttl`` seconds from ``now``."""
    if not 0 < ttl <= MAX_TTL_S:
        raise ConfigError(f"a link lifetime must be between 1 s and {MAX_TTL_S} s, not {ttl}")
    exp = _seconds(now) + int(ttl)
    return f"/r/{quote(record_id, safe='')}?exp={exp}&sig={sign(key, record_id, exp)}"


def problem(key: str | bytes | None, record_id: str, exp: object, sig: object, now: float | datetime) -> str | None:
    """Why a link does not open its record ("missing", "malformed", "bad signature", "expired"),
    or None when it does. The signature is checked (in constant time) before the expiry, so only
    a genuine link is ever called expired."""
    if not key:
        return "bad signature"
    if exp is None or sig is None or exp == "" or sig == "":
        return "missing"
    exp_text, sig_text = str(exp), str(sig)
    if not _EXP.fullmatch(exp_text) or not _SIG.fullmatch(sig_text):
        return "malformed"
    expected = sign(key, record_id, int(exp_text))
    if not hmac.compare_digest(expected.encode(), sig_text.encode()):
        return "bad signature"
    moment = _seconds(now)
    if int(exp_text) > moment + MAX_TTL_S:
        return "malformed"  # no link lives that long: a key misused or a clock far off
    if moment >= int(exp_text):
        return "expired"
    return None


def verify(key: str | bytes | None, record_id: str, exp: object, sig: object, now: float | datetime) -> bool:
    """True when ``sig`` signs ``record_id`` and ``exp`` under ``key`` and ``now`` is before ``exp``.
    Non-integer, over-long or absurdly distant ``exp``, non-hex ``sig``: False."""
    return problem(key, record_id, exp, sig, now) is None


# -- broker messages ---------------------------------------------------------------------------
# A task ("task": the job's plan under its task id) or a completion report ("done") travels with
# hex HMAC-SHA256 over "<kind>\n<canonical JSON of the body>" under receiver.broker_signing_key.
# The kind is signed, so a report's signature never passes for a task's.
MESSAGE_KINDS = ("task", "done")


def _canonical(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def sign_message(key: str | bytes, kind: str, body: Mapping[str, object]) -> str:
    """The signature of a broker message body (JSON-able) of ``kind`` ("task" or "done")."""
    if kind not in MESSAGE_KINDS:
        raise ValueError(f"message kind must be one of {MESSAGE_KINDS}, not {kind!r}")
    return hmac.new(_key(key), kind.encode() + b"\n" + _canonical(body), hashlib.sha256).hexdigest()


def message_problem(key: str | bytes, kind: str, body: object, sig: object) -> str | None:
    """Why a broker message is not to be believed ("unsigned", "malformed", "bad signature"), or
    None when ``sig`` signs ``body`` as ``kind`` under ``key``. Constant-time comparison."""
    if sig is None or sig == "":
        return "unsigned"
    if not isinstance(body, Mapping) or not isinstance(sig, str) or not _SIG.fullmatch(sig):
        return "malformed"
    try:
        expected = sign_message(key, kind, body)
    except (TypeError, ValueError):
        return "malformed"
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        return "bad signature"
    return None
