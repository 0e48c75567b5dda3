"""`runbook digest`, the daily email of every alert that fired (runbook_lib.notify.digest), sent to
a real SMTP server on loopback (aiosmtpd, in this process): what fired and resolved within the
day is in it, what ended before the day is not, several records of one alert are one line, a
hostile label is escaped and never reaches a header, the mail has a text part and an HTML
alternative with the configured From/To, STARTTLS and the login from the password file work and
the password never shows, a server that is down is exit 1, bad configuration exit 2, --print sends
nothing. Records are written with the archive's own API (no runbook runs). Pure: loopback only,
except the last test, which measures the budgets on the session's real Prometheus."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import json
import shutil
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from runbook_lib.core.errors import ConfigError
from runbook_lib.notify import digest
from runbook_lib.record.archive import LocalArchive
from runbook_lib.sandbox import services
from runbook_lib.sre import incident
from tests.helpers import HOME, cli

SEV1 = {"HighErrorBudgetBurnRate"}
HOSTILE = "<script>alert('x')</script>\r\nBcc: victim@evil.example\nSubject: pwned"
PASSWORD = "smtp-pass-0123456789-do-not-leak"  # the test server's own
FROM, TO = "digest@runbooks.test", "sre@team.test, oncall@team.test"


# -- a real SMTP server on loopback ---------------------------------------------------------------
class Inbox:
    """aiosmtpd's handler: every message it accepted, as (envelope sender, recipients, message)."""

    def __init__(self) -> None:
        self.mails: list[tuple[str, list[str], EmailMessage]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(inbox: Inbox, **kwargs: Any) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    return controller


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A plain SMTP server (no STARTTLS) on loopback."""
    inbox = Inbox()
    controller = _serve(inbox)
    yield inbox, controller.port
    controller.stop()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server that requires STARTTLS (a self-signed certificate the client trusts through
    SSL_CERT_FILE) and a login with PASSWORD as FROM."""
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    inbox = Inbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (FROM.encode(), PASSWORD.encode())
        if ok:
            inbox.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

    controller = _serve(
        inbox,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
        auth_required=True,
    )
    yield inbox, controller.port
    controller.stop()


# -- settings and records -------------------------------------------------------------------------
def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: int, **monitoring: Any) -> Path:
    """An environment of the test's own: the digest to 127.0.0.1:port, no Prometheus, record links
    on a base URL; ``monitoring`` overrides. Returns the archive's directory."""
    home = tmp_path / "home"
    shutil.copytree(HOME / "parameters", home / "parameters")
    settings = {
        "smtp_smarthost": f"127.0.0.1:{port}",
        "smtp_require_tls": False,
        "email_from": FROM,
        "email_to": TO,
        "smtp_auth_password_file": str(tmp_path / "no-such-password-file"),
        **monitoring,
    }
    env = {"monitoring": settings, "notify": {"record_base_url": "https://runbooks.test"}}
    (home / "parameters" / "environments" / "digesttest.yaml").write_text(json.dumps(env))
    archive = tmp_path / "executed"
    for var, value in {
        "RUNBOOK_HOME": str(home),
        "RUNBOOK_RUNBOOKS_DIR": str(HOME / "runbooks"),
        "RUNBOOK_ENV": "digesttest",
        "RUNBOOK_ARCHIVE": str(archive),
    }.items():
        monkeypatch.setenv(var, value)
    return archive


def add_record(
    root: Path,
    n: int,
    alertname: str,
    fired: datetime,
    *,
    fingerprint: str,
    resolved: datetime | None = None,
    severity: str = "critical",
    labels: dict[str, str] | None = None,
) -> str:
    """A record committed through the archive API, as a worker's run ends, and its resolution
    chained as the worker chains it."""
    archive = LocalArchive(root)
    started = fired + timedelta(seconds=40)
    rid = f"{started:%Y%m%dT%H%M%SZ}-high-error-rate-{n:08x}"
    alert = {
        "labels": {"alertname": alertname, "severity": severity, **(labels or {})},
        "startsAt": fired.isoformat(),
        "fingerprint": fingerprint,
    }
    record = {
        "id": rid,
        "runbook": "high-error-rate",
        "status": "succeeded",
        "started_at": started.isoformat(),
        "alert": alert,
        "findings": [{"check": "Error rate", "verdict": "critical", "summary": "5xx at 12%", "role": "symptom"}],
        "actions": [],
        "incident": incident.for_alert(alert, SEV1),
    }
    staging = archive.staging_dir(rid)
    (staging / "notebook.ipynb").write_text("{}")
    (staging / "record.html").write_text("<html><body>record</body></html>")
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)
    if resolved is not None:
        archive.append_event(
            rid,
            "resolved",
            {
                "alertname": alertname,
                "fingerprint": fingerprint,
                "starts_at": fired.isoformat(),
                "ends_at": resolved.isoformat(),
                "duration_s": (resolved - fired).total_seconds(),
                "received_at": resolved.isoformat(),
            },
        )
    return rid


