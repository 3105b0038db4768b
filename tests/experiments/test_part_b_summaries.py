"""The Part B summaries (CFG trade-off, FID table, models) on hand-written tidy CSVs, and the `sample` verb."""


import pandas as pd
import pytest

from helpers import factories as fx
from difflab import DifflabError
from difflab.experiments.part_b.summaries import cfg_tradeoff, fid, guidance_of, models
from difflab.figures.part_b import draw
from difflab.metrics.tables import write_metrics
from difflab.settings import from_json


def test_guidance_parameter_parsing():
    assert guidance_of("guidance=5") == 5.0
    assert guidance_of("guidance=0.5") == 0.5
    assert guidance_of("width=32, guidance=2") == 2.0
    assert guidance_of("") is None and guidance_of("width=32") is None


def test_cfg_tradeoff_reads_fid_rows_only_and_puts_the_mnist_extractor_first(tmp_path):
    r = cfg_tradeoff(from_json("part_b.cfg_tradeoff", "{}"), fx.cfg_csvs(tmp_path))
    assert r.guidance.tolist() == [0, 5] and r.extractors.tolist() == [fx.EXTRACTOR, fx.INCEPTION]
    assert r.fid[:, 0].tolist() == [31.5, 12.25] and r.fid[:, 1].tolist() == [126.0, 49.0]  # KID rows ignored
    facts = r.facts()
    assert facts["best_fid"] in ("12.2", "12.3") and facts["best_guidance"] == "5"
    assert (facts["low_accuracy"], facts["high_accuracy"]) == ("42.0%", "87.5%") and facts["n"] == 64 and facts["epoch"] == 2


def test_cfg_tradeoff_without_sweep_rows_is_an_error(tmp_path):
    floor = tmp_path / "floor.csv"
    write_metrics(floor, [{"experiment": "fid_floor", "model": "mnist-train", "metric": "fid", "value": 1.0}])
    with pytest.raises(DifflabError, match="cfg_sweep"):
        cfg_tradeoff(None, [str(floor)])


