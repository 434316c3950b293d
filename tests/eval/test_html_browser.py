"""A real headless browser (Debian's Chromium, driven over the DevTools protocol) opens a demo-sized
HTML report: no console errors, no broken images, no network request, a non-blank screenshot."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

from tests.eval._cdp import Page, find_browser

BROWSER = find_browser()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (`make browser` or apt-get install chromium)"),
    pytest.mark.skipif(
        importlib.util.find_spec("websocket") is None, reason="websocket-client not installed (pip install -e '.[dev]')"
    ),
]


@pytest.mark.timeout(120)
def test_report_opens_cleanly_in_a_browser(tmp_path: Path, digits_dir: Path) -> None:
    from PIL import Image

    from curate import api
    from tests.eval._html_fixture import build

    ws, runs = build(tmp_path, digits_dir)
    api.report(runs, tmp_path / "rep", workspace=ws)
    page = Page(str(BROWSER))
    try:
        page.call("Network.enable")
        page.open((tmp_path / "rep" / "report.html").resolve().as_uri())
        n_img, broken = page.evaluate(
            "[document.images.length, [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)]"
        )
        plots = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(d => d.data.length)")
        cards = page.evaluate("document.querySelectorAll('.card').length")
        shot = page.screenshot()
        errors = page.errors()
        requests = [
            e["params"]["request"]["url"]
            for e in page.events
            if e.get("method") == "Network.requestWillBeSent"
            and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:"))
        ]
    finally:
        page.close()
    assert errors == []
    assert n_img >= 4 * 24 and broken == []
    assert cards == 4 and len(plots) == 4 and all(n > 0 for n in plots)
    assert requests == []
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # not blank
