"""One presentation of a finding: columns for terminals, inline for chat and pages, escaped HTML."""

from __future__ import annotations

from runbook_lib.core.present import esc, finding_html, finding_text

FINDING = {"step": "Step 1", "check": "5xx rate", "verdict": "unchecked", "summary": "Redis: <not> configured"}


def test_terminal_lines_put_the_verdict_in_a_column() -> None:
    assert finding_text(FINDING) == "NOT CHECKED [Step 1] 5xx rate: Redis: <not> configured"
    assert finding_text({**FINDING, "verdict": "ok"}, step=False) == "OK          5xx rate: Redis: <not> configured"


def test_messages_are_inline_and_cut() -> None:
    assert finding_text(FINDING, step=False, inline=True) == "NOT CHECKED: 5xx rate: Redis: <not> configured"
    cut = finding_text({**FINDING, "summary": "x" * 500}, step=False, limit=200, inline=True)
    assert cut.endswith("x...") and len(cut.split(": ", 2)[2]) == 200


def test_html_escapes_every_value() -> None:
    html = finding_html({**FINDING, "check": '<script>"'})
    assert "<script>" not in html and "&lt;script&gt;&quot;" in html and "&lt;not&gt;" in html
    assert esc(None) == "" and esc("a&b") == "a&amp;b"
