"""The report renderer (pandoc path, always; Quarto path only where quarto is installed) and its snippets."""

from __future__ import annotations

import base64
import re
import shutil

import pytest

from difflab import DifflabError
from difflab.cli import main
from difflab.report import (
    external_references,
    include_paths,
    number_figures_and_tables,
    render_report,
    section_headings,
    write_snippets,
)
from report_fixture import REPO, write_fixture_project

SNIPPETS = [
    "part_a_sampling", "part_a_forward", "part_a_blur", "part_a_one_step", "part_a_iterative", "part_a_benchmark",
    "part_a_samples", "part_a_cfg", "part_a_sdedit", "part_a_sdedit_inputs", "part_a_inpaint", "part_a_img2img",
    "part_a_anagrams", "part_a_hybrids", "part_a_illusions", "part_b_denoiser", "part_b_ood", "part_b_time",
    "part_b_class", "part_b_cfg", "part_b_fid", "part_b_models", "timings", "manifest",
]


def img_sources(page: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]+)"', page)


@pytest.fixture
def rendered(tmp_path):
    """The fixture project with a smoke manifest, snippets written and the page rendered through pandoc."""
    paths = write_fixture_project(tmp_path)
    write_snippets(paths["manifest"], paths["benchmarks"], paths["snippets"])
    description = render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], renderer="pandoc")
    return paths, description, paths["out"].read_text()


def test_index_qmd_includes_every_snippet_once_and_follows_the_writeup():
    qmd = REPO / "report" / "index.qmd"
    assert include_paths(qmd) == [f"results/report/snippets/{name}.md" for name in SNIPPETS]
    headings = section_headings(qmd.read_text())
    numbered = [h.split()[0] for h in headings if h[0].isdigit()]
    assert numbered == ["0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.7.1", "1.7.2", "1.7.3", "1.8", "1.9",
                        "1.1–1.2", "1.2.2", "2.1–2.3", "2.4–2.5"]
    for name in ("Denoiser benchmark", "Illusions, measured", "Models", "Timings", "Run manifest"):
        assert name in headings
    assert headings.index("Part A: The power of diffusion models") < headings.index("Part B: Diffusion models from scratch")
    # every include line stands alone between blank lines, as Quarto requires
    text = qmd.read_text()
    for path in include_paths(qmd):
        assert f"\n\n{{{{< include {path} >}}}}\n\n" in text + "\n"


def test_pandoc_render_expands_includes_numbers_figures_and_resolves_references(rendered):
    paths, description, page = rendered
    assert "{{<" not in page
    assert "The fixture snippet sentence" in page
    # figures and tables numbered in order of appearance, captions prefixed
    assert re.search(r"<figcaption[^>]*>Figure 1: A clean digit, values in \[0, 1\]</figcaption>", page)
    assert re.search(r"<figcaption[^>]*>Figure 2: The same digit, noisy</figcaption>", page)
    assert re.search(r"<figcaption[^>]*>Figure 3: Reverse process</figcaption>", page)
    assert "<caption>Table 1: Scores of the fixture</caption>" in page
    assert "<caption>Table 2: Run manifest (manifest.json)</caption>" in page
    # cross-references became numbered links to ids that exist
    assert '<a href="#fig-noisy">Figure 2</a>' in page
    assert '<a href="#tbl-scores">Table 1</a>' in page
    assert '<a href="#fig-clean">Figure 1</a>' in page  # from the second snippet
    for ident in ("fig-clean", "fig-noisy", "fig-gif", "tbl-scores", "tbl-manifest"):
        assert f'id="{ident}"' in page
    assert "@fig-" not in page and "@tbl-" not in page
    # math as MathML, title from the manifest's config
    assert "<math" in page and "<script" not in page
    assert '<h1 class="title">Fixture title from config</h1>' in page


