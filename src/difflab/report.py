"""The report: two generated snippets (run manifest, timings) and the render of report/index.qmd to one HTML file.

report/index.qmd is Pandoc markdown with no code cells: fixed method text plus one include line per section,
`{{< include results/report/snippets/<name>.md >}}`, whose snippets other jobs write. Paths in the source and
in the snippets (includes, figures) are relative to the repository root.

Two renderers read the same source:
- Quarto, when `quarto` is on PATH: the expanded source is staged in a temporary Quarto project and rendered
  with `quarto render --to html --embed-resources`; Quarto numbers figures, tables and cross-references.
- pandoc 3.9 from the pypandoc-binary wheel otherwise: this module expands the includes, numbers figures and
  tables ("Figure n:", "Table n:") and turns `@fig-x` / `@tbl-x` into numbered links, then runs pandoc with
  report/template.html, report/style.css, MathML and --embed-resources.

Either way the page names its renderer (meta generator and a footer line), shows profile and device at the top,
carries a banner when the profile is not `default`, and is checked to load nothing from outside itself.

    python -m difflab report snippets --manifest results/manifest.json --benchmarks results/benchmarks \
        --out-dir results/report/snippets
    python -m difflab report render --qmd report/index.qmd --manifest results/manifest.json \
        --out results/report/index.html [--renderer auto|quarto|pandoc]
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from difflab import DifflabError
from difflab.io import atomic_path, read_json, write_text

INCLUDE_LINE = re.compile(r"^\{\{<\s*include\s+(\S+)\s*>\}\}[ \t]*$", re.MULTILINE)
# ![caption](path "title"){#fig-id attrs}; the caption may hold one level of brackets, e.g. "x in [0, 1]"
IMAGE = re.compile(r"!\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^)\s]+)([^)]*)\)(\{[^}]*\})?")
FIGURE_ID = re.compile(r"#(fig-[\w-]+)")
TABLE_CAPTION = re.compile(r"^(:|Table:)[ \t]+(.*?)[ \t]*\{#(tbl-[\w-]+)([^}]*)\}[ \t]*$", re.MULTILINE)
CROSSREF = re.compile(r"(?<![\w.@])@((fig|tbl)-[\w-]*\w)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)(?:[ \t]+\{[^}]*\})?[ \t]*$", re.MULTILINE)
YAML_HEADER = re.compile(r"\A---\n.*?\n(---|\.\.\.)\n", re.DOTALL)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]+)")

FULL_PROFILE = "default"
REQUIRED_MANIFEST_KEYS = ("git_commit", "git_dirty", "profile", "device", "packages", "config_sha256", "seed", "started_utc")
BENCHMARK_COLUMNS = ("s", "max_rss", "cpu_time")


# ----------------------------------------------------------------------------------------------------------------
# source preprocessing


def expand_includes(text: str, root: Path, source: str, depth: int = 0) -> str:
    """Replace every `{{< include path >}}` line by that file's text (path relative to `root`), recursively."""
    if depth > 8:
        raise DifflabError(f"{source}: includes nested more than 8 deep (an include cycle?)")

    def include(match: re.Match) -> str:
        path = root / match.group(1)
        if not path.is_file():
            raise DifflabError(f"{source}: include file {match.group(1)} not found (looked for {path})")
        return expand_includes(path.read_text(encoding="utf-8"), root, match.group(1), depth + 1).rstrip("\n")

    return INCLUDE_LINE.sub(include, text)


def include_paths(qmd: str | Path) -> list[str]:
    """The include targets named in a .qmd (relative to the repository root), in order: a report rule's inputs."""
    return INCLUDE_LINE.findall(Path(qmd).read_text(encoding="utf-8"))


def section_headings(text: str) -> list[str]:
    """The heading texts of a markdown source (attributes such as {#id} removed), in order."""
    body = YAML_HEADER.sub("", text)
    return [m.group(1).strip() for m in HEADING.finditer(body)]