@pytest.fixture
def day(tmp_path: Path) -> dict[str, Any]:
    """The archive of a day (relative to now): what fired and resolved within it, twice for one
    alert; one still firing; one that ended the day before; a hostile label; a resolution whose
    firing never reached the receiver."""
    now = datetime.now(UTC)
    root = tmp_path / "executed"
    ids = {
        "resolved_today_1": add_record(
            root,
            1,
            "HighErrorBudgetBurnRate",
            now - timedelta(hours=10),
            fingerprint="f1",
            resolved=now - timedelta(hours=9),
        ),
        "resolved_today_2": add_record(
            root,
            2,
            "HighErrorBudgetBurnRate",
            now - timedelta(hours=3),
            fingerprint="f1",
            resolved=now - timedelta(hours=2, minutes=30),
        ),
        "firing": add_record(
            root, 3, "DatabaseConnectionsHigh", now - timedelta(minutes=50), fingerprint="f3", severity="warning"
        ),
        "yesterday": add_record(
            root, 4, "RedisMemoryHigh", now - timedelta(hours=30), fingerprint="f4", resolved=now - timedelta(hours=26)
        ),
        "hostile": add_record(
            root,
            5,
            HOSTILE,
            now - timedelta(hours=5),
            fingerprint="f5",
            resolved=now - timedelta(hours=4),
            severity="warning",
            labels={"instance": HOSTILE},
        ),
    }
    LocalArchive(root).append_event(
        None,
        "resolved-without-record",
        {
            "alertname": "KafkaLagHigh",
            "fingerprint": "f6",
            "starts_at": (now - timedelta(hours=6)).isoformat(),
            "ends_at": (now - timedelta(hours=5, minutes=45)).isoformat(),
            "duration_s": 900.0,
        },
    )
    return ids


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    page = msg.get_body(("html",))
    assert text is not None and page is not None, "the mail needs a text part and an HTML part"
    return text.get_content(), page.get_content()


def all_headers(msg: EmailMessage) -> str:
    return "\n".join(f"{k}: {v}" for part in msg.walk() for k, v in part.items())


# -- the tests --------------------------------------------------------------------------------------
def test_the_digest_lists_every_alert_of_the_day_resolved_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int], day: dict[str, str]
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port)
    res = cli("digest", "--send", "--at", "now")
    assert res.returncode == 0, res.stderr
    assert "sent: the digest of 4 alert(s), 1 still firing" in res.stdout
    assert len(inbox.mails) == 1
    sender, rcpts, msg = inbox.mails[0]
    assert (sender, rcpts) == (FROM, ["sre@team.test", "oncall@team.test"])
    assert msg["From"] == FROM and msg["To"] == "sre@team.test, oncall@team.test"
    assert msg["Subject"] == f"Alert digest {datetime.now(UTC):%Y-%m-%d}: 4 fired, 1 still firing"
    assert msg.get_content_type() == "multipart/alternative"
    text, page = parts(msg)
    for body in (text, page):
        # fired and resolved within the day, twice (two records): one line with the count
        assert body.count("HighErrorBudgetBurnRate") == 1
        assert day["resolved_today_2"] in body and day["resolved_today_1"] not in body  # the latest record
        assert "SEV-1" in body and "SEV-3" in body
        assert "DatabaseConnectionsHigh" in body and "KafkaLagHigh" in body
        # ended the day before: not in it
        assert "RedisMemoryHigh" not in body and day["yesterday"] not in body
        assert "Prometheus is not configured" in body
        assert f"https://runbooks.test/records/{day['firing']}" in body
    assert "x2 (2 records)" in text and "fired 2x, 2 record(s)" in page
    assert "STILL FIRING" in text and "still firing" in page
    line = text[text.index("HighErrorBudgetBurnRate") :].split("\n\n", 1)[0]
    assert "resolved" in line and "firing time 1h30m" in line, line  # 1 h, then 30 min
    assert "CRITICAL — 5xx at 12%" in line  # the diagnosis headline
    assert "4 alerts fired, 1 still firing, 4 records" in text


