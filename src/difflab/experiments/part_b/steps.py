"""Quality against sampling steps: strided DDPM and DDIM on the final time- and class-conditioned DDPMs.

`time_steps` / `class_steps` (torch) sample, for each step count N of part_b.steps.step_counts and each sampler,
n = part_b.steps.num_images images of the last checkpoint and score them: FID and KID on the MNIST classifier's
features against the first n MNIST test images, class accuracy (class model only), and the wall time per 1,000
samples on the job's device. `steps` (no torch) gathers both models' metric CSVs into one table, plot and facts.

Timesteps of a chain of N calls: `denoising_timesteps(T, ceil(T / N), spacing)` (part_b.steps.timestep_spacing;
"leading" is diffusers' DDIM default, T = 300, N = 10 -> 270, 240, ..., 0), so N = T is the full chain of
Algorithm B.2. The samplers on that list (difflab.sampler.reverse):
    ddpm  posterior mean + sqrt(beta_t) z with beta_t = 1 - abar_t / abar_t' (Part B's variance, strided);
    ddim  Song et al. 2021 eq 12 with eta = part_b.ddpm.ddim_eta.
Random draws: a fresh make_generator(seed, "partb", "steps", kind, N) per (N, sampler): x_T, then one z per step,
so both samplers at equal N start from the same noise and see the same z (before them, one untimed 1-step
warm-up chain of 10 images from seed/"partb"/"steps"/kind/"warm-up"). Class labels: digit i % 10.
Model evaluations of a chain: N x forwards per step (2 with classifier-free guidance: conditional + unconditional).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from difflab import DifflabError
from difflab.experiments.part_b import g, number_list, percent

SAMPLERS = ("ddpm", "ddim")
METRICS = ("fid", "kid", "kid_std", "class_accuracy", "seconds_per_1000")


def steps_parameter(sampler: str, steps: int) -> str:
    """The metric rows' parameter, e.g. "sampler=ddim,steps=20"."""
    return f"sampler={sampler},steps={steps}"


def seconds_text(seconds: float) -> str:
    """Seconds as the report prints them: 3 significant digits, thousands with separators (0.0123, 4.56, 2,046)."""
    return f"{seconds:,.0f}" if seconds >= 1000 else g(seconds)


def model_evaluations(steps: int, guided: bool) -> int:
    """Network evaluations per image of a chain: steps x (2 with CFG, else 1)."""
    return steps * (2 if guided else 1)


@dataclass(frozen=True)
class StepsResult:
    """One entry per (step count, sampler), in that nesting order. sampler: (R,) "ddpm" | "ddim"; steps: (R,) model
    calls (len(timesteps) - 1); evaluations: (R,) steps x forwards per step; fid, kid, kid_std: (R,) on n images;
    class_accuracy: (R,) in [0, 1] (NaN for the time model); seconds_per_1000: (R,) wall seconds per 1,000 samples;
    samples: (R, 10, 1, 28, 28) the first ten images of each cell, in [0, 1]."""

    kind: str
    sampler: np.ndarray
    steps: np.ndarray
    evaluations: np.ndarray
    fid: np.ndarray
    kid: np.ndarray
    kid_std: np.ndarray
    class_accuracy: np.ndarray
    seconds_per_1000: np.ndarray
    samples: np.ndarray
    n: int
    epoch: int
    num_timesteps: int
    ddim_eta: float
    guidance: float
    spacing: str
    device: str
    rows: tuple = ()

    def facts(self) -> dict:
        facts = {"epoch": int(self.epoch), "n": int(self.n), "device": self.device, "num_timesteps": int(self.num_timesteps),
                 "ddim_eta": g(self.ddim_eta), "spacing": self.spacing}
        return facts if np.isnan(self.guidance) else {**facts, "guidance": g(self.guidance)}


