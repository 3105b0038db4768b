"""The rendered report in a real browser: Debian's headless Chromium, driven by Playwright."""

from __future__ import annotations

import pytest
from PIL import Image

from helpers.browser_check import browser_missing, check_report
from difflab.report.render import render_report
from difflab.report.run_tables import write_run_tables
from helpers.report_fixture import FACTS, HEADINGS, TITLE, write_fixture_project

pytestmark = [pytest.mark.browser, pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]


@pytest.fixture
def fixture_report(tmp_path):
    paths = write_fixture_project(tmp_path)
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], renderer="pandoc", variables=FACTS,
                  title=TITLE)
    return paths


def test_fixture_report_loads_whole_in_chromium(fixture_report):
    out = fixture_report["out"]
    screenshot = out.parent / "screenshot.png"
    seen = check_report(out, HEADINGS, screenshot)
    assert seen["images"] == 3 and seen["toc_links"] == len(HEADINGS)
    # a full-page screenshot: as wide as the viewport and taller than it (the page scrolls)
    with Image.open(screenshot) as shot:
        assert shot.width == 1280 and shot.height > 900


def test_check_report_catches_a_broken_page(fixture_report, tmp_path):
    """The check is not vacuous: a missing heading, a dead TOC link, an undecodable image and a remote request fail."""
    page = fixture_report["out"].read_text()
    page = page.replace('href="#b-gif"', 'href="#nowhere"', 1)
    page = page.replace("data:image/gif;base64,", "data:image/gif;base64,AAAA", 1)
    page = page.replace("</main>", '<img src="http://127.0.0.1:9/remote.png" alt=""></main>', 1)
    broken = tmp_path / "broken.html"
    broken.write_text(page)
    with pytest.raises(AssertionError) as info:
        check_report(broken, HEADINGS + ["A heading nobody wrote"], tmp_path / "broken.png")
    message = str(info.value)
    assert "A heading nobody wrote" in message
    assert "#nowhere" in message
    assert "did not decode" in message
    assert "http://127.0.0.1:9/remote.png" in message