def test_a_hostile_label_is_escaped_and_never_reaches_a_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int], day: dict[str, str]
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port)
    assert cli("digest", "--send", "--at", "now").returncode == 0
    _, rcpts, msg = inbox.mails[0]
    assert "victim@evil.example" not in rcpts
    headers = all_headers(msg)
    for piece in ("script", "victim", "pwned", "evil"):
        assert piece not in headers.lower()
    assert msg["Subject"].count("\n") == 0
    text, page = parts(msg)
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "victim@evil.example" in page  # shown, as text, in a cell
    # the text part: the label on one line, its line breaks folded
    assert not any(line.startswith(("Bcc:", "Subject:")) for line in text.splitlines())
    assert "<script>alert('x')</script> Bcc: victim@evil.example Subject: pwned" in text


def test_print_writes_the_mail_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int], day: dict[str, str]
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port)
    res = cli("digest", "--print", "--at", "now")
    assert res.returncode == 0, res.stderr
    assert inbox.mails == []
    msg = email.message_from_string(res.stdout, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["To"] == "sre@team.test, oncall@team.test"
    text, page = parts(msg)
    assert "HighErrorBudgetBurnRate" in text and "<table" in page


def test_smtp_down_is_exit_1_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, day: dict[str, str]
) -> None:
    port = _free_port()  # nothing listens there
    configure(tmp_path, monkeypatch, port)
    res = cli("digest", "--send", "--at", "now")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"runbook: digest not sent: cannot send through SMTP server 127.0.0.1:{port}: Connection refused"
    )


def test_starttls_and_the_login_from_the_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tls_smtp: tuple[Inbox, int], day: dict[str, str]
) -> None:
    inbox, port = tls_smtp
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    configure(tmp_path, monkeypatch, port, smtp_require_tls=True, smtp_auth_password_file=str(secret))
    res = cli("digest", "--send", "--at", "now", "-v")
    assert res.returncode == 0, res.stderr
    assert inbox.logins == [FROM] and len(inbox.mails) == 1
    assert PASSWORD not in res.stdout + res.stderr

    secret.write_text("not-the-password-0123456789")
    res = cli("digest", "--send", "--at", "now", "-v")
    assert res.returncode == 1
    assert f"SMTP server 127.0.0.1:{port} refused the login as {FROM} (code 535)" in res.stderr
    assert "not-the-password" not in res.stdout + res.stderr and len(inbox.mails) == 1

    secret.unlink()  # no password file: no login, which this server refuses
    res = cli("digest", "--send", "--at", "now")
    assert res.returncode == 1 and "answered 530" in res.stderr, res.stderr


def test_require_tls_refuses_a_server_without_starttls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int], day: dict[str, str]
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port, smtp_require_tls=True)
    res = cli("digest", "--send", "--at", "now")
    assert res.returncode == 1 and inbox.mails == []
    assert "does not offer STARTTLS and monitoring.smtp_require_tls is true" in res.stderr


@pytest.mark.parametrize(
    ("monitoring", "args", "why"),
    [
        ({"smtp_smarthost": "smtp.example.test"}, [], "monitoring.smtp_smarthost: expected host:port"),
        ({"email_to": "sre@team.test\r\nBcc: x@evil.test"}, [], "monitoring.email_to: contains a line break"),
        ({"email_from": "not an address"}, [], "monitoring.email_from must be one address"),
        ({}, ["--since", "a while"], "--since"),
        ({}, ["--at", "25:00"], "--at '25:00': expected HH:MM (UTC) or 'now'"),
    ],
    ids=["smarthost", "header-injection", "sender", "since", "at"],
)
def test_bad_configuration_is_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: tuple[Inbox, int],
    monitoring: dict[str, Any],
    args: list[str],
    why: str,
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port, **monitoring)
    res = cli("digest", "--send", *args)
    assert res.returncode == 2 and why in res.stderr, res.stderr
    assert inbox.mails == []


def test_neither_send_nor_print_is_a_usage_error() -> None:
    res = cli("digest")
    assert res.returncode == 2 and "one of the arguments --send --print is required" in res.stderr
    helped = cli("digest", "--help")
    assert helped.returncode == 0
    for words in ("exit codes: 0 sent", "0 8 * * *  runbook digest --send", "STARTTLS", "--at"):
        assert words in helped.stdout