def measure_steps(kind: str, settings, device, checkpoint: str, data: str, classifier: str) -> StepsResult:
    """The (step count, sampler) grid of the module docstring for one model. Raises DifflabError for a checkpoint of
    another model, fewer test images than part_b.steps.num_images, or a step count above T."""
    import torch

    from difflab.checkpoint import load_model
    from difflab.data import mnist_tensors
    from difflab.edit.algorithms import denoising_timesteps, stride_for_steps
    from difflab.experiments.part_b.checkpoints import load_unets
    from difflab.metrics.classifier import accuracy
    from difflab.metrics.fid import ClassifierFeatures, classifier_extractor_name, fid_score, kid_score, kid_subset_size
    from difflab.runtime import make_generator
    from difflab.performance import sample_batch
    from difflab.sampling import ddpm_sample

    (_, model, ckpt), = load_unets([checkpoint], device, (kind,))
    clf, _ = load_model(classifier, device)
    T, n = ckpt.schedule().num_timesteps, int(settings.num_images)
    if any(s > T for s in settings.step_counts):
        raise DifflabError(f"config key 'part_b.steps.step_counts' = {settings.step_counts}: expected counts <= T = {T}")
    real, _ = mnist_tensors(data, "test")
    if real.shape[0] < n:
        raise DifflabError(f"config key 'part_b.steps.num_images' = {n}: {data} has only {real.shape[0]} test images")
    real = real[:n]
    guided = kind == "class"
    labels = torch.arange(n, device=device) % 10 if guided else None
    guidance = float(settings.guidance_scale) if guided else float("nan")
    features, extractor = ClassifierFeatures(clf), classifier_extractor_name(int(clf.width))
    cells: dict[str, list] = {k: [] for k in ("sampler", "steps", *METRICS, "samples")}
    rows = []
    warm = make_generator(settings.seed, "partb", "steps", kind, "warm-up", device=device)  # not timed, not scored
    ddpm_sample(model, ckpt.schedule(), min(n, 10), warm, device, labels=None if labels is None else labels[:10],
                guidance_scale=guidance if guided else None, show_progress=False, timesteps=[T - 1, -1])
    for count in settings.step_counts:
        ts = denoising_timesteps(T, stride_for_steps(T, int(count)), spacing=settings.timestep_spacing)
        for sampler in SAMPLERS:
            generator = make_generator(settings.seed, "partb", "steps", kind, int(count), device=device)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            x, _ = ddpm_sample(model, ckpt.schedule(), n, generator, device, labels=labels,
                               guidance_scale=guidance if guided else None, batch_size=sample_batch(settings.sample_batch_size, n, device),
                               show_progress=False, timesteps=ts,
                               ddim_eta=float(settings.ddim_eta) if sampler == "ddim" else None)
            if torch.device(device).type == "cuda":
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - start) * 1000 / n
            x = x.clamp(0, 1).float().cpu()
            kid, kid_std = kid_score(real, x, features, kid_subset_size(n, int(settings.kid_subset_size)), int(settings.kid_subsets))
            values = {"fid": fid_score(real, x, features), "kid": kid, "kid_std": kid_std,
                      "class_accuracy": accuracy(clf, x, labels.cpu()) if guided else float("nan"),
                      "seconds_per_1000": seconds}
            for key, value in (("sampler", sampler), ("steps", len(ts) - 1), *values.items(), ("samples", x[:10].numpy())):
                cells[key].append(value)
            base = {"experiment": f"part_b_{kind}_steps", "model": kind, "epoch": int(ckpt.epoch),
                    "parameter": steps_parameter(sampler, len(ts) - 1), "n": n, "extractor": extractor}
            # Wall time is a measurement, not a result: it stays in result.npz and the facts, out of the metrics CSV,
            # whose bytes the same config and seed must reproduce (README "Faults and guarantees").
            rows += [{**base, "metric": m, "value": float(v)} for m, v in values.items()
                     if m != "seconds_per_1000" and not (m == "class_accuracy" and not guided)]
    steps = np.asarray(cells["steps"])
    return StepsResult(kind, np.asarray(cells["sampler"]), steps, np.asarray([model_evaluations(s, guided) for s in steps]),
                       *(np.asarray(cells[m], dtype=float) for m in METRICS), np.stack(cells["samples"]), n, int(ckpt.epoch), T,
                       float(settings.ddim_eta), guidance, str(settings.timestep_spacing), str(torch.device(device)), tuple(rows))


def time_steps(settings, device, checkpoint: str, data: str, classifier: str) -> StepsResult:
    return measure_steps("time", settings, device, checkpoint, data, classifier)


def class_steps(settings, device, checkpoint: str, data: str, classifier: str) -> StepsResult:
    return measure_steps("class", settings, device, checkpoint, data, classifier)


