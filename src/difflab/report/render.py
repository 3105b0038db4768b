"""Render the report source to one self-contained HTML page: Quarto where installed, else pandoc.

Two renderers read the same source:
- Quarto, when `quarto` is on PATH: the source (includes expanded) is staged in a temporary Quarto project with
  the variables as `_variables.yml` and rendered with `quarto render --to html --embed-resources`; Quarto
  expands `{{< var >}}`, numbers figures, tables and cross-references.
- pandoc from the pypandoc-binary wheel otherwise: `difflab.report.markdown` expands the variables, numbers
  figures and tables ("Figure n:", "Table n:") and turns `@fig-x` / `@tbl-x` into numbered links, then pandoc
  runs with report/template.html, report/style.css, MathML and --embed-resources.

Either way the page names its renderer (meta generator and a footer line), shows profile and device at the top,
carries a banner when the profile is not `default`, and is checked to load nothing from outside itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from difflab import DifflabError
from difflab.io import atomic_path, read_json
from difflab.report.markdown import IMAGE, check_images_exist, expand_includes, number_figures_and_tables
from difflab.report.page import external_references, footer_html, run_info_html


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


def render_with_quarto(text: str, out: Path, root: Path, css: Path, before: str, after: str, title: str | None,
                       variables: dict) -> None:
    """Stage the source (includes expanded) and its variables in a temporary Quarto project and render it with
    embedded resources."""
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
        (stage / "_variables.yml").write_text(json.dumps(variables, indent=2), encoding="utf-8")
        cmd = [quarto, "render", "index.qmd", "--to", "html", "--embed-resources"]
        if title:
            cmd += ["-M", f"title:{title}"]
        _run(cmd, stage, "quarto render")
        shutil.move(stage / "index.html", out)


def render_report(qmd: str | Path, manifest_path: str | Path, out: str | Path, root: str | Path = ".",
                  renderer: str = "auto", css: str | Path | None = None, template: str | Path | None = None,
                  variables: dict | None = None, title: str | None = None) -> str:
    """Render `qmd` to one self-contained HTML file at `out` (atomically); returns the renderer's description.

    `renderer`: auto (Quarto when on PATH, else pandoc), quarto or pandoc. `css` and `template` default to
    style.css and template.html next to the .qmd. `variables`: the nested values of `{{< var >}}` shortcodes
    (difflab.report.facts); `title`: config key `report.title`. Raises DifflabError for a missing file, include
    or variable, a failed renderer, or a page that references anything outside itself.
    """
    variables = variables or {}
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
    source = qmd.read_text(encoding="utf-8")
    text = expand_includes(source, root, str(qmd))  # Quarto expands the variables itself
    # also checks that every variable is defined, naming the file that uses an undefined one
    expanded = expand_includes(source, root, str(qmd), variables=variables)
    check_images_exist(expanded, root)
    before = run_info_html(manifest, Path(manifest_path))
    shown_qmd = qmd.resolve().relative_to(root.resolve()) if qmd.resolve().is_relative_to(root.resolve()) else qmd

    with atomic_path(out) as tmp:
        if use_quarto:
            version = subprocess.run([shutil.which("quarto"), "--version"], capture_output=True, text=True).stdout.strip()
            description = f"Quarto {version}".strip()
            render_with_quarto(text, tmp, root, css, before, footer_html(description, shown_qmd), title, variables)
        else:
            pandoc = pandoc_path()
            why = "requested" if renderer == "pandoc" else "Quarto not on PATH"
            description = f"pandoc {pandoc_version(pandoc)} (pypandoc-binary; {why})"
            render_with_pandoc(expanded, tmp, root, css, template, before, footer_html(description, shown_qmd), title,
                               generator=description)
        leaks = external_references(tmp.read_text(encoding="utf-8"))
        if leaks:
            raise DifflabError(f"{out}: the page still references {len(leaks)} external resource(s), e.g. {leaks[0][:80]}")
        tmp.chmod(0o644)  # a page to share, not a private temporary file
    return description
