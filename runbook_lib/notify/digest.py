"""The daily digest: one email listing every alert that fired in a window (24 h by default),
resolved or not, from the incident-record archive, then every SLO's error budget; sent over
SMTP by ``runbook digest --send`` (a CronJob at monitoring.digest_at, UTC).

Unlike Alertmanager's email receiver it replaces, nothing is missed between sends: the archive
keeps every record and every resolution, so an alert that fired and resolved within the day is
listed, and the window ends at a fixed time of day (the latest monitoring.digest_at), so
consecutive digests cover consecutive days whenever the job actually runs.

One line per alert (its fingerprint): several records of one alert (it fired again, a run was
retried, it was linked to a group record) are one line with the count. Alert labels are
untrusted: the HTML part escapes them, the text part shows control characters as escapes, and
no header carries any of them (the subject holds counts only)."""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import ArchiveError, ConfigError, RunbookError, SourceError
from runbook_lib.core.present import duration, esc, iso, one_line, visible, when
from runbook_lib.core.settings import Settings
from runbook_lib.notify.messages import record_url
from runbook_lib.record import diagnosis
from runbook_lib.record.archive import archive_for

log = logging.getLogger("runbook.notify.digest")

# Records whose run started this long before the window are still read: their alert may have
# fired before the window and still fire (or resolve) within it.
LOOKBACK = timedelta(days=7)
HEADLINE_CHARS = 300
SMTP_TIMEOUT_S = 30.0
NO_SEV = "SEV-?"


class DigestError(RunbookError):
    """The digest could not be sent (SMTP refused it, or could not be reached): exit 1."""

    label = "digest not sent"


# -- the window ---------------------------------------------------------------------------------
def parse_at(text: str) -> tuple[int, int] | None:
    """``HH:MM`` (UTC) as (hour, minute); None for ``now``. ConfigError otherwise."""
    if text.strip().lower() == "now":
        return None
    try:
        hour, minute = (int(x) for x in text.strip().split(":"))
    except ValueError:
        raise ConfigError(f"--at {text[:20]!r}: expected HH:MM (UTC) or 'now'") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ConfigError(f"--at {text[:20]!r}: expected HH:MM (UTC) or 'now'")
    return hour, minute


def window_end(at: str, now: datetime) -> datetime:
    """The digest's end: the latest ``at`` (HH:MM UTC) at or before ``now``, or ``now`` itself
    for ``at`` = 'now'. A run at 08:00:40 or, retried, at 09:10 covers the same day."""
    hm = parse_at(at)
    now = now.astimezone(UTC)
    if hm is None:
        return now
    end = now.replace(hour=hm[0], minute=hm[1], second=0, microsecond=0)
    return end if end <= now else end - timedelta(days=1)


# -- what fired ---------------------------------------------------------------------------------
@dataclass
class Firing:
    """One time an alert fired: its own record, an alert linked to a record, or a resolution
    chained without any record."""

    fingerprint: str
    alertname: str
    starts: datetime | None
    resolved: datetime | None
    record_id: str | None = None
    sev: str = NO_SEV
    headline: str = ""


@dataclass
class Line:
    """One alert (fingerprint) in the digest: every firing of it in the window."""

    fingerprint: str
    alertname: str
    sev: str
    first_fired: datetime | None
    resolved: datetime | None  # None: still firing at the window's end
    duration_s: float | None  # time spent firing within the firings listed (to the window's end)
    fired: int  # how many times it fired (distinct start times)
    records: list[str]
    headline: str
    record_id: str | None  # the latest record
    url: str | None = None

    @property
    def firing(self) -> bool:
        return self.resolved is None


@dataclass
class Budgets:
    """Every SLO's budget now, or why there is none (``problem``)."""

    statuses: list[Any] = field(default_factory=list)  # runbook_lib.sre.sli.Status
    problem: str = ""
    where: str = ""