@dataclass(frozen=True)
class StepsSummary:
    """Both models' rows: model, sampler, steps, evaluations (R,); fid, kid, kid_std, class_accuracy (NaN for the time
    model), seconds_per_1000 (R,); n and extractor of the FID."""

    model: np.ndarray
    sampler: np.ndarray
    steps: np.ndarray
    evaluations: np.ndarray
    fid: np.ndarray
    kid: np.ndarray
    kid_std: np.ndarray
    class_accuracy: np.ndarray
    seconds_per_1000: np.ndarray
    n: int
    extractor: str
    rows: tuple = ()

    def value(self, metric: str, model: str, sampler: str, steps: int) -> float:
        hit = (self.model == model) & (self.sampler == sampler) & (self.steps == steps)
        return float(getattr(self, metric)[hit][0])

    def facts(self) -> dict:
        counts = sorted({int(s) for s in self.steps})
        few, full = (counts[1] if len(counts) > 1 else counts[0]), counts[-1]
        from difflab.metrics.extractors import fid_bias_note

        facts = {"n": int(self.n), "steps": number_list(counts), "few": few, "full": full, "extractor": self.extractor,
                 "fid_bias_note": fid_bias_note(int(self.n), self.extractor)}
        for model in ("time", "class"):
            for sampler in SAMPLERS:
                for label, count in (("few", few), ("full", full)):
                    key = f"{model}_{sampler}_{label}"
                    facts[f"{key}_fid"] = g(self.value("fid", model, sampler, count))
                    facts[f"{key}_seconds"] = seconds_text(self.value("seconds_per_1000", model, sampler, count))
                    if model == "class":
                        facts[f"{key}_accuracy"] = percent(self.value("class_accuracy", model, sampler, count))
            ddim = self.fid[(self.model == model) & (self.sampler == "ddim")]
            ddim_steps = self.steps[(self.model == model) & (self.sampler == "ddim")]
            facts[f"{model}_ddim_best_steps"] = int(ddim_steps[int(np.argmin(ddim))])
            fewer = self.value("fid", model, "ddim", few) < self.value("fid", model, "ddpm", few)
            facts[f"{model}_few_better"] = "DDIM" if fewer else "strided DDPM"
        return facts


def steps(settings, metrics: list[str], results: list[str]) -> StepsSummary:
    """Gather the metric CSVs of part_b.time_steps and part_b.class_steps, and their wall times per 1,000 samples
    from their result.npz files (no torch, no random draws). Raises DifflabError when a model or sampler is missing."""
    from difflab.metrics.tables import read_metrics

    df = read_metrics(*metrics)
    df = df[df["experiment"].isin(["part_b_time_steps", "part_b_class_steps"])]
    if set(df["model"]) != {"time", "class"}:
        raise DifflabError(f"steps summary: {', '.join(metrics)} hold models {sorted(set(df['model']))}; expected time and class")
    params = df["parameter"].str.extract(r"sampler=(\w+),steps=(\d+)")
    df = df.assign(sampler=params[0], steps=params[1].astype(int))
    table = df.pivot_table(index=["model", "sampler", "steps"], columns="metric", values="value", aggfunc="first")
    table = table.reindex(columns=list(METRICS)).reset_index()
    seconds = {}
    for path in results:
        with np.load(path, allow_pickle=False) as npz:
            kind = str(npz["kind"])
            seconds |= {(kind, str(a), int(b)): float(c) for a, b, c in zip(npz["sampler"], npz["steps"], npz["seconds_per_1000"])}
    table["seconds_per_1000"] = [seconds.get((m, a, int(b)), float("nan"))
                                 for m, a, b in zip(table["model"], table["sampler"], table["steps"])]
    table["order"] = table["model"].map({"time": 0, "class": 1})
    table["sampler_order"] = table["sampler"].map({s: i for i, s in enumerate(SAMPLERS)})
    table = table.sort_values(["order", "sampler_order", "steps"])
    model, sampler, count = (table[c].to_numpy() for c in ("model", "sampler", "steps"))
    evaluations = np.asarray([model_evaluations(int(s), m == "class") for m, s in zip(model, count)])
    return StepsSummary(model.astype(str), sampler.astype(str), count.astype(int), evaluations,
                        *(table[m].to_numpy(dtype=float) for m in METRICS),
                        int(df["n"].max()), str(df[df["metric"] == "fid"]["extractor"].iloc[0]))