def test_pandoc_render_embeds_images_and_leaves_no_external_reference(rendered):
    paths, description, page = rendered
    sources = img_sources(page)
    assert len(sources) == 3 and all(src.startswith("data:") for src in sources)
    png = next(src for src in sources if src.startswith("data:image/png"))
    assert base64.b64decode(png.split(",", 1)[1]) == paths["png"].read_bytes()
    gif = next(src for src in sources if src.startswith("data:image/gif"))
    assert base64.b64decode(gif.split(",", 1)[1]) == paths["gif"].read_bytes()
    assert external_references(page) == []
    assert "image-rendering: pixelated" in page  # the stylesheet itself is embedded


def test_page_names_renderer_run_and_reduced_profile_banner(rendered):
    paths, description, page = rendered
    assert description.startswith("pandoc 3.")
    assert f'<meta name="generator" content="{description}" />' in page
    assert f'Rendered by <span class="renderer">{description}</span>' in page
    header = page.split('<div class="page">')[0]
    assert "Profile</span> smoke" in header and "Fixture GPU 9000 (CUDA 12.8)" in header
    assert "Reduced profile" in header and "not the full experiment" in header
    assert paths["out"].stat().st_mode & 0o777 == 0o644


def test_no_banner_for_the_default_profile(tmp_path):
    paths = write_fixture_project(tmp_path, profile="default")
    write_snippets(paths["manifest"], paths["benchmarks"], paths["snippets"])
    render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], renderer="pandoc")
    page = paths["out"].read_text()
    assert "Profile</span> default" in page
    assert 'class="banner"' not in page and "Reduced profile" not in page


def test_missing_include_is_a_clear_error_and_writes_nothing(tmp_path):
    paths = write_fixture_project(tmp_path)  # manifest.md is not written: its include is missing
    with pytest.raises(DifflabError, match=r"include file results/report/snippets/manifest\.md not found"):
        render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], renderer="pandoc")
    assert not paths["out"].parent.exists() or list(paths["out"].parent.glob("*.html*")) == []
    # through the command line: one line on stderr, exit status 2
    code = main(["report", "render", "--qmd", str(paths["qmd"]), "--manifest", str(paths["manifest"]),
                 "--out", str(paths["out"]), "--root", str(paths["root"]), "--renderer", "pandoc"])
    assert code == 2 and not paths["out"].exists()


def test_missing_figure_is_a_clear_error(tmp_path):
    paths = write_fixture_project(tmp_path)
    write_snippets(paths["manifest"], paths["benchmarks"], paths["snippets"])
    paths["gif"].unlink()
    with pytest.raises(DifflabError, match=r"image results/figures/reverse\.gif .* does not exist"):
        render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], renderer="pandoc")
    assert not paths["out"].exists()


def test_numbering_counts_figures_and_tables_separately_and_rejects_bad_ids():
    text = ("See @tbl-b, @fig-a and @fig-c.\n\n: First table {#tbl-b}\n\n"
            "![Alpha](a.png){#fig-a width=50%}\n\n![plain image](p.png)\n\n![Gamma [x]](c.png){#fig-c}\n")
    assert number_figures_and_tables(text) == (
        "See [Table 1](#tbl-b), [Figure 1](#fig-a) and [Figure 2](#fig-c).\n\n: Table 1: First table {#tbl-b}\n\n"
        "![Figure 1: Alpha](a.png){#fig-a width=50%}\n\n![plain image](p.png)\n\n![Figure 2: Gamma [x]](c.png){#fig-c}\n")
    with pytest.raises(DifflabError, match="@fig-missing"):
        number_figures_and_tables("![A](a.png){#fig-a}\n\nSee @fig-missing.\n")
    with pytest.raises(DifflabError, match="#fig-a is used twice"):
        number_figures_and_tables("![A](a.png){#fig-a}\n\n![B](b.png){#fig-a}\n")


