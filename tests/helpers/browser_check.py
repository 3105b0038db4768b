"""Open a rendered report in Debian's headless Chromium (driven by Playwright) and check what a reader would see.

    from helpers.browser_check import check_report
    check_report("results/report/index.html", expected_headings, "results/report/screenshot.png")

Needs /usr/bin/chromium (scripts/install_browser.sh) and the pip package `playwright`; no browser is downloaded.
"""

from __future__ import annotations

import os

import tempfile
from pathlib import Path
from urllib.parse import unquote

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_SCHEMES = ("file:", "data:")


def browser_missing() -> str | None:
    """Why the browser check cannot run here, or None when it can.

    In CI (CI=true, where .ci/run installs Chromium) a missing browser is an error, not a reason to skip:
    the tests then fail with this reason instead of skipping.
    """
    reason = _browser_missing()
    if reason and os.environ.get("CI") == "true":
        raise RuntimeError(f"CI must run the browser check, but {reason}")
    return reason


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found; run scripts/install_browser.sh (as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed"
    return None


# Decode every image (waits for it) and list those that failed or have no pixels.
BROKEN_IMAGES_JS = """async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 80));
}"""
HEADINGS_JS = "() => Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6'))" \
              ".map(h => h.textContent.replace(/\\s+/g, ' ').trim())"
TOC_LINKS_JS = "() => Array.from(document.querySelectorAll('#TOC a, nav[role=doc-toc] a')).map(a => a.getAttribute('href'))"
IDS_JS = "() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"


def check_report(html_path, expected_headings, screenshot_path, timeout_ms: int = 120_000) -> dict:
    """Load `html_path` from file:// in headless Chromium and assert that a reader sees a whole page.

    Asserts: every <img> decoded (naturalWidth > 0); no console errors or page errors; no request other than
    file:// and data:; every heading in `expected_headings` present (whitespace-normalised text); at least one
    table-of-contents link, each resolving to an element id. Saves a full-page screenshot to `screenshot_path`.
    Raises AssertionError listing every problem; returns counts of what was checked.
    """
    from playwright.sync_api import sync_playwright

    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise AssertionError(f"{html_path}: report not found")
    console_errors: list[str] = []
    requests: list[str] = []

    with tempfile.TemporaryDirectory(prefix="difflab-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        try:
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: console_errors.append(f"page error: {exc}"))
            page.goto(html_path.as_uri(), wait_until="load", timeout=timeout_ms)
            broken = page.evaluate(BROKEN_IMAGES_JS)
            image_count = page.evaluate("() => document.images.length")
            headings = page.evaluate(HEADINGS_JS)
            toc_links = page.evaluate(TOC_LINKS_JS)
            ids = set(page.evaluate(IDS_JS))
            Path(screenshot_path).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot_path), full_page=True, timeout=timeout_ms)
        finally:
            context.close()

    problems = []
    if broken:
        problems.append(f"{len(broken)} image(s) did not decode: {broken[:3]}")
    if console_errors:
        problems.append(f"console errors: {console_errors[:3]}")
    remote = [url for url in requests if not url.startswith(LOCAL_SCHEMES)]
    if remote:
        problems.append(f"network requests beyond file:// and data: {remote[:3]}")
    missing = [h for h in expected_headings if " ".join(h.split()) not in headings]
    if missing:
        problems.append(f"headings missing from the page: {missing}")
    if not toc_links:
        problems.append("no table-of-contents links")
    dangling = [href for href in toc_links if not (href and href.startswith("#") and unquote(href[1:]) in ids)]
    if dangling:
        problems.append(f"table-of-contents links that resolve to no element: {dangling[:5]}")
    if problems:
        raise AssertionError(f"{html_path}:\n  " + "\n  ".join(problems))
    return {"images": image_count, "headings": len(headings), "toc_links": len(toc_links), "requests": len(requests)}