@dataclass
class Digest:
    start: datetime
    end: datetime
    lines: list[Line]
    budgets: Budgets
    archive: str
    unreadable: list[str] = field(default_factory=list)

    @property
    def firing(self) -> int:
        return sum(1 for line in self.lines if line.firing)

    def subject(self) -> str:
        """Counts and the date only: no label value ever reaches a header. Short enough (under
        70 characters) to stay on the Subject line unfolded."""
        firing = f", {self.firing} still firing" if self.firing else ""
        low = sum(1 for s in self.budgets.statuses if s.band is not None and s.band.name in ("freeze", "incident"))
        budgets = f", {low} SLO{'s' if low != 1 else ''} low" if low else ""
        return f"Alert digest {self.end:%Y-%m-%d}: {len(self.lines)} fired{firing}{budgets}"

    # -- text -------------------------------------------------------------------------------
    def text(self) -> str:
        out = [
            "OmniHub runbooks: alert digest",
            f"Window: {iso(self.start)} to {iso(self.end)} ({duration((self.end - self.start).total_seconds())})",
            f"Archive: {visible(self.archive)}",
            "",
            f"ALERTS: {self._count_line()}",
            "",
        ]
        if not self.lines:
            out += ["  No alert fired in the window.", ""]
        for line in self.lines:
            times = f" x{line.fired}" if line.fired > 1 else ""
            records = f" ({len(line.records)} records)" if len(line.records) > 1 else ""
            out.append(f"{line.sev:<6} {_label_text(line.alertname)}{times}{records}")
            out.append(f"       {_status_text(line, self.end)}")
            if line.headline:
                out.append(f"       {_label_text(line.headline)}")
            if line.record_id:
                out.append(f"       {line.url or f'runbook show {line.record_id}'}")
            out.append("")
        if self.unreadable:
            out.append(f"Unreadable records (run `runbook verify`): {', '.join(self.unreadable)}")
            out.append("")
        out.append("ERROR BUDGETS" + (f" (Prometheus {self.budgets.where})" if self.budgets.where else ""))
        out.append("")
        if self.budgets.problem:
            out.append(f"  Not measured: {visible(self.budgets.problem)}")
        for s in self.budgets.statuses:
            out.append("  " + _budget_text(s))
        out += ["", "--", "Sent by `runbook digest --send`; `runbook records` and `runbook slo` show the same now."]
        return "\n".join(out) + "\n"

    def _count_line(self) -> str:
        n = len(self.lines)
        records = len({r for line in self.lines for r in line.records})
        return (
            f"{n} alert{'s' if n != 1 else ''} fired, {self.firing} still firing, "
            f"{records} record{'s' if records != 1 else ''}"
        )

    # -- HTML -------------------------------------------------------------------------------
    def html(self) -> str:
        cell = 'valign="top" align="left"'
        table = '<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">'
        rows = []
        for line in self.lines:
            name = esc(one_line(line.alertname))
            if line.fired > 1 or len(line.records) > 1:
                name += f"<br><small>fired {line.fired}x, {len(line.records)} record(s)</small>"
            link = ""
            if line.record_id:
                link = (
                    f'<a href="{esc(line.url)}">{esc(line.record_id)}</a>'
                    if line.url
                    else f"<code>runbook show {esc(line.record_id)}</code>"
                )
            status = "still firing" if line.firing else f"resolved {esc(iso(line.resolved))}"
            colour = "#b00020" if line.firing else "#1b5e20"
            rows.append(
                "<tr>"
                f"<td {cell}>{name}</td>"
                f"<td {cell}>{esc(line.sev)}</td>"
                f"<td {cell}>{esc(iso(line.first_fired) if line.first_fired else 'unknown')}</td>"
                f'<td {cell}><span style="color:{colour}">{status}</span></td>'
                f"<td {cell}>{esc(duration(line.duration_s))}</td>"
                f"<td {cell}>{esc(one_line(line.headline))}</td>"
                f"<td {cell}>{link}</td>"
                "</tr>\n"
            )
        head = "".join(
            f"<th {cell}>{h}</th>" for h in ("Alert", "SEV", "First fired", "Status", "Duration", "Diagnosis", "Record")
        )
        alerts = (
            f"{table}\n<tr>{head}</tr>\n{''.join(rows)}</table>\n" if rows else "<p>No alert fired in the window.</p>"
        )
        unreadable = (
            f"<p>Unreadable records (run <code>runbook verify</code>): {esc(', '.join(self.unreadable))}</p>"
            if self.unreadable
            else ""
        )
        budget_rows = "".join(
            "<tr>" + "".join(f"<td {cell}>{esc(v)}</td>" for v in _budget_cells(s)) + "</tr>\n"
            for s in self.budgets.statuses
        )
        budget_head = "".join(
            f"<th {cell}>{h}</th>" for h in ("SLO", "Objective", "Window", "Budget left", "Burn 1h", "Band", "Policy")
        )
        budgets = (f"<p><b>Not measured:</b> {esc(self.budgets.problem)}</p>" if self.budgets.problem else "") + (
            f"{table}\n<tr>{budget_head}</tr>\n{budget_rows}</table>\n" if budget_rows else ""
        )
        where = f" (Prometheus {esc(self.budgets.where)})" if self.budgets.where else ""
        return (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Alert digest</title></head>'
            '<body style="font-family:sans-serif">'
            "<h2>OmniHub runbooks: alert digest</h2>"
            f"<p>Window: {esc(iso(self.start))} to {esc(iso(self.end))}"
            f" ({esc(duration((self.end - self.start).total_seconds()))})<br>Archive: {esc(self.archive)}</p>"
            f"<h3>Alerts: {esc(self._count_line())}</h3>{alerts}{unreadable}"
            f"<h3>Error budgets{where}</h3>{budgets}"
            "<p><small>Sent by <code>runbook digest --send</code>; <code>runbook records</code> and "
            "<code>runbook slo</code> show the same now.</small></p>"
            "</body></html>\n"
        )