def test_fid_table(tmp_path):
    r = fid(None, fx.fid_csvs(tmp_path))
    assert r.model.tolist() == ["time-conditioned"] * 2 + ["class-conditioned (γ = 5)"] * 2
    assert r.epoch.tolist() == [1, 2, 1, 2] and r.fid[:, 0].tolist() == [40.0, 18.5, 35.0, 9.75]
    f = r.facts()
    assert (f["time_first_fid"], f["time_last_fid"], f["class_first_fid"], f["class_last_fid"]) == ("40", "18.5", "35", "9.75")
    assert f["floor"] == "0.625" and f["classifier_accuracy"] == "97.12%" and f["classifier_n"] == 48
    assert f["class_last_accuracy"] == "90.0%" and f["class_guidance"] == "5"
    # the table: the four model rows, then the floor
    out = tmp_path / "fig"
    (tmp_path / "exp").mkdir()
    from difflab.experiments.part_b import write_result

    write_result(r, tmp_path / "exp", tmp_path / "m.csv")
    draw("fid", tmp_path / "exp", out)
    rows = [line for line in (out / "fid_table.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["time-conditioned"] * 2 + ["class-conditioned (γ = 5)"] * 2 + ["real vs real (train vs test)"]
    assert (out / "fid_vs_epoch.png").is_file()


def test_fid_without_the_floor_names_what_is_missing(tmp_path):
    paths = [p for p in fx.fid_csvs(tmp_path) if not p.endswith("floor.csv")]
    with pytest.raises(DifflabError, match="fid_floor"):
        fid(None, paths)


def test_fid_without_class_accuracy_is_an_error(tmp_path):
    from difflab.metrics.tables import read_metrics

    paths = fx.fid_csvs(tmp_path)
    for path in paths:
        df = read_metrics(path)
        write_metrics(path, [{k: (None if v is pd.NA else v) for k, v in row.items()} for row in df[df["metric"] != "class_accuracy"].to_dict("records")])
    with pytest.raises(DifflabError, match="class_accuracy"):
        fid(None, paths)


def test_models_table(tmp_path):
    from difflab.metrics.classifier import build_classifier
    from difflab.models import build_model, count_parameters

    paths = []
    for kind in ("denoiser", "time", "class"):
        paths.append(str(tmp_path / f"{kind}.pt"))
        fx.make_checkpoint(tmp_path / f"{kind}.pt", kind, 2)
    fx.make_classifier(tmp_path / "classifier.pt")
    r = models(None, paths, str(tmp_path / "classifier.pt"))
    f = r.facts()
    for prefix, arch in (("denoiser", "unconditional"), ("time", "time"), ("class", "class")):
        assert f[f"{prefix}_parameters"] == f"{count_parameters(build_model(arch, 8)):,}" and f[f"{prefix}_width"] == 8
    assert f["classifier_parameters"] == f"{count_parameters(build_classifier(8)):,}"
    assert r.training_seconds.tolist() == [3.0, 3.0, 3.0, 2.5] and r.images_per_second[-1] == 800.0


def test_ema_pairs_raw_and_ema_scores_per_model_and_epoch(tmp_path):
    from difflab.experiments.part_b.ema import ema, time_constant

    r = ema(from_json("part_b.ema", fx.settings("ema")), fx.ema_csvs(tmp_path))
    assert r.model.tolist() == ["time", "time", "class", "class"] and r.epoch.tolist() == [1, 2, 1, 2]
    assert r.weights.tolist() == ["raw", "ema"]
    assert r.fid.tolist() == [[40.0, 44.0], [18.5, 16.0], [35.0, 38.0], [9.75, 8.5]]
    assert r.kid[:, 1].tolist() == pytest.approx([0.44, 0.16, 0.38, 0.085])
    assert r.n.tolist() == [64] * 4
    assert r.accuracy[2:].tolist() == [[0.6, 0.7], [0.6, 0.7]] and pd.isna(r.accuracy[:2]).all()
    facts = r.facts()
    assert (facts["time_last_raw_fid"], facts["time_last_ema_fid"], facts["time_last_verdict"]) == ("18.5", "16", "lower than")
    assert (facts["time_first_raw_fid"], facts["time_first_ema_fid"]) == ("40", "44")
    assert (facts["class_last_ema_fid"], facts["class_last_ema_accuracy"], facts["class_last_raw_accuracy"]) == ("8.5", "70.0%", "60.0%")
    assert (facts["ema_better"], facts["comparisons"], facts["ema_decay"], facts["time_constant"]) == (2, 4, "0.999", "1,000")
    assert time_constant(0.9) == pytest.approx(10.0)
    assert [row["value"] for row in r.rows] == pytest.approx([4.0, -2.5, 3.0, -1.25])  # EMA minus raw


def test_ema_names_a_missing_weight_set_and_an_unpaired_epoch(tmp_path):
    from difflab.experiments.part_b.ema import ema

    settings = from_json("part_b.ema", fx.settings("ema"))
    paths = fx.ema_csvs(tmp_path)
    with pytest.raises(DifflabError, match="ddpm_time_ema"):
        ema(settings, [p for p in paths if "time" not in p or "_ema" not in p])
    with pytest.raises(DifflabError, match="class epoch 2 scored for one weight set only"):
        ema(settings, [p for p in paths if not p.endswith("class_epoch_2_ema.csv")])


def test_ema_figure_and_table(tmp_path):
    from difflab.experiments.part_b import write_result
    from difflab.experiments.part_b.ema import ema

    r = ema(from_json("part_b.ema", fx.settings("ema")), fx.ema_csvs(tmp_path))
    write_result(r, tmp_path / "result", tmp_path / "part_b_ema.csv")
    draw("ema", tmp_path / "result", tmp_path / "fig")
    assert (tmp_path / "fig" / "ema_fid_vs_epoch.png").stat().st_size > 0
    table = (tmp_path / "fig" / "ema_table.md").read_text()
    assert "FID raw" in table and "FID ema" in table and "class accuracy ema" in table and "8.5" in table