def test_the_window_ends_at_the_latest_digest_time() -> None:
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert digest.window_end("08:00", at("2026-12-07T08:00:40")) == at("2026-12-07T08:00:00")
    assert digest.window_end("08:00", at("2026-12-07T09:10:00")) == at("2026-12-07T08:00:00")  # a retry
    assert digest.window_end("08:00", at("2026-12-07T07:59:59")) == at("2026-12-06T08:00:00")
    assert digest.window_end("now", at("2026-12-07T07:59:59")) == at("2026-12-07T07:59:59")
    with pytest.raises(ConfigError):
        digest.window_end("8am", at("2026-12-07T07:59:59"))


def test_the_window_decides_what_is_in_it(tmp_path: Path) -> None:
    """Fired before the window and still firing in it: in; resolved just before it: out; fired
    after it (a digest printed later for an earlier day): out."""
    end = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    root = tmp_path / "executed"
    add_record(root, 1, "CarriedOver", end - timedelta(hours=30), fingerprint="a")
    add_record(
        root,
        2,
        "EndedBefore",
        end - timedelta(hours=30),
        fingerprint="b",
        resolved=end - timedelta(hours=24, seconds=1),
    )
    add_record(root, 3, "Later", end + timedelta(minutes=5), fingerprint="c")
    add_record(root, 4, "Edge", end - timedelta(hours=25), fingerprint="d", resolved=end - timedelta(hours=24))
    found, unreadable = digest.firings(LocalArchive(root), end - timedelta(hours=24), end)
    assert sorted(f.alertname for f in found) == ["CarriedOver", "Edge"] and unreadable == []
    lines = digest.lines_of(found, end)
    carried = next(line for line in lines if line.alertname == "CarriedOver")
    assert carried.firing and carried.duration_s == 30 * 3600


def test_an_alert_linked_to_a_group_record_is_a_line_of_its_own(tmp_path: Path) -> None:
    """An alert of the same group that was not run again (a `linked` event on the record) fired
    too: it is listed, with the group record's link and its own resolution."""
    end = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    root = tmp_path / "executed"
    rid = add_record(root, 1, "HighErrorBudgetBurnRate", end - timedelta(hours=2), fingerprint="g1")
    fired = end - timedelta(hours=2, minutes=-1)
    archive = LocalArchive(root)
    archive.append_event(
        rid, "linked", {"alertname": "ElevatedErrorRate", "fingerprint": "g2", "starts_at": fired.isoformat()}
    )
    ends = end - timedelta(hours=1)
    archive.append_event(
        rid,
        "resolved",
        {
            "alertname": "ElevatedErrorRate",
            "fingerprint": "g2",
            "starts_at": fired.isoformat(),
            "ends_at": ends.isoformat(),
        },
    )
    found, _ = digest.firings(archive, end - timedelta(hours=24), end)
    lines = {line.alertname: line for line in digest.lines_of(found, end)}
    assert set(lines) == {"HighErrorBudgetBurnRate", "ElevatedErrorRate"}
    linked = lines["ElevatedErrorRate"]
    assert linked.record_id == rid and linked.resolved == ends and linked.duration_s == 59 * 60
    assert linked.headline.startswith("linked to the record of HighErrorBudgetBurnRate: CRITICAL")
    assert lines["HighErrorBudgetBurnRate"].firing  # the group's own alert still fires


def test_budgets_with_prometheus_down_are_said_in_the_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int], day: dict[str, str]
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port)
    down = f"http://127.0.0.1:{_free_port()}"
    res = cli("digest", "--send", "--at", "now", env={"RUNBOOK_PROMETHEUS_URL": down})
    assert res.returncode == 0, res.stderr
    text, page = parts(inbox.mails[0][2])
    assert f"Not measured: Prometheus: {down} unreachable" in text
    assert "Not measured:" in page and "HighErrorBudgetBurnRate" in text


def test_budgets_measured_on_a_real_prometheus(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: tuple[Inbox, int],
    day: dict[str, str],
    prometheus: services.Service,
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port)
    res = cli("digest", "--send", "--at", "now", env={"RUNBOOK_PROMETHEUS_URL": prometheus.url})
    assert res.returncode == 0, res.stderr
    text, page = parts(inbox.mails[0][2])
    budgets = text[text.index("ERROR BUDGETS") :]
    assert f"(Prometheus {prometheus.url})" in budgets and "Not measured" not in budgets
    assert "of the budget left" in budgets and "api-availability" in budgets
    assert "Budget left" in page


def test_no_alert_in_the_window_still_sends_a_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    configure(tmp_path, monkeypatch, port)
    assert cli("digest", "--send").returncode == 0
    msg = inbox.mails[0][2]
    assert msg["Subject"].endswith(": 0 fired")
    assert "No alert fired in the window." in parts(msg)[0]