def _label_text(value: Any) -> str:
    """An untrusted value on one line of the text part: white space runs (newlines) as one
    space, control and bidi characters as visible escapes, long values cut."""
    text = visible(one_line(value))
    return text if len(text) <= HEADLINE_CHARS else text[: HEADLINE_CHARS - 1] + "…"


def _status_text(line: Line, end: datetime) -> str:
    first = iso(line.first_fired) if line.first_fired else "unknown"
    took = duration(line.duration_s)
    if line.firing:
        return f"first fired {first}, STILL FIRING; firing time {took} by {iso(end)}"
    return f"first fired {first}, resolved {iso(line.resolved)}; firing time {took}"


def _budget_cells(s: Any) -> list[str]:
    if s.band is None:
        return [s.slo, f"{s.objective:.2%}", s.window, "n/a", "n/a", "-", f"not measured: {s.problem}"]
    left = f"{s.remaining:.1%}" + (" (provisional)" if s.provisional else "")
    burn = s.burns.get("1h")
    return [
        s.slo,
        f"{s.objective:.2%}",
        s.window,
        left,
        "n/a" if burn is None else f"{burn:.1f}x",
        s.band.name.upper(),
        s.band.policy,
    ]


def _budget_text(s: Any) -> str:
    slo_, objective, window, left, burn, band, policy = _budget_cells(s)
    if s.band is None:
        return f"{slo_} ({objective} over {window}): {policy}"
    return f"{slo_} ({objective} over {window}): {left} of the budget left, burn 1h {burn}, {band}: {policy}"


