"""The report stage: variables from facts.json, the run tables, and the render (pandoc path always; Quarto path
only where quarto is installed)."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from difflab import DifflabError
from difflab.cli import main
from difflab.report.facts import collect_variables
from difflab.report.markdown import (
    expand_variables,
    include_paths,
    number_figures_and_tables,
    section_headings,
    variable_names,
)
from difflab.report.page import external_references, run_wall_time
from difflab.report.render import render_report
from difflab.report.run_tables import write_run_tables
from helpers.report_fixture import FACTS, REPO, TITLE, write_fixture_project

SECTIONS = ["report/sections/part_a.qmd", "report/sections/part_b.qmd"]
RUN_TABLES = ["results/report/tables/timings.md", "results/report/tables/manifest.md"]


def img_sources(page: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]+)"', page)


def render(paths, **kwargs) -> str:
    """The fixture rendered through pandoc with its variables and the config title (overridable)."""
    kwargs = {"renderer": "pandoc", "variables": FACTS, "title": TITLE} | kwargs
    return render_report(paths["qmd"], paths["manifest"], paths["out"], paths["root"], **kwargs)


@pytest.fixture
def rendered(tmp_path):
    """The fixture project with a smoke manifest, run tables written and the page rendered through pandoc."""
    paths = write_fixture_project(tmp_path)
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    description = render(paths)
    return paths, description, paths["out"].read_text()


def test_index_qmd_includes_the_sections_and_run_tables_once_and_follows_the_writeup():
    qmd = REPO / "report" / "index.qmd"
    assert include_paths(qmd) == SECTIONS + RUN_TABLES
    text = qmd.read_text()
    # every include line of index.qmd stands alone between blank lines, as Quarto requires
    for path in include_paths(qmd):
        assert f"\n\n{{{{< include {path} >}}}}\n\n" in text + "\n"
    # the sections hold the writeup's headings, in order; index.qmd itself only the run's own tables
    assert section_headings(text) == ["Timings", "Run manifest"]
    assert text.index(f"{{{{< include {SECTIONS[-1]} >}}}}") < text.index("# Timings")
    headings = [h for section in SECTIONS for h in section_headings((REPO / section).read_text())]
    numbered = [h.split()[0] for h in headings if h[0].isdigit()]
    assert numbered == ["0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "1.7", "1.7.1", "1.7.2", "1.7.3", "1.8", "1.9",
                        "1.1–1.2", "1.2.2", "2.1–2.3", "2.4–2.5"]
    for name in ("Denoiser benchmark", "Illusions, measured", "Models"):
        assert name in headings
    assert headings[0] == "Part A: The power of diffusion models"
    assert headings.index("Part A: The power of diffusion models") < headings.index("Part B: Diffusion models from scratch")
    assert section_headings((REPO / SECTIONS[1]).read_text())[0] == "Part B: Diffusion models from scratch"
    # every number in the prose is a variable <part>.<experiment>.<fact> of that section's part
    for section, part in zip(SECTIONS, ("part_a", "part_b")):
        names = variable_names((REPO / section).read_text())
        assert names and all(re.fullmatch(rf"{part}\.[a-z0-9_]+\.[a-z0-9_]+", name) for name in names), section


def test_pandoc_render_expands_includes_and_variables_numbers_figures_and_resolves_references(rendered):
    paths, description, page = rendered
    assert "{{<" not in page
    assert "The fixture section sentence, with a digit in [0, 1] noised to t = 250, 500 and 750." in page
    assert "animated over 4 frames" in page
    # figures and tables numbered in order of appearance over all included files, captions prefixed
    assert re.search(r"<figcaption[^>]*>Figure 1: A clean digit, values in \[0, 1\]</figcaption>", page)
    assert re.search(r"<figcaption[^>]*>Figure 2: The same digit, noisy \(σ = 0\.66\)</figcaption>", page)
    assert re.search(r"<figcaption[^>]*>Figure 3: Reverse process</figcaption>", page)
    assert "<caption>Table 1: Scores of the fixture</caption>" in page  # nested include: section -> table
    assert "<caption>Table 2: Run manifest (manifest.json)</caption>" in page
    # cross-references became numbered links to ids that exist
    assert '<a href="#fig-noisy">Figure 2</a>' in page
    assert '<a href="#tbl-scores">Table 1</a>' in page
    assert '<a href="#fig-clean">Figure 1</a>' in page  # from the second section
    for ident in ("fig-clean", "fig-noisy", "fig-gif", "tbl-scores", "tbl-manifest"):
        assert f'id="{ident}"' in page
    assert "@fig-" not in page and "@tbl-" not in page
    # math as MathML; the title is the caller's (config key report.title), not the .qmd's own
    assert "<math" in page and "<script" not in page
    assert f'<h1 class="title">{TITLE}</h1>' in page and f"<title>{TITLE}</title>" in page
    assert "Fixture report" not in page


def test_title_argument_is_the_page_title(tmp_path):
    paths = write_fixture_project(tmp_path)
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    render(paths, title="Another title & more")
    page = paths["out"].read_text()
    assert '<h1 class="title">Another title &amp; more</h1>' in page
    assert "<title>Another title &amp; more</title>" in page
    render(paths, title=None)  # no title given: the .qmd's own
    assert '<h1 class="title">Fixture report</h1>' in paths["out"].read_text()


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
    assert "Wall time</span> 7 min 12 s" in header  # finished_utc - started_utc of the fixture manifest
    assert "Reduced profile" in header and "not the full experiment" in header
    assert paths["out"].stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("started, finished, expected", [
    ("2026-01-02T03:04:05+00:00", "2026-01-02T03:04:50+00:00", "45 s"),
    ("2026-01-02T03:04:05+00:00", "2026-01-02T05:04:05+00:00", "120 min 0 s"),
    ("2026-01-02T03:04:05+00:00", None, None),
    ("not a time", "2026-01-02T03:04:05+00:00", None),
    ("2026-01-02T03:04:05+00:00", "2026-01-02T03:00:00+00:00", None),
])
def test_run_wall_time_is_finished_minus_started(started, finished, expected):
    assert run_wall_time({"started_utc": started, "finished_utc": finished}) == expected


def test_no_banner_for_the_default_profile(tmp_path):
    paths = write_fixture_project(tmp_path, profile="default")
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    render(paths)
    page = paths["out"].read_text()
    assert "Profile</span> default" in page
    assert 'class="banner"' not in page and "Reduced profile" not in page


def test_missing_include_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    paths = write_fixture_project(tmp_path)  # the run tables are not written: the manifest.md include is missing
    with pytest.raises(DifflabError, match=r"include file results/report/tables/manifest\.md not found"):
        render(paths)
    assert not paths["out"].parent.exists() or list(paths["out"].parent.glob("*.html*")) == []
    # a missing include inside a section names the section
    (paths["root"] / "results" / "figures" / "scores.md").unlink()
    with pytest.raises(DifflabError, match=r"^report/sections/part_a\.qmd: include file results/figures/scores\.md not found"):
        render(paths)
    # through the command line: one line on stderr, exit status 2
    capsys.readouterr()
    code = main(["report", "render", "--qmd", str(paths["qmd"]), "--manifest", str(paths["manifest"]),
                 "--out", str(paths["out"]), "--root", str(paths["root"]), "--renderer", "pandoc"])
    err = capsys.readouterr().err
    assert code == 2 and not paths["out"].exists()
    assert err.startswith("difflab report: error: ") and "not found" in err and err.count("\n") == 1


def test_missing_variable_is_a_one_line_error_naming_it_and_its_file(tmp_path, capsys):
    paths = write_fixture_project(tmp_path)
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    variables = {"part_a": FACTS["part_a"], "part_b": {"class_gif": {}}}
    with pytest.raises(DifflabError) as info:
        render(paths, variables=variables)
    message = str(info.value)
    assert message == ("report/sections/part_b.qmd: variable 'part_b.class_gif.frames' is not defined by any "
                       "experiment's facts.json")
    assert not paths["out"].exists()
    # through the command line without --variables: the first variable used, one line, exit status 2
    capsys.readouterr()
    code = main(["report", "render", "--qmd", str(paths["qmd"]), "--manifest", str(paths["manifest"]),
                 "--out", str(paths["out"]), "--root", str(paths["root"]), "--renderer", "pandoc"])
    err = capsys.readouterr().err
    assert code == 2 and not paths["out"].exists()
    assert err == ("difflab report: error: report/sections/part_a.qmd: variable 'part_a.forward.levels' is not "
                   "defined by any experiment's facts.json\n")


def test_missing_figure_is_a_clear_error(tmp_path):
    paths = write_fixture_project(tmp_path)
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    paths["gif"].unlink()
    with pytest.raises(DifflabError, match=r"image results/figures/reverse\.gif .* does not exist"):
        render(paths)
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


def test_expand_variables_follows_nested_names():
    variables = {"part_a": {"sampling": {"cfg_scale": 7.5, "prompts": "3, 7", "steps": 20}},
                 "part_b": {"fid": {"floor": "1.23"}}, "top": "x"}
    text = ("γ = {{< var part_a.sampling.cfg_scale >}}, {{<var part_a.sampling.steps>}} steps;\n"
            "![Prompts {{< var part_a.sampling.prompts >}}](s.png){#fig-s} floor {{< var part_b.fid.floor >}} {{< var top >}}")
    assert variable_names(text) == ["part_a.sampling.cfg_scale", "part_a.sampling.steps", "part_a.sampling.prompts",
                                    "part_b.fid.floor", "top"]
    assert expand_variables(text, variables, "x.qmd") == (
        "γ = 7.5, 20 steps;\n![Prompts 3, 7](s.png){#fig-s} floor 1.23 x")
    assert expand_variables("no shortcodes {{< include a.md >}}", {}, "x.qmd") == "no shortcodes {{< include a.md >}}"


@pytest.mark.parametrize("name", ["part_a.sampling.gamma", "part_a.blur.psnr", "part_c.x.y", "part_a.sampling.steps.more"])
def test_expand_variables_missing_name_is_one_line_naming_it_and_the_source(name):
    variables = {"part_a": {"sampling": {"steps": 20}}}
    with pytest.raises(DifflabError) as info:
        expand_variables(f"Text\nwith {{{{< var part_a.sampling.steps >}}}} and {{{{< var {name} >}}}}.\n", variables,
                         "report/sections/part_a.qmd")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("report/sections/part_a.qmd: ") and repr(name) in message and "not defined" in message


@pytest.mark.parametrize("name", ["part_a", "part_a.sampling", "part_a.sampling.list"])
def test_expand_variables_rejects_a_group(name):
    variables = {"part_a": {"sampling": {"steps": 20, "list": [1, 2]}}}
    with pytest.raises(DifflabError, match=rf"^x\.qmd: variable '{re.escape(name)}' is a group, not a value$"):
        expand_variables(f"{{{{< var {name} >}}}}", variables, "x.qmd")


def write_facts(path, facts) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(facts))
    return str(path)


def test_collect_variables_nests_facts_by_part_and_experiment(tmp_path):
    experiments = tmp_path / "results" / "experiments"
    paths = [write_facts(experiments / "part_a" / "sampling" / "facts.json", {"steps": 20, "cfg_scale": 7.5}),
             write_facts(experiments / "part_a" / "blur" / "facts.json", {"psnr": "18.2", "ok": True}),
             write_facts(experiments / "part_b" / "fid" / "facts.json", {"floor_2": "1.23"})]
    assert collect_variables(paths) == {
        "part_a": {"sampling": {"steps": 20, "cfg_scale": 7.5}, "blur": {"psnr": "18.2", "ok": True}},
        "part_b": {"fid": {"floor_2": "1.23"}}}
    assert collect_variables([]) == {}
    text = "{{< var part_a.sampling.steps >}} {{< var part_b.fid.floor_2 >}}"
    assert expand_variables(text, collect_variables(paths), "x.qmd") == "20 1.23"


@pytest.mark.parametrize("facts, match", [
    ({"Steps": 20}, r"fact 'Steps'"),
    ({"cfg-scale": 7.5}, r"fact 'cfg-scale'"),
    ({"": 1}, r"fact ''"),
    ({"steps": [20, 50]}, r"fact 'steps' = \[20, 50\]"),
    ({"steps": {"a": 1}}, r"fact 'steps'"),
    ({"steps": None}, r"fact 'steps' = None"),
    ([1, 2], r"expected a JSON object of facts"),
    ("20", r"expected a JSON object of facts"),
])
def test_collect_variables_rejects_bad_names_and_values(tmp_path, facts, match):
    path = write_facts(tmp_path / "part_a" / "sampling" / "facts.json", facts)
    with pytest.raises(DifflabError, match=rf"^{re.escape(path)}: {match}"):
        collect_variables([path])


def test_collect_variables_rejects_duplicates_bad_paths_and_bad_json(tmp_path):
    first = write_facts(tmp_path / "a" / "part_a" / "sampling" / "facts.json", {"steps": 20})
    second = write_facts(tmp_path / "b" / "part_a" / "sampling" / "facts.json", {"steps": 50})
    with pytest.raises(DifflabError, match=r"facts of part_a\.sampling are given twice"):
        collect_variables([first, second])
    with pytest.raises(DifflabError, match=r"given twice"):
        collect_variables([first, first])
    other = write_facts(tmp_path / "part_a" / "sampling" / "other.json", {"steps": 20})
    with pytest.raises(DifflabError, match=r"expected \.\.\./<part>/<experiment>/facts\.json"):
        collect_variables([other])
    broken = tmp_path / "part_b" / "fid" / "facts.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    with pytest.raises(DifflabError, match=r"facts\.json: not valid JSON"):
        collect_variables([str(broken)])
    with pytest.raises(DifflabError, match=r"file not found"):
        collect_variables([str(tmp_path / "part_b" / "none" / "facts.json")])


def test_external_references_finds_every_kind_of_outside_link():
    page = ('<link rel="stylesheet" href="https://cdn.example/x.css"><img src="fig.png"><a href="#sec">x</a>'
            '<img src="data:image/png;base64,AAAA"><div style="background: url(\'bg.png\')"></div>'
            '<style>p { background: url(data:image/gif;base64,R0lG) } h1 { background: url(h.png) }</style>'
            '<img srcset="a.png 1x, data:image/png;base64,BB 2x"><script src="//cdn/x.js"></script>')
    assert sorted(external_references(page)) == sorted(
        ["https://cdn.example/x.css", "fig.png", "bg.png", "h.png", "a.png", "//cdn/x.js"])


def test_tables_command_writes_manifest_and_timings_tables(tmp_path):
    paths = write_fixture_project(tmp_path)
    assert main(["report", "tables", "--manifest", str(paths["manifest"]), "--benchmarks", str(paths["benchmarks"]),
                 "--out-dir", str(paths["tables"])]) == 0
    assert sorted(p.name for p in paths["tables"].iterdir()) == ["manifest.md", "timings.md"]

    manifest = (paths["tables"] / "manifest.md").read_text()
    rows = dict(re.findall(r"^\| ([^|]+?) \| (.+?) \|$", manifest, re.MULTILINE))
    assert rows["git commit"] == "`0123456789abcdef0123456789abcdef01234567` (dirty: uncommitted changes)"
    assert rows["profile"] == "smoke" and rows["device"] == "Fixture GPU 9000" and rows["CUDA"] == "12.8"
    assert rows["config sha256"] == f"`{'f' * 64}`" and rows["seed"] == "180"
    assert rows["started (UTC)"] == "2026-01-02T03:04:05+00:00" and rows["finished (UTC)"] == "2026-01-02T03:11:17+00:00"
    assert rows["package torch"] == "2.14.1" and rows["package numpy"] == "2.3.0"
    assert "{#tbl-manifest}" in manifest and f'"title": "{TITLE}"' in manifest

    timings = (paths["tables"] / "timings.md").read_text()
    table = [line.split(" | ") for line in timings.splitlines() if line.startswith("| ")][2:]
    cells = {row[0].strip("| "): [c.strip("| ") for c in row[1:]] for row in table}
    # report.tsv has two runs (1 s and 3 s; max_rss 100 and NA): their means, NA skipped
    assert cells["`report` (mean of 2)"] == ["2.00", "100.0", "1.00"]
    assert cells["`train/epoch_1`"] == ["12.50", "512.2", "11.75"]
    assert cells["**total (2 jobs)**"] == ["**14.50**", "**peak 512.2**", "**12.75**"]
    assert "{#tbl-timings}" in timings


def test_timings_take_memory_and_cpu_from_the_jobs_own_usage_line(tmp_path):
    """Under the job server Snakemake measures the forwarding process; the job's own usage line in its log wins, and a
    CUDA column appears when a job used CUDA. Logs without the line keep the benchmark's numbers."""
    paths = write_fixture_project(tmp_path)
    logs = tmp_path / "logs"
    (logs / "train").mkdir(parents=True)
    (logs / "train" / "epoch_1.log").write_text("training...\ndifflab usage: max_rss_mb=2048.5 cpu_s=30.25 cuda_peak_mb=900.0\n")
    (logs / "report.log").write_text("no usage line here\n")
    assert main(["report", "tables", "--manifest", str(paths["manifest"]), "--benchmarks", str(paths["benchmarks"]),
                 "--logs", str(logs), "--out-dir", str(paths["tables"])]) == 0
    timings = (paths["tables"] / "timings.md").read_text()
    table = [line.split(" | ") for line in timings.splitlines() if line.startswith("| ")][2:]
    cells = {row[0].strip("| "): [c.strip("| ") for c in row[1:]] for row in table}
    assert cells["`train/epoch_1`"] == ["12.50", "2,048.5", "30.25", "900.0"]
    assert cells["`report` (mean of 2)"] == ["2.00", "100.0", "1.00", "NA"]
    assert "peak CUDA memory (MB)" in timings