def test_external_references_finds_every_kind_of_outside_link():
    page = ('<link rel="stylesheet" href="https://cdn.example/x.css"><img src="fig.png"><a href="#sec">x</a>'
            '<img src="data:image/png;base64,AAAA"><div style="background: url(\'bg.png\')"></div>'
            '<style>p { background: url(data:image/gif;base64,R0lG) } h1 { background: url(h.png) }</style>'
            '<img srcset="a.png 1x, data:image/png;base64,BB 2x"><script src="//cdn/x.js"></script>')
    assert sorted(external_references(page)) == sorted(
        ["https://cdn.example/x.css", "fig.png", "bg.png", "h.png", "a.png", "//cdn/x.js"])


def test_snippets_write_manifest_and_timings_tables(tmp_path):
    paths = write_fixture_project(tmp_path)
    assert main(["report", "snippets", "--manifest", str(paths["manifest"]), "--benchmarks", str(paths["benchmarks"]),
                 "--out-dir", str(paths["snippets"])]) == 0

    manifest = (paths["snippets"] / "manifest.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", manifest, re.MULTILINE))
    assert rows["git commit"] == "`0123456789abcdef0123456789abcdef01234567` (dirty: uncommitted changes)"
    assert rows["profile"] == "smoke" and rows["device"] == "Fixture GPU 9000" and rows["CUDA"] == "12.8"
    assert rows["config sha256"] == f"`{'f' * 64}`" and rows["seed"] == "180"
    assert rows["started (UTC)"] == "2026-01-02T03:04:05+00:00" and rows["finished (UTC)"] == "not recorded"
    assert rows["package torch"] == "2.14.1" and rows["package numpy"] == "2.3.0"
    assert "{#tbl-manifest}" in manifest and '"title": "Fixture title from config"' in manifest

    timings = (paths["snippets"] / "timings.md").read_text()
    table = [line.split(" | ") for line in timings.splitlines() if line.startswith("| ")][2:]
    cells = {row[0].strip("| "): [c.strip("| ") for c in row[1:]] for row in table}
    # report.tsv has two runs (1 s and 3 s; max_rss 100 and NA): their means, NA skipped
    assert cells["`report` (mean of 2)"] == ["2.00", "100.0", "1.00"]
    assert cells["`train/epoch_1`"] == ["12.50", "512.2", "11.75"]
    assert cells["**total (2 jobs)**"] == ["**14.50**", "**peak 512.2**", "**12.75**"]
    assert "{#tbl-timings}" in timings


def test_snippets_reject_bad_manifest_and_benchmark(tmp_path):
    paths = write_fixture_project(tmp_path)
    text = paths["manifest"].read_text()
    paths["manifest"].write_text(text.replace('"profile"', '"profil"'))
    with pytest.raises(DifflabError, match=r"manifest\.json: missing key 'profile'"):
        write_snippets(paths["manifest"], paths["benchmarks"], paths["snippets"])
    paths["manifest"].write_text(text)
    (paths["benchmarks"] / "bad.tsv").write_text("s\tmax_rss\tcpu_time\n1.0\tlots\t0.5\n")
    with pytest.raises(DifflabError, match=r"bad\.tsv: column 'max_rss' holds 'lots'"):
        write_snippets(paths["manifest"], paths["benchmarks"], paths["snippets"])


@pytest.mark.skipif(shutil.which("quarto") is None, reason="Quarto is not installed (the pandoc path is tested above)")
def test_quarto_render_is_self_contained(tmp_path):
    paths = write_fixture_project(tmp_path)
    write_snippets(paths["manifest"], paths["benchmarks"], paths["snippets"])
    description = render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], renderer="quarto")
    page = paths["out"].read_text()
    assert description.startswith("Quarto") and f"Rendered by <span class=\"renderer\">{description}" in page
    assert external_references(page) == []
    assert all(src.startswith("data:") for src in img_sources(page)) and len(img_sources(page)) == 3
    assert 'id="fig-noisy"' in page and "Reduced profile" in page
