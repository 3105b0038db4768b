"""Part B `ema`: raw against EMA weights of both DDPMs at every evaluation epoch, from tidy FID CSVs (no torch).

The sampling jobs draw raw and EMA samples with the same seeds and the same n (rules/samples.smk, wildcard
{weights}); the FID jobs score them against the same MNIST test images and tag the rows with experiment
'ddpm_<model>' (raw) or 'ddpm_<model>_ema'. This job pairs the two per (model, epoch): FID, KID (± its spread
over subsets) and class accuracy (class model only). The EMA decay is a setting (part_b.ddpm.ema_decay) only
for the report's text: its time constant 1 / (1 - decay) in optimizer steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from difflab import DifflabError
from difflab.experiments.part_b import g, percent
from difflab.experiments.part_b.summaries import fid_matrix
from difflab.metrics.extractors import fid_bias_note

WEIGHTS = ("raw", "ema")
KINDS = ("time", "class")


def experiment_of(kind: str, weights: str) -> str:
    """The metrics 'experiment' of a DDPM's FID rows: 'ddpm_time' (raw) or 'ddpm_time_ema'."""
    return f"ddpm_{kind}" + ("" if weights == "raw" else f"_{weights}")


def time_constant(decay: float) -> float:
    """Steps over which the EMA W_ema <- decay W_ema + (1 - decay) W averages: tau = 1 / (1 - decay), the mean age
    in optimizer steps of the weights it holds (weight decay^k on the weights of k steps ago). decay in [0, 1)."""
    return 1.0 / (1.0 - decay)


@dataclass(frozen=True)
class EmaResult:
    """model: (R,) 'time' | 'class', time rows first, each by epoch; epoch: (R,); weights: ('raw', 'ema');
    fid, kid, kid_std, accuracy: (R, 2), column j = weights[j], with the primary extractor's features (accuracy: share
    of class samples the MNIST classifier assigns to the requested digit, NaN for the time model); n: (R,) images per
    side; extractor: the primary extractor; ema_decay: part_b.ddpm.ema_decay."""

    model: np.ndarray
    epoch: np.ndarray
    weights: np.ndarray
    fid: np.ndarray
    kid: np.ndarray
    kid_std: np.ndarray
    accuracy: np.ndarray
    n: np.ndarray
    extractor: str
    ema_decay: float
    rows: tuple = ()

    def facts(self) -> dict:
        n = int(np.nanmax(self.n))
        better = self.fid[:, 1] < self.fid[:, 0]
        facts = {"extractor": self.extractor, "n": n, "ema_decay": g(self.ema_decay, 4),
                 "time_constant": f"{time_constant(self.ema_decay):,.0f}", "fid_bias_note": fid_bias_note(n, self.extractor),
                 "ema_better": int(better.sum()), "comparisons": int(len(better))}
        for kind in KINDS:
            rows = np.flatnonzero(self.model == kind)
            first, last = rows[0], rows[-1]
            facts |= {f"{kind}_first_epoch": int(self.epoch[first]), f"{kind}_last_epoch": int(self.epoch[last])}
            for i, when in ((first, "first"), (last, "last")):
                for j, w in enumerate(WEIGHTS):
                    facts[f"{kind}_{when}_{w}_fid"] = g(self.fid[i, j])
                    facts[f"{kind}_{when}_{w}_kid"] = g(self.kid[i, j])
            facts[f"{kind}_last_verdict"] = comparison_word(self.fid[last, 1], self.fid[last, 0])
        last_class = np.flatnonzero(self.model == "class")[-1]
        facts |= {"class_last_raw_accuracy": percent(self.accuracy[last_class, 0]),
                  "class_last_ema_accuracy": percent(self.accuracy[last_class, 1])}
        return facts


def comparison_word(ema: float, raw: float) -> str:
    """'lower than' | 'higher than' | 'equal to': EMA's score against raw's ("EMA's FID is lower than raw's")."""
    return "lower than" if ema < raw else "higher than" if ema > raw else "equal to"


def ema(settings, metrics: list[str]) -> EmaResult:
    """Pair raw and EMA scores per (model, epoch) from the FID CSVs of experiments ddpm_time, ddpm_time_ema,
    ddpm_class and ddpm_class_ema. Raises DifflabError naming the files when one of the four has no FID rows, an
    epoch is scored for one weight set only, raw and EMA differ in n, or a class-model epoch lacks its accuracy."""
    from difflab.metrics.tables import read_metrics

    sources = ", ".join(map(str, metrics))
    df = read_metrics(*metrics)
    names = {experiment_of(k, w): (k, w) for k in KINDS for w in WEIGHTS}
    df = df[df["experiment"].isin(list(names))].copy()
    missing = [name for name in names if df[(df["experiment"] == name) & (df["metric"] == "fid")].empty]
    if missing:
        raise DifflabError(f"{sources}: no FID rows of experiment(s) {', '.join(missing)}; the EMA comparison needs "
                           f"{', '.join(names)}")
    df["kind"] = [KINDS.index(names[e][0]) for e in df["experiment"]]
    df["weights"] = [WEIGHTS.index(names[e][1]) for e in df["experiment"]]
    df["epoch"] = df["epoch"].astype(int)
    groups, extractors, scores, n, accuracy = fid_matrix(df, ["kind", "epoch", "weights"])
    pairs = groups.groupby(["kind", "epoch"])["weights"].apply(sorted)
    unpaired = [f"{KINDS[k]} epoch {e}" for (k, e), ws in pairs.items() if ws != [0, 1]]
    if unpaired:
        raise DifflabError(f"{sources}: {', '.join(unpaired)} scored for one weight set only; need raw and ema")
    n = n.reshape(-1, 2)
    if (n[:, 0] != n[:, 1]).any():
        raise DifflabError(f"{sources}: raw and EMA samples differ in n ({n.tolist()}); compare the same n")
    accuracy = accuracy.reshape(-1, 2)
    kinds = groups["kind"].to_numpy()[::2]
    if np.isnan(accuracy[kinds == KINDS.index("class")]).any():
        raise DifflabError(f"{sources}: every epoch of ddpm_class and ddpm_class_ema needs a class_accuracy row")
    epochs = groups["epoch"].to_numpy(dtype=np.int64)[::2]
    fid, kid, kid_std = (scores[m][:, 0].reshape(-1, 2) for m in ("fid", "kid", "kid_std"))
    model = np.asarray([KINDS[k] for k in kinds])
    decay = float(settings.ema_decay)
    rows = tuple({"experiment": "ema", "model": m, "epoch": int(e), "parameter": f"ema_decay={decay:g}",
                  "metric": "fid_ema_minus_raw", "value": float(f[1] - f[0]), "n": int(k[0]), "extractor": str(extractors[0])}
                 for m, e, f, k in zip(model, epochs, fid, n))
    return EmaResult(model=model, epoch=epochs, weights=np.asarray(WEIGHTS), fid=fid, kid=kid, kid_std=kid_std,
                     accuracy=accuracy, n=n[:, 0], extractor=str(extractors[0]), ema_decay=decay, rows=rows)