def test_usage_line_round_trips(tmp_path):
    from difflab.usage import read_usage, usage_line

    log = tmp_path / "job.log"
    log.write_text(f"output\n{usage_line()}\n")
    usage = read_usage(log)
    assert usage["max_rss"] > 10 and usage["cpu_time"] > 0 and usage["cuda_peak"] is None
    assert read_usage(tmp_path / "missing.log") is None


def test_run_tables_reject_bad_manifest_and_benchmark(tmp_path):
    paths = write_fixture_project(tmp_path)
    text = paths["manifest"].read_text()
    paths["manifest"].write_text(text.replace('"profile"', '"profil"'))
    with pytest.raises(DifflabError, match=r"manifest\.json: missing key 'profile'"):
        write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    paths["manifest"].write_text(text)
    (paths["benchmarks"] / "bad.tsv").write_text("s\tmax_rss\tcpu_time\n1.0\tlots\t0.5\n")
    with pytest.raises(DifflabError, match=r"bad\.tsv: column 'max_rss' holds 'lots'"):
        write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    assert not paths["tables"].exists() or list(paths["tables"].iterdir()) == []


def test_cli_round_trip_variables_tables_render(tmp_path, capsys):
    paths = write_fixture_project(tmp_path)
    variables = tmp_path / "results" / "report" / "variables.json"
    assert main(["report", "variables", "--facts", *map(str, paths["facts"]), "--out", str(variables)]) == 0
    assert json.loads(variables.read_text()) == FACTS
    assert main(["report", "tables", "--manifest", str(paths["manifest"]), "--benchmarks", str(paths["benchmarks"]),
                 "--out-dir", str(paths["tables"])]) == 0
    capsys.readouterr()
    assert main(["report", "render", "--settings", json.dumps({"title": "Title from the settings"}),
                 "--qmd", str(paths["qmd"]), "--manifest", str(paths["manifest"]), "--variables", str(variables),
                 "--out", str(paths["out"]), "--root", str(paths["root"]), "--renderer", "pandoc"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {paths['out']} (pandoc 3.")
    page = paths["out"].read_text()
    assert '<h1 class="title">Title from the settings</h1>' in page
    assert "noised to t = 250, 500 and 750." in page and "noisy (σ = 0.66)</figcaption>" in page
    assert "<caption>Table 2: Run manifest (manifest.json)</caption>" in page and external_references(page) == []
    # settings that are not the job's fields are a one-line error, and nothing is written
    paths["out"].unlink()
    assert main(["report", "render", "--settings", json.dumps({"titel": "x"}), "--qmd", str(paths["qmd"]),
                 "--manifest", str(paths["manifest"]), "--variables", str(variables), "--out", str(paths["out"]),
                 "--root", str(paths["root"]), "--renderer", "pandoc"]) == 2
    assert "must hold exactly ['title']" in capsys.readouterr().err and not paths["out"].exists()
    # a bad facts.json: exit status 2, no variables file
    variables.unlink()
    paths["facts"][0].write_text(json.dumps({"Bad": 1}))
    assert main(["report", "variables", "--facts", *map(str, paths["facts"]), "--out", str(variables)]) == 2
    assert "fact 'Bad'" in capsys.readouterr().err and not variables.exists()


@pytest.mark.skipif(shutil.which("quarto") is None, reason="Quarto is not installed (the pandoc path is tested above)")
def test_quarto_render_is_self_contained(tmp_path):
    paths = write_fixture_project(tmp_path)
    write_run_tables(paths["manifest"], paths["benchmarks"], paths["tables"])
    description = render(paths, renderer="quarto")
    page = paths["out"].read_text()
    assert description.startswith("Quarto") and f"Rendered by <span class=\"renderer\">{description}" in page
    assert external_references(page) == []
    assert all(src.startswith("data:") for src in img_sources(page)) and len(img_sources(page)) == 3
    assert 'id="fig-noisy"' in page and "Reduced profile" in page
    assert "{{<" not in page and "250, 500 and 750" in page and "0.66" in page and TITLE in page
