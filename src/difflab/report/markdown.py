"""The report source as text: includes, variables, figure and table numbering (no rendering, no I/O but reads).

report/index.qmd is Pandoc markdown with no code cells. It includes the section files `report/sections/*.qmd`
(all prose and every equation, once) and generated tables with `{{< include path >}}` lines, and takes every
computed number from a variable, `{{< var part_a.sampling.gamma >}}`, whose values the experiments wrote
(`difflab.report.facts`). Quarto expands both shortcodes itself; for the pandoc path this module does, with the
same syntax, so both renderers give the same page. Paths are relative to the repository root.
"""

from __future__ import annotations

import re
from pathlib import Path

from difflab import DifflabError

INCLUDE_LINE = re.compile(r"^\{\{<\s*include\s+(\S+)\s*>\}\}[ \t]*$", re.MULTILINE)
# ![caption](path "title"){#fig-id attrs}; the caption may hold one level of brackets, e.g. "x in [0, 1]"
IMAGE = re.compile(r"!\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(([^)\s]+)([^)]*)\)(\{[^}]*\})?")
FIGURE_ID = re.compile(r"#(fig-[\w-]+)")
TABLE_CAPTION = re.compile(r"^(:|Table:)[ \t]+(.*?)[ \t]*\{#(tbl-[\w-]+)([^}]*)\}[ \t]*$", re.MULTILINE)
CROSSREF = re.compile(r"(?<![\w.@])@((fig|tbl)-[\w-]*\w)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)(?:[ \t]+\{[^}]*\})?[ \t]*$", re.MULTILINE)
YAML_HEADER = re.compile(r"\A---\n.*?\n(---|\.\.\.)\n", re.DOTALL)
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")\s]+)")
VARIABLE = re.compile(r"\{\{<\s*var\s+([A-Za-z0-9_.-]+)\s*>\}\}")


def expand_includes(text: str, root: Path, source: str, depth: int = 0, variables: dict | None = None) -> str:
    """Replace every `{{< include path >}}` line by that file's text (path relative to `root`), recursively.

    With `variables`, each file's `{{< var >}}` shortcodes are expanded too, before its includes, so that an
    undefined variable is reported with the file that names it."""
    if depth > 8:
        raise DifflabError(f"{source}: includes nested more than 8 deep (an include cycle?)")
    if variables is not None:
        text = expand_variables(text, variables, source)

    def include(match: re.Match) -> str:
        path = root / match.group(1)
        if not path.is_file():
            raise DifflabError(f"{source}: include file {match.group(1)} not found (looked for {path})")
        return expand_includes(path.read_text(encoding="utf-8"), root, match.group(1), depth + 1,
                               variables).rstrip("\n")

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


def variable_names(text: str) -> list[str]:
    """The names of every `{{< var name >}}` in `text`, in order of appearance."""
    return VARIABLE.findall(text)


def expand_variables(text: str, variables: dict, source: str) -> str:
    """Replace every `{{< var a.b.c >}}` by variables['a']['b']['c'] (as Quarto does with _variables.yml).

    Raises DifflabError naming the variable and `source` when it is missing or not a single value."""

    def value(match: re.Match) -> str:
        node = variables
        for part in match.group(1).split("."):
            if not isinstance(node, dict) or part not in node:
                raise DifflabError(f"{source}: variable {match.group(1)!r} is not defined by any experiment's facts.json")
            node = node[part]
        if isinstance(node, (dict, list)):
            raise DifflabError(f"{source}: variable {match.group(1)!r} is a group, not a value")
        return str(node)

    return VARIABLE.sub(value, text)