def _record_time(record_id: str) -> datetime | None:
    try:
        return datetime.strptime(record_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _active(f: Firing, start: datetime, end: datetime) -> bool:
    """It fired in the window, or before it and was still firing when the window began."""
    if f.starts is None or f.starts > end:
        return False
    return f.resolved is None or f.resolved >= start


def firings(archive: Any, start: datetime, end: datetime) -> tuple[list[Firing], list[str]]:
    """Every firing active in [start, end] the archive knows of; and the ids of records it
    could not read. One pass over the index; record.json of records started since
    ``start - LOOKBACK`` only."""
    entries = list(archive.entries())
    events: dict[str | None, list[dict[str, Any]]] = {}
    for e in entries:
        if e.get("type") == "event":
            events.setdefault(e.get("record"), []).append(e)
    out: list[Firing] = []
    unreadable: list[str] = []
    for e in entries:
        if e.get("type") != "record":
            continue
        rid = str(e.get("id"))
        started = _record_time(rid)
        # a run starts after its alert fired (queued, retried): one that started after the end may
        # still be of an alert that fired before it
        if started is None or started > end + timedelta(days=1) or started < start - LOOKBACK:
            continue
        try:
            record = _json(archive.read_record_file(rid, "record.json"))
        except (ArchiveError, ValueError, OSError):
            unreadable.append(rid)
            continue
        out += _of_record(rid, record, events.get(rid, []), started)
    for e in events.get(None, []):  # resolutions chained without a record
        if e.get("event") != "resolved-without-record":
            continue
        data = e.get("data") if isinstance(e.get("data"), Mapping) else {}
        out.append(
            Firing(
                fingerprint=str(data.get("fingerprint") or ""),
                alertname=str(data.get("alertname") or "?"),
                starts=when(data.get("starts_at")),
                resolved=when(data.get("ends_at")) or when(e.get("at")),
                headline="no record: its resolution arrived, its firing never reached the receiver",
            )
        )
    seen: set[tuple[str, str | None, str | None]] = set()
    unique = []
    for f in out:  # a record's own alert first, then linked copies of it
        key = (f.fingerprint, iso(f.starts) if f.starts else None, f.record_id)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return [f for f in unique if _active(f, start, end)], unreadable


def _json(raw: bytes) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("record.json is not an object")
    return value


def _resolved_at(events: Iterable[Mapping[str, Any]], fingerprint: str) -> datetime | None:
    for e in events:
        if e.get("event") not in ("resolved", "resolved-without-record"):
            continue
        data = e.get("data") if isinstance(e.get("data"), Mapping) else {}
        if fingerprint and data.get("fingerprint") and data.get("fingerprint") != fingerprint:
            continue
        return when(data.get("ends_at")) or when(e.get("at"))
    return None


def _of_record(rid: str, record: dict[str, Any], events: list[dict[str, Any]], started: datetime) -> list[Firing]:
    alert = record.get("alert")
    if not isinstance(alert, Mapping):
        return []  # a run without an alert (manual, a drill): nothing fired
    labels = alert.get("labels") if isinstance(alert.get("labels"), Mapping) else {}
    fingerprint = str(alert.get("fingerprint") or "")
    sev = str((record.get("incident") or {}).get("sev") or NO_SEV)
    try:
        headline = diagnosis.of(record)["headline"]
    except (KeyError, TypeError, ValueError):
        headline = ""
    own = Firing(
        fingerprint=fingerprint or f"record:{rid}",
        alertname=str(labels.get("alertname") or "?"),
        starts=when(alert.get("startsAt")) or when(record.get("started_at")) or started,
        resolved=_resolved_at(events, fingerprint),
        record_id=rid,
        sev=sev,
        headline=headline,
    )
    members = [m for m in record.get("linked_alerts") or [] if isinstance(m, Mapping)]
    members += [e.get("data") or {} for e in events if e.get("event") == "linked"]
    linked = []
    for m in members:
        fp = str(m.get("fingerprint") or "")
        if not fp or fp == fingerprint:
            continue
        linked.append(
            Firing(
                fingerprint=fp,
                alertname=str(m.get("alertname") or "?"),
                starts=when(m.get("starts_at")) or own.starts,
                resolved=_resolved_at(events, fp),
                record_id=rid,
                sev=sev,
                headline=f"linked to the record of {own.alertname}: {headline}",
            )
        )
    return [own, *linked]


def lines_of(found: list[Firing], end: datetime) -> list[Line]:
    """One line per fingerprint: SEV the worst, first fired the earliest, still firing when any
    firing is, the diagnosis and link of the latest record; the worst SEV, then the earliest, first."""
    groups: dict[str, list[Firing]] = {}
    for f in found:
        groups.setdefault(f.fingerprint or f"{f.alertname}:{f.record_id}", []).append(f)
    lines = []
    for fingerprint, group in groups.items():
        group.sort(key=lambda f: f.starts or end)
        latest = group[-1]
        with_record = [f for f in group if f.record_id]
        newest_record = with_record[-1] if with_record else latest
        firing = any(f.resolved is None for f in group)
        spans = []
        for f in group:
            if f.starts is None:
                continue
            stop = f.resolved or end
            if stop >= f.starts:
                spans.append((f.starts, stop))
        lines.append(
            Line(
                fingerprint=fingerprint,
                alertname=latest.alertname,
                sev=min((f.sev for f in group if f.sev != NO_SEV), default=NO_SEV),
                first_fired=group[0].starts,
                resolved=None if firing else max(f.resolved for f in group if f.resolved),
                duration_s=_covered(spans) if spans else None,
                fired=len({iso(f.starts) for f in group}),
                records=sorted({f.record_id for f in group if f.record_id}),
                headline=newest_record.headline,
                record_id=newest_record.record_id,
            )
        )
    lines.sort(key=lambda line: (line.sev, line.first_fired or end, line.alertname))
    return lines


def _covered(spans: list[tuple[datetime, datetime]]) -> float:
    """Seconds covered by the union of the spans (a linked copy of a firing counts once)."""
    total, reach = 0.0, None
    for a, b in sorted(spans):
        if reach is None or a > reach:
            total += (b - a).total_seconds()
            reach = b
        elif b > reach:
            total += (b - reach).total_seconds()
            reach = b
    return total


# -- the budgets --------------------------------------------------------------------------------
def budgets(settings: Settings, now: datetime) -> Budgets:
    """What `runbook slo` shows, per SLO; a Prometheus that is not configured or fails is a
    ``problem`` in the mail, never an error."""
    from runbook_lib.sre.catalog import Catalog

    if not settings.prometheus.url:
        return Budgets(problem="Prometheus is not configured (set RUNBOOK_PROMETHEUS_URL or prometheus.url)")
    from runbook_lib.clients.prometheus import Prometheus
    from runbook_lib.sre.sli import evaluate

    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    prom = Prometheus.from_settings(settings)
    out = Budgets(where=prom.where)
    try:
        for spec in catalog.slos:
            out.statuses.append(evaluate(prom, spec, settings.metrics, now))
    except SourceError as exc:
        out.statuses = []
        out.problem = one_line(exc)[:500]  # "Prometheus: <where> unreachable (...)", no credentials
    finally:
        prom.close()
    return out


# -- the message --------------------------------------------------------------------------------
def build(settings: Settings, end: datetime, since: timedelta) -> Digest:
    archive = archive_for(settings)
    start = end - since
    found, unreadable = firings(archive, start, end)
    lines = lines_of(found, end)
    for line in lines:
        if line.record_id:
            line.url = record_url(settings, line.record_id)
    return Digest(start, end, lines, budgets(settings, end), archive.location, unreadable)


def recipients(settings: Settings) -> tuple[str, list[str]]:
    """(sender, recipients) from monitoring.email_from / email_to (comma-separated); ConfigError
    for anything that is not a plain address list."""
    m = settings.monitoring
    for name, value in (("email_from", m.email_from), ("email_to", m.email_to)):
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(f"monitoring.{name}: contains a line break")
    sender = [a for _, a in getaddresses([m.email_from]) if a]
    to = [a for _, a in getaddresses([m.email_to]) if a]
    bad = [a for a in [*sender, *to] if a.count("@") != 1 or a.startswith("@") or a.endswith("@")]
    if len(sender) != 1 or not to or bad:
        raise ConfigError(
            f"monitoring.email_from must be one address and monitoring.email_to one or more, comma-separated "
            f"(got from={m.email_from[:80]!r}, to={m.email_to[:200]!r})"
        )
    return sender[0], to


def message(settings: Settings, digest: Digest, now: datetime | None = None) -> EmailMessage:
    """The digest as one email: a text part and its HTML alternative. Headers carry only the
    configured addresses, the date and counts."""
    sender, to = recipients(settings)
    msg = EmailMessage()
    msg["Subject"] = digest.subject()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid("runbook-digest", domain=sender.rsplit("@", 1)[-1])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(digest.text(), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(digest.html(), subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


# -- sending ------------------------------------------------------------------------------------
def smarthost(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"monitoring.smtp_smarthost: expected host:port, got {value[:80]!r}")
    return host, int(port)


def password(settings: Settings) -> str | None:
    """The SMTP password from monitoring.smtp_auth_password_file when that file exists (no
    file: no login). Never logged."""
    path = Path(settings.monitoring.smtp_auth_password_file)
    if not path.is_file():
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"monitoring.smtp_auth_password_file {path}: cannot read it ({reason})") from None
    return secret or None


def send(settings: Settings, msg: EmailMessage, timeout_s: float = SMTP_TIMEOUT_S) -> list[str]:
    """Send ``msg`` through monitoring.smtp_smarthost: implicit TLS on port 465, else STARTTLS
    when monitoring.smtp_require_tls (a server without it is refused before any login), login as
    email_from when the password file exists. Returns the recipients; DigestError when the
    server cannot be reached or refuses (the message never holds the password)."""
    m = settings.monitoring
    host, port = smarthost(m.smtp_smarthost)
    sender, to = recipients(settings)
    secret = password(settings)
    where = f"{host}:{port}"
    context = ssl.create_default_context()
    try:
        smtp = (
            smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=context)
            if port == 465
            else smtplib.SMTP(host, port, timeout=timeout_s)
        )
        with smtp:
            smtp.ehlo()
            if m.smtp_require_tls and port != 465:
                if not smtp.has_extn("starttls"):
                    raise DigestError(
                        f"SMTP server {where} does not offer STARTTLS and monitoring.smtp_require_tls is true"
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if secret:
                smtp.login(sender, secret)
            refused = smtp.send_message(msg, from_addr=sender, to_addrs=to)
    except DigestError:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise DigestError(f"SMTP server {where} refused the login as {sender} (code {exc.smtp_code})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DigestError(f"SMTP server {where} refused every recipient: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        raise DigestError(
            f"SMTP server {where} answered {exc.smtp_code}: {_scrub(exc.smtp_error, secret)[:200]}"
        ) from None
    except ssl.SSLError as exc:
        raise DigestError(f"SMTP server {where}: TLS failed ({exc.reason or type(exc).__name__})") from None
    except (smtplib.SMTPException, OSError) as exc:
        detail = getattr(exc, "strerror", None) or _scrub(str(exc), secret) or type(exc).__name__
        raise DigestError(f"cannot send through SMTP server {where}: {detail[:200]}") from None
    if refused:
        log.warning("digest: %d recipient(s) refused: %s", len(refused), ", ".join(refused))
    log.info("digest sent to %d recipient(s) through %s", len(to) - len(refused), where)
    return [a for a in to if a not in refused]


def _scrub(text: Any, secret: str | None) -> str:
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    value = one_line(visible(value))
    return value.replace(secret, "***") if secret else value
