"""The page frame around the rendered text: run info at the top, renderer at the bottom, and the check that
the page loads nothing from outside itself."""

from __future__ import annotations

import html
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from difflab import DifflabError

CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]+)")
FULL_PROFILE = "default"
REQUIRED_MANIFEST_KEYS = ("git_commit", "git_dirty", "profile", "device", "packages", "config_sha256", "seed", "started_utc")


def _require(manifest: dict, key: str, source: Path):
    if key not in manifest:
        raise DifflabError(f"{source}: missing key {key!r}")
    return manifest[key]


def _plain(value) -> str:
    """A manifest value as one line of text."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _commit_text(manifest: dict, short: bool) -> str:
    """`abc123… (dirty)`; git_commit is null outside a git checkout."""
    commit = manifest.get("git_commit")
    if not commit:
        return "unknown (not a git checkout)"
    text = str(commit)[:12] if short else f"`{commit}`"
    return text + (" (dirty: uncommitted changes)" if manifest.get("git_dirty") else "")


def run_wall_time(manifest: dict) -> str | None:
    """The wall time of the Snakemake invocation that wrote the manifest (finished_utc - started_utc, ISO 8601
    strings) as e.g. '7 min 12 s'; None when either is missing or unreadable, or the clock went backwards."""
    try:
        seconds = (datetime.fromisoformat(manifest["finished_utc"]) - datetime.fromisoformat(manifest["started_utc"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None
    if seconds < 0:
        return None
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def run_info_html(manifest: dict, source: Path) -> str:
    """The block under the title: profile, device, the run's wall time (from snakemake's start to the manifest, the
    last job before the render), commit, config hash, and the reduced-profile banner."""
    profile = _plain(_require(manifest, "profile", source))
    device = _plain(_require(manifest, "device", source))
    if manifest.get("cuda_version"):
        device += f" (CUDA {_plain(manifest['cuda_version'])})"
    commit = _commit_text(manifest, short=True)
    fields = [("Profile", profile), ("Device", device), ("Wall time", run_wall_time(manifest) or "not recorded"),
              ("Commit", commit), ("Config", _plain(manifest.get("config_sha256", "unknown"))[:12])]
    spans = "\n".join(f'<span class="run-field"><span class="run-key">{k}</span> {html.escape(v)}</span>' for k, v in fields)
    block = f'<div class="run-info">\n{spans}\n</div>\n'
    if profile != FULL_PROFILE:
        block += (f'<div class="banner" role="note"><strong>Reduced profile “{html.escape(profile)}”</strong> — '
                  "these numbers are not the full experiment.</div>\n")
    return block


def footer_html(renderer: str, qmd: Path) -> str:
    return (f'<footer class="render-info">Rendered by <span class="renderer">{html.escape(renderer)}</span> '
            f"from <code>{html.escape(qmd.as_posix())}</code>. "
            '<a href="#top">Back to top</a></footer>\n')


class _References(HTMLParser):
    """Collects every src/href-like attribute value and every CSS url(...) of a page."""

    ATTRIBUTES = {"src", "href", "srcset", "poster", "data", "action", "formaction", "background"}

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name == "srcset":
                self.found += re.findall(r"(?:^|,)\s*(\S+)", value)  # URLs; a data: URI keeps its inner comma
            elif name in self.ATTRIBUTES:
                self.found.append(value.strip())
            elif name == "style":
                self.found += CSS_URL.findall(value)

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.found += CSS_URL.findall(data)


def external_references(page: str) -> list[str]:
    """Every src/href/url() in an HTML page that is neither an in-page `#anchor` nor a `data:` URI."""
    parser = _References()
    parser.feed(page)
    return [ref for ref in parser.found if not ref.startswith(("#", "data:"))]