def check_images_exist(text: str, root: Path) -> None:
    """Every local image a figure names must exist, else pandoc would leave a dangling link."""
    for match in IMAGE.finditer(text):
        target = match.group(2)
        if not target.startswith(("data:", "http:", "https:")) and not (root / target).is_file():
            raise DifflabError(f"image {target} referenced in the report does not exist under {root}")


def number_figures_and_tables(text: str) -> str:
    """Number figures and tables in order of appearance, prefix their captions and resolve cross-references.

    `![cap](p){#fig-a}` -> `![Figure 1: cap](p){#fig-a}`, `: cap {#tbl-b}` -> `: Table 1: cap {#tbl-b}`, and
    `@fig-a` -> `[Figure 1](#fig-a)`. A duplicate id or a reference to an unknown id is an error.
    """
    numbers: dict[str, str] = {}  # id -> "Figure 3"
    counts = {"Figure": 0, "Table": 0}

    def register(ident: str, label: str) -> str:
        if ident in numbers:
            raise DifflabError(f"report: the id #{ident} is used twice")
        counts[label] += 1
        numbers[ident] = f"{label} {counts[label]}"
        return numbers[ident]

    def figure(match: re.Match) -> str:
        attrs = match.group(4) or ""
        found = FIGURE_ID.search(attrs)
        if not found:
            return match.group(0)
        caption, path, title = match.group(1), match.group(2), match.group(3)
        return f"![{register(found.group(1), 'Figure')}: {caption}]({path}{title}){attrs}"

    def table(match: re.Match) -> str:
        marker, caption, ident, attrs = match.groups()
        return f"{marker} {register(ident, 'Table')}: {caption} {{#{ident}{attrs}}}"

    text = IMAGE.sub(figure, text)
    text = TABLE_CAPTION.sub(table, text)

    def reference(match: re.Match) -> str:
        ident = match.group(1)
        if ident not in numbers:
            raise DifflabError(f"report: cross-reference @{ident} names no figure or table")
        return f"[{numbers[ident]}](#{ident})"

    return CROSSREF.sub(reference, text)


# ----------------------------------------------------------------------------------------------------------------
# the page frame: run info at the top, renderer at the bottom


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


def run_info_html(manifest: dict, source: Path) -> str:
    """The block under the title: profile, device, commit, config hash, and the reduced-profile banner."""
    profile = _plain(_require(manifest, "profile", source))
    device = _plain(_require(manifest, "device", source))
    if manifest.get("cuda_version"):
        device += f" (CUDA {_plain(manifest['cuda_version'])})"
    commit = _commit_text(manifest, short=True)
    fields = [("Profile", profile), ("Device", device), ("Commit", commit),
              ("Config", _plain(manifest.get("config_sha256", "unknown"))[:12])]
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


def report_title(manifest: dict) -> str | None:
    """config.report.title from the manifest's resolved config, when present."""
    config = manifest.get("config") or {}
    return (config.get("report") or {}).get("title")


# ----------------------------------------------------------------------------------------------------------------
# self-containment check


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


# ----------------------------------------------------------------------------------------------------------------
# renderers


def pandoc_path() -> str:
    try:
        import pypandoc
    except ImportError:
        raise DifflabError("pypandoc-binary is not installed; `pip install pypandoc-binary` (it bundles pandoc)") from None
    return pypandoc.get_pandoc_path()


