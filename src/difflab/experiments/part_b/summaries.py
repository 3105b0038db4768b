"""Part B summaries: `cfg_tradeoff` (FID and class accuracy per guidance scale) and `fid` (FID per evaluation
epoch, the real-vs-real floor, the classifier's accuracy) read tidy metric CSVs only and import no torch;
`models` reads the final checkpoints (parameter count, width, training speed). No random draws.

FID rows are those with metric == "fid", KID rows "kid" and "kid_std" (the unbiased MMD² and its spread over
subsets, on the same features); the MNIST-classifier extractor is the headline one, any other (Inception) is kept
beside it. Where n is at most the feature dimension FID is dominated by its bias: the `fid_bias_note` fact says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from difflab import DifflabError
from difflab.experiments.part_b import g, percent
from difflab.metrics.extractors import fid_bias_note

MODEL_NAMES = {
    "unconditional": "single-step denoiser (B.1)",
    "time": "time-conditioned DDPM (B.2)",
    "class": "class-conditioned DDPM (B.4)",
    "classifier": "MNIST classifier (FID features)",
}
FACT_PREFIX = {"unconditional": "denoiser", "time": "time", "class": "class", "classifier": "classifier"}
DDPM_EXPERIMENTS = {"ddpm_time": "time-conditioned", "ddpm_class": "class-conditioned"}


def guidance_of(parameter: str) -> float | None:
    """The gamma of a metrics 'parameter' such as 'guidance=5' (comma-separated name=value pairs); None if absent."""
    for part in str(parameter).split(","):
        key, _, value = part.strip().partition("=")
        if key == "guidance" and value:
            return float(value)
    return None


def primary_extractor(extractors) -> str:
    """The MNIST-classifier extractor when present (the headline FID), else the first in sorted order."""
    extractors = sorted(set(extractors))
    return next((e for e in extractors if e.startswith("mnist-classifier")), extractors[0])


def fid_matrix(df, keys: list[str]):
    """From tidy rows: (groups DataFrame of `keys` sorted, extractors (X,) primary first, {metric: (R, X)} for fid,
    kid and kid_std with NaN where missing, n (R,) images per side, accuracy (R,) class_accuracy or NaN)."""
    fid = df[df["metric"] == "fid"]
    extractors = [primary_extractor(fid["extractor"])]
    extractors += sorted(set(fid["extractor"]) - set(extractors))
    table = fid.pivot_table(index=keys, columns="extractor", values="value", aggfunc="first").reindex(columns=extractors)
    scores = {"fid": table.to_numpy(dtype=float)}
    for metric in ("kid", "kid_std"):
        part = df[df["metric"] == metric]
        scores[metric] = (part.pivot_table(index=keys, columns="extractor", values="value", aggfunc="first")
                          .reindex(index=table.index, columns=extractors).to_numpy(dtype=float)) if not part.empty \
            else np.full(table.shape, np.nan)
    groups = table.index.to_frame(index=False)
    n = fid.groupby(keys)["n"].max().reindex(table.index).to_numpy(dtype=float)
    accuracy = df[df["metric"] == "class_accuracy"].groupby(keys)["value"].first().reindex(table.index).to_numpy(dtype=float)
    return groups, np.asarray(extractors), scores, n, accuracy


@dataclass(frozen=True)
class CfgTradeoffResult:
    """guidance: (G,) ascending; extractors: (X,), primary first; fid: (G, X); accuracy: (G,) share of samples the
    classifier assigns to the requested digit; n: (G,) samples per scale; epoch of the class model."""

    guidance: np.ndarray
    extractors: np.ndarray
    fid: np.ndarray
    kid: np.ndarray
    kid_std: np.ndarray
    accuracy: np.ndarray
    n: np.ndarray
    epoch: int
    rows: tuple = ()

    def facts(self) -> dict:
        best = int(np.nanargmin(self.fid[:, 0]))
        return {
            "extractor": str(self.extractors[0]), "n": int(np.nanmax(self.n)), "epoch": int(self.epoch),
            "best_fid": g(self.fid[best, 0]), "best_guidance": g(self.guidance[best]),
            "low_guidance": g(self.guidance[0]), "low_accuracy": percent(self.accuracy[0]),
            "high_guidance": g(self.guidance[-1]), "high_accuracy": percent(self.accuracy[-1]),
            "fid_bias_note": fid_bias_note(int(np.nanmax(self.n)), str(self.extractors[0])),
        }


def cfg_tradeoff(settings, metrics: list[str]) -> CfgTradeoffResult:
    """FID and class accuracy of the class model's samples per guidance scale, from the rows of experiment
    'cfg_sweep' (parameter 'guidance=<gamma>'). Raises DifflabError naming the files when they hold no such
    rows, a row lacks its guidance, or a scale lacks its class accuracy."""
    from difflab.metrics.tables import read_metrics

    sources = ", ".join(map(str, metrics))
    df = read_metrics(*metrics)
    df = df[df["experiment"] == "cfg_sweep"].copy()
    if df[df["metric"] == "fid"].empty:
        raise DifflabError(f"{sources}: no FID rows with experiment 'cfg_sweep'")
    df["guidance"] = [guidance_of(p) for p in df["parameter"]]
    if df["guidance"].isna().any():
        raise DifflabError(f"{sources}: cfg_sweep rows need parameter 'guidance=<γ>'")
    groups, extractors, scores, n, accuracy = fid_matrix(df, ["guidance"])
    if np.isnan(accuracy).any():
        raise DifflabError(f"{sources}: every guidance scale needs a class_accuracy row")
    return CfgTradeoffResult(guidance=groups["guidance"].to_numpy(dtype=float), extractors=extractors, accuracy=accuracy,
                             n=n, epoch=int(df["epoch"].dropna().max()), **scores)


@dataclass(frozen=True)
class FidResult:
    """model: (R,) 'time-conditioned' / 'class-conditioned (γ = 5)', time rows first, each by epoch; epoch: (R,);
    extractors: (X,), primary first; fid, kid, kid_std: (R, X); n: (R,); accuracy: (R,) class accuracy (NaN for the
    time model); floor, floor_kid, floor_kid_std: (X,) of floor_n training images against as many test images;
    classifier_accuracy on classifier_n."""

    model: np.ndarray
    epoch: np.ndarray
    extractors: np.ndarray
    fid: np.ndarray
    kid: np.ndarray
    kid_std: np.ndarray
    n: np.ndarray
    accuracy: np.ndarray
    floor: np.ndarray
    floor_kid: np.ndarray
    floor_kid_std: np.ndarray
    floor_n: int
    classifier_accuracy: float
    classifier_n: int
    class_guidance: float
    rows: tuple = ()

    def facts(self) -> dict:
        facts = {"extractor": str(self.extractors[0]), "n": int(np.nanmax(self.n)), "floor": g(self.floor[0]),
                 "floor_n": int(self.floor_n), "classifier_accuracy": percent(self.classifier_accuracy, 2),
                 "classifier_n": int(self.classifier_n), "class_guidance": g(self.class_guidance),
                 "floor_kid": g(self.floor_kid[0]),
                 "fid_bias_note": fid_bias_note(int(min(np.nanmax(self.n), self.floor_n)), str(self.extractors[0]))}
        for kind in ("time", "class"):
            rows = [i for i, name in enumerate(self.model) if str(name).startswith(kind)]
            first, last = rows[0], rows[-1]
            facts |= {f"{kind}_first_epoch": int(self.epoch[first]), f"{kind}_first_fid": g(self.fid[first, 0]),
                      f"{kind}_last_epoch": int(self.epoch[last]), f"{kind}_last_fid": g(self.fid[last, 0])}
        class_rows = [i for i, name in enumerate(self.model) if str(name).startswith("class")]
        facts["class_last_accuracy"] = percent(self.accuracy[class_rows[-1]])
        return facts


def fid(settings, metrics: list[str]) -> FidResult:
    """FID per evaluation epoch of both DDPMs (experiments ddpm_time / ddpm_class), the floor (fid_floor) and the
    classifier's test accuracy (classifier, metric test_accuracy). Raises DifflabError naming the files when
    one of these, or the class accuracy of a class-conditioned epoch, is missing."""
    from difflab.metrics.tables import read_metrics

    sources = ", ".join(map(str, metrics))
    df = read_metrics(*metrics)
    ddpm = df[df["experiment"].isin(list(DDPM_EXPERIMENTS))].copy()
    floor = df[(df["experiment"] == "fid_floor") & (df["metric"] == "fid")]
    classifier = df[(df["experiment"] == "classifier") & (df["metric"] == "test_accuracy")]
    missing = [name for name, part in (("ddpm_time", ddpm[ddpm["experiment"] == "ddpm_time"]),
                                       ("ddpm_class", ddpm[ddpm["experiment"] == "ddpm_class"]),
                                       ("fid_floor", floor), ("classifier", classifier)) if part.empty]
    if missing:
        raise DifflabError(f"{sources}: no rows of experiment(s) {', '.join(missing)}; need FID of ddpm_time, ddpm_class, "
                           f"fid_floor and the classifier's test_accuracy")
    ddpm["order"] = (ddpm["experiment"] == "ddpm_class").astype(int)
    ddpm["epoch"] = ddpm["epoch"].astype(int)
    groups, extractors, scores, n, accuracy = fid_matrix(ddpm, ["order", "epoch"])
    gammas = [guidance_of(p) for p in ddpm.loc[ddpm["experiment"] == "ddpm_class", "parameter"]]
    gamma = next((x for x in gammas if x is not None), float("nan"))
    names = np.asarray([DDPM_EXPERIMENTS["ddpm_class"] + ("" if np.isnan(gamma) else f" (γ = {gamma:g})") if order
                        else DDPM_EXPERIMENTS["ddpm_time"] for order in groups["order"]])
    if np.isnan(accuracy[groups["order"].to_numpy() == 1]).any():
        raise DifflabError(f"{sources}: every epoch of ddpm_class needs a class_accuracy row")
    floor_rows = df[df["experiment"] == "fid_floor"]
    floor_of = {metric: floor_rows[floor_rows["metric"] == metric].groupby("extractor")["value"].first().reindex(extractors)
                .to_numpy(dtype=float) for metric in ("fid", "kid", "kid_std")}
    row = classifier.iloc[0]
    return FidResult(model=names, epoch=groups["epoch"].to_numpy(dtype=np.int64), extractors=extractors, n=n,
                     accuracy=accuracy, floor=floor_of["fid"], floor_kid=floor_of["kid"], floor_kid_std=floor_of["kid_std"],
                     floor_n=int(floor["n"].max()), classifier_accuracy=float(row["value"]),
                     classifier_n=int(row["n"]), class_guidance=gamma, **scores)


@dataclass(frozen=True)
class ModelsResult:
    """One entry per model, in input order: architecture, model (display name), width (D or W), parameters,
    epochs, training_seconds (sum of measured epoch times, NaN if unknown), images_per_second (last epoch)."""

    architecture: np.ndarray
    model: np.ndarray
    width: np.ndarray
    parameters: np.ndarray
    epochs: np.ndarray
    training_seconds: np.ndarray
    images_per_second: np.ndarray
    rows: tuple = ()

    def facts(self) -> dict:
        facts = {}
        for arch, width, count in zip(self.architecture, self.width, self.parameters):
            prefix = FACT_PREFIX.get(str(arch), str(arch))
            facts |= {f"{prefix}_parameters": f"{int(count):,}", f"{prefix}_width": int(width)}
        return facts


def models(settings, checkpoints: list[str], classifier: str) -> ModelsResult:
    """Parameter count, width, epochs and measured training speed of each checkpoint and of the classifier."""
    from difflab.checkpoint import load_model
    from difflab.models import count_parameters

    entries = []
    for path in [*checkpoints, classifier]:
        model, ckpt = load_model(path, "cpu")
        if isinstance(ckpt, dict):  # load_model returns a plain dict for the classifier only
            arch = ckpt["architecture"]
            history = ckpt.get("history") or []
            seconds = sum(h["seconds"] for h in history) if history else None
            speed = history[-1]["images_per_second"] if history else None
            width, epoch = ckpt["width"], ckpt.get("epoch")
        else:
            arch, seconds = ckpt.architecture, sum(ckpt.epoch_seconds) if ckpt.epoch_seconds else None
            speed, width, epoch = ckpt.images_per_second, ckpt.hidden, ckpt.epoch
        entries.append((arch, MODEL_NAMES.get(arch, str(arch)), width, count_parameters(model), epoch,
                        np.nan if seconds is None else seconds, np.nan if speed is None else speed))
    columns = list(zip(*entries))
    rows = tuple({"experiment": "models", "model": FACT_PREFIX.get(arch, str(arch)), "epoch": epoch, "parameter": f"width={width}",
                  "metric": "parameters", "value": count} for arch, _, width, count, epoch, _, _ in entries)
    return ModelsResult(architecture=np.asarray(columns[0]), model=np.asarray(columns[1]), width=np.asarray(columns[2], dtype=np.int64),
                        parameters=np.asarray(columns[3], dtype=np.int64), epochs=np.asarray(columns[4], dtype=np.int64),
                        training_seconds=np.asarray(columns[5], dtype=float), images_per_second=np.asarray(columns[6], dtype=float),
                        rows=rows)
