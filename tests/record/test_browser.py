"""The demo's burn-rate record, as on-call opens it: in Debian's headless Chromium at phone width
(390 px) and desk width (1280 px). No horizontal scrolling, a graph that decodes, and the headline
(endpoint and recommended option) above the fold. Screenshots are written to .screenshots/."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import HOME, alert_payload, cli, write_json

SCREENSHOTS = HOME / ".screenshots"


def test_the_burn_rate_record_reads_at_390_and_1280_px(tmp_path: Path, full_env, browser) -> None:
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "--alert", str(payload))
    assert res.returncode == 0, res.stderr
    page = Path(res.stdout.strip())
    SCREENSHOTS.mkdir(exist_ok=True)
    for width, height in ((390, 844), (1280, 900)):
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        browser.get(page.as_uri())
        seen = browser.execute_script(
            """
            const doc = document.documentElement;
            const head = document.querySelector('.rb-headline');
            const imgs = [...document.querySelectorAll('img')];
            return {
              overflow: doc.scrollWidth - doc.clientWidth,
              viewport: window.innerWidth,
              images: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
              headline: head ? head.innerText : '',
              headlineBottom: head ? head.getBoundingClientRect().bottom : 1e9,
              innerHeight: window.innerHeight,
            };
            """
        )
        browser.save_screenshot(str(SCREENSHOTS / f"record-{width}.png"))
        assert seen["viewport"] == width
        assert seen["overflow"] <= 0, f"{width} px: {seen['overflow']} px of horizontal scrolling"
        assert seen["images"] >= 1, "the 5xx ratio graph is embedded and decodes"
        assert "/api/v1/workflows/execute" in seen["headline"] and "Option 1" in seen["headline"]
        assert seen["headlineBottom"] <= seen["innerHeight"], f"{width} px: the headline is below the fold"