def pandoc_version(pandoc: str) -> str:
    first = subprocess.run([pandoc, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return first.split()[-1]


def _run(cmd: list[str], cwd: Path, name: str) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.stderr.strip():
        print(result.stderr.rstrip(), file=sys.stderr)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise DifflabError(f"{name} failed (exit {result.returncode}): {last}")


def render_with_pandoc(text: str, out: Path, root: Path, css: Path, template: Path,
                       before: str, after: str, title: str | None, generator: str) -> None:
    """Preprocess the expanded source and run pandoc -> one standalone HTML file at `out`."""
    text = number_figures_and_tables(text)
    pandoc = pandoc_path()
    with tempfile.TemporaryDirectory(prefix="difflab-report-") as tmp:
        tmp = Path(tmp)
        (tmp / "index.md").write_text(text, encoding="utf-8")
        (tmp / "before.html").write_text(before, encoding="utf-8")
        (tmp / "after.html").write_text(after, encoding="utf-8")
        cmd = [
            pandoc, str(tmp / "index.md"), "-f", "markdown", "-t", "html5", "-o", str(out),
            "--standalone", "--embed-resources",  # images, CSS -> data: URIs
            "--mathml",  # equations as MathML: nothing loads from the network
            "--toc", "--toc-depth=3",  # section numbers are written in the headings, so no --number-sections
            "--columns=10000",  # long snippet table rows must not turn into fixed relative column widths
            f"--template={template.resolve()}", f"--css={css.resolve()}", f"--resource-path={root.resolve()}",
            f"--include-before-body={tmp / 'before.html'}", f"--include-after-body={tmp / 'after.html'}",
            "-V", f"generator={generator}",
        ]
        if title:
            cmd += ["-M", f"title={title}"]
        _run(cmd, root, "pandoc")


def render_with_quarto(text: str, out: Path, root: Path, css: Path, before: str, after: str, title: str | None) -> None:
    """Stage the expanded source in a temporary Quarto project and render it with embedded resources."""
    quarto = shutil.which("quarto")
    with tempfile.TemporaryDirectory(prefix="difflab-quarto-") as stage:
        stage = Path(stage)
        (stage / "index.qmd").write_text(text, encoding="utf-8")
        shutil.copyfile(css, stage / "style.css")
        (stage / "before.html").write_text(before, encoding="utf-8")
        (stage / "after.html").write_text(after, encoding="utf-8")
        # figure paths are relative to the repository root: link their top folders (e.g. results/) into the stage
        local = [Path(m.group(2)) for m in IMAGE.finditer(text) if not m.group(2).startswith(("data:", "/"))]
        for top in sorted({path.parts[0] for path in local}):
            if not (stage / top).exists():
                (stage / top).symlink_to((root / top).resolve())
        project = {
            "project": {"type": "default", "render": ["index.qmd"]},
            "format": {"html": {"embed-resources": True, "toc": True, "toc-depth": 3, "number-sections": False,
                                "html-math-method": "mathml", "css": ["style.css"],
                                "include-before-body": ["before.html"], "include-after-body": ["after.html"]}},
        }
        (stage / "_quarto.yml").write_text(json.dumps(project, indent=2), encoding="utf-8")  # JSON is valid YAML
        cmd = [quarto, "render", "index.qmd", "--to", "html", "--embed-resources"]
        if title:
            cmd += ["-M", f"title:{title}"]
        _run(cmd, stage, "quarto render")
        shutil.move(stage / "index.html", out)


def render_report(qmd: str | Path, manifest_path: str | Path, out: str | Path, root: str | Path = ".",
                  renderer: str = "auto", css: str | Path | None = None, template: str | Path | None = None) -> str:
    """Render `qmd` to one self-contained HTML file at `out` (atomically); returns the renderer's description.

    `renderer`: auto (Quarto when on PATH, else pandoc), quarto or pandoc. `css` and `template` default to
    style.css and template.html next to the .qmd.
    """
    qmd, root, out = Path(qmd), Path(root), Path(out)
    css = Path(css) if css else qmd.parent / "style.css"
    template = Path(template) if template else qmd.parent / "template.html"
    if renderer not in {"auto", "quarto", "pandoc"}:
        raise DifflabError(f"--renderer is {renderer!r}; expected auto, quarto or pandoc")
    use_quarto = renderer == "quarto" or (renderer == "auto" and shutil.which("quarto") is not None)
    if use_quarto and shutil.which("quarto") is None:
        raise DifflabError("--renderer quarto but `quarto` is not on PATH; use --renderer auto or pandoc")
    for path in (qmd, css) + (() if use_quarto else (template,)):
        if not path.is_file():
            raise DifflabError(f"{path}: file not found")

    manifest = read_json(manifest_path)
    text = expand_includes(qmd.read_text(encoding="utf-8"), root, str(qmd))
    check_images_exist(text, root)
    title = report_title(manifest)
    before = run_info_html(manifest, Path(manifest_path))
    shown_qmd = qmd.resolve().relative_to(root.resolve()) if qmd.resolve().is_relative_to(root.resolve()) else qmd

    with atomic_path(out) as tmp:
        if use_quarto:
            version = subprocess.run([shutil.which("quarto"), "--version"], capture_output=True, text=True).stdout.strip()
            description = f"Quarto {version}".strip()
            render_with_quarto(text, tmp, root, css, before, footer_html(description, shown_qmd), title)
        else:
            pandoc = pandoc_path()
            why = "requested" if renderer == "pandoc" else "Quarto not on PATH"
            description = f"pandoc {pandoc_version(pandoc)} (pypandoc-binary; {why})"
            render_with_pandoc(text, tmp, root, css, template, before, footer_html(description, shown_qmd), title,
                               generator=description)
        leaks = external_references(tmp.read_text(encoding="utf-8"))
        if leaks:
            raise DifflabError(f"{out}: the page still references {len(leaks)} external resource(s), e.g. {leaks[0][:80]}")
        tmp.chmod(0o644)  # a page to share, not a private temporary file
    return description


# ----------------------------------------------------------------------------------------------------------------
# snippets: run manifest and timings


def _cell(value) -> str:
    return _plain(value).replace("|", "\\|").replace("\n", " ")


def pipe_table(headers: list[str], rows: list[list], align: str) -> str:
    """A pandoc pipe table; `align` has one of l/r per column."""
    rule = {"l": ":---", "r": "---:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def manifest_markdown(manifest: dict, source: Path) -> str:
    """The run manifest as a two-column table, followed by the resolved config in a collapsed block."""
    for key in REQUIRED_MANIFEST_KEYS:
        _require(manifest, key, source)
    packages = manifest["packages"]
    if not isinstance(packages, dict):
        raise DifflabError(f"{source}: key 'packages' must be an object of name -> version")
    rows = [
        ["git commit", _commit_text(manifest, short=False)],
        ["profile", manifest["profile"]],
        ["device", manifest["device"]],
        ["CUDA", manifest.get("cuda_version")],
        ["config sha256", f"`{manifest['config_sha256']}`"],
        ["seed", manifest["seed"]],
        ["started (UTC)", manifest["started_utc"] or "not recorded"],
        ["finished (UTC)", manifest.get("finished_utc") or "not recorded"],
        ["python", manifest.get("python") or "not recorded"],
        ["platform", manifest.get("platform") or "not recorded"],
    ]
    rows += [[f"package {name}", version] for name, version in sorted(packages.items())]
    text = pipe_table(["field", "value"], rows, "ll") + f"\n: Run manifest ({source.name}) {{#tbl-manifest}}\n"
    if manifest.get("config"):
        config = json.dumps(manifest["config"], indent=2, sort_keys=True, default=str)
        text += f"\n<details><summary>Resolved configuration</summary>\n\n```\n{config}\n```\n\n</details>\n"
    return text


def _number(value: str, path: Path, column: str) -> float | None:
    """A benchmark cell as float; Snakemake writes NA (or '-') when it could not measure."""
    if value.strip() in {"NA", "-", ""}:
        return None
    try:
        return float(value)
    except ValueError:
        raise DifflabError(f"{path}: column {column!r} holds {value!r}; expected a number or NA") from None


def read_benchmark(path: Path) -> dict[str, float | None]:
    """Mean of s, max_rss (MB) and cpu_time over the rows of one Snakemake benchmark TSV, plus the row count."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or any(col not in rows[0] for col in BENCHMARK_COLUMNS):
        raise DifflabError(f"{path}: not a Snakemake benchmark TSV (expected a header with {', '.join(BENCHMARK_COLUMNS)} and a row)")
    result: dict[str, float | None] = {"runs": len(rows)}
    for col in BENCHMARK_COLUMNS:
        values = [v for v in (_number(row[col], path, col) for row in rows) if v is not None]
        result[col] = sum(values) / len(values) if values else None
    return result


def _fmt(value: float | None, digits: int) -> str:
    return "NA" if value is None else f"{value:,.{digits}f}"


def timings_markdown(folder: Path) -> str:
    """A table of every benchmark TSV under `folder` (job = path without .tsv), with totals on the last row."""
    if not folder.is_dir():
        raise DifflabError(f"{folder}: benchmark folder not found")
    files = sorted(folder.rglob("*.tsv"))
    if not files:
        return f"No Snakemake benchmark files were found under `{folder.as_posix()}`.\n"
    rows, wall, cpu, rss = [], 0.0, 0.0, []
    for path in files:
        b = read_benchmark(path)
        job = path.relative_to(folder).with_suffix("").as_posix()
        runs = f" (mean of {b['runs']})" if b["runs"] > 1 else ""
        rows.append([f"`{job}`{runs}", _fmt(b["s"], 2), _fmt(b["max_rss"], 1), _fmt(b["cpu_time"], 2)])
        wall += b["s"] or 0.0
        cpu += b["cpu_time"] or 0.0
        rss += [b["max_rss"]] if b["max_rss"] is not None else []
    rows.append([f"**total ({len(files)} jobs)**", f"**{_fmt(wall, 2)}**", f"**peak {_fmt(max(rss) if rss else None, 1)}**",
                 f"**{_fmt(cpu, 2)}**"])
    table = pipe_table(["job", "wall (s)", "max RSS (MB)", "CPU time (s)"], rows, "lrrr")
    return (table + f"\n: Snakemake benchmarks of every job ({folder.as_posix()}); the total sums the wall and CPU "
            "times of all jobs, which may have run in parallel {#tbl-timings}\n")


def write_snippets(manifest_path: str | Path, benchmarks: str | Path, out_dir: str | Path) -> list[Path]:
    """Write manifest.md and timings.md into `out_dir`; returns their paths."""
    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    manifest = read_json(manifest_path)
    if not isinstance(manifest, dict):
        raise DifflabError(f"{manifest_path}: expected a JSON object")
    outputs = {out_dir / "manifest.md": manifest_markdown(manifest, manifest_path),
               out_dir / "timings.md": timings_markdown(Path(benchmarks))}
    for path, text in outputs.items():
        write_text(path, text)
    return list(outputs)


# ----------------------------------------------------------------------------------------------------------------
# command line


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab report", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)

    snippets = sub.add_parser("snippets", help="write manifest.md and timings.md")
    snippets.add_argument("--manifest", default="results/manifest.json")
    snippets.add_argument("--benchmarks", default="results/benchmarks")
    snippets.add_argument("--out-dir", default="results/report/snippets")

    render = sub.add_parser("render", help="render the report to one self-contained HTML file")
    render.add_argument("--qmd", default="report/index.qmd")
    render.add_argument("--manifest", default="results/manifest.json")
    render.add_argument("--out", default="results/report/index.html")
    render.add_argument("--renderer", choices=["auto", "quarto", "pandoc"], default="auto")
    render.add_argument("--root", default=".", help="repository root: includes and figure paths are relative to it")
    render.add_argument("--css", default=None, help="default: style.css next to the .qmd")
    render.add_argument("--template", default=None, help="pandoc HTML template; default: template.html next to the .qmd")

    args = parser.parse_args(argv)
    if args.action == "snippets":
        for path in write_snippets(args.manifest, args.benchmarks, args.out_dir):
            print(f"wrote {path}")
    else:
        description = render_report(args.qmd, args.manifest, args.out, args.root, args.renderer, args.css, args.template)
        print(f"wrote {args.out} ({description})")
