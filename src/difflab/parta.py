"""Part A's experiments over a Denoiser backend: `python -m difflab parta <experiment> ...`.

Each experiment writes its figures (PNG) into --out-dir, a report snippet (Pandoc markdown, no headings) to
--snippet and, with --metrics-out, its numbers as a tidy CSV (difflab.metrics.tables). The settings JSON is the
config's `part_a` section plus the top-level `seed` and `device`.

Experiments (CS180 project 5, Part A): sampling (0), forward (1.1), blur (1.2), one_step (1.3), iterative (1.4),
benchmark (MSE/PSNR/SSIM of the three denoisers), samples (1.5), cfg (1.6), sdedit (1.7), sdedit_inputs (1.7.1),
inpaint (1.7.2), img2img (1.7.3), anagrams (1.8), hybrids (1.9), illusions (classifier-measured success rates).

With the MNIST backend, "a high quality photo" (the writeup's content-free prompt) is played by the null
condition where no guidance is used (1.3-1.5); 1.6 guides each sample towards a uniformly drawn digit, and
SDEdit (1.7, 1.7.1) and inpainting (1.7.2) guide towards the digit the input shows. See edit/backends/mnist.py.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from difflab import DifflabError
from difflab.edit import algorithms as A
from difflab.edit import inputs
from difflab.edit.backends import load_backend
from difflab.io import stderr_logger, write_text
from difflab.runtime import configure_threads, make_generator, resolve_device

PEN_WIDTH = 2.6  # "hand-drawn" stroke width in pixels of the 28 x 28 frame
PEN_WOBBLE = 0.02  # per-point jitter of the hand-drawn strokes, in units of the digit's height
PREVIEW_EVERY = 5  # 1.4 shows every 5th loop of the iterative denoiser


log = stderr_logger("difflab parta")


# --- settings -----------------------------------------------------------------------------------------------


def _bad(key: str, value, expected: str) -> DifflabError:
    return DifflabError(f"config key 'part_a.{key}' is {value!r}; expected {expected}")


def _get(settings: dict, key: str):
    if key not in settings:
        raise DifflabError(f"config key 'part_a.{key}' is missing from --settings")
    return settings[key]


def _int(settings: dict, key: str, lo: int = 0, hi: int | None = None) -> int:
    value = _get(settings, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        raise _bad(key, value, f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""))
    return value


def _number(settings: dict, key: str, lo: float = 0.0, strict: bool = False) -> float:
    value = _get(settings, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < lo or (strict and value == lo):
        raise _bad(key, value, f"a number {'>' if strict else '>='} {lo:g}")
    return float(value)


def _list(settings: dict, key: str, check: Callable[[object], bool], what: str) -> list:
    value = _get(settings, key)
    if not isinstance(value, list) or not value or not all(check(v) for v in value):
        raise _bad(key, value, f"a non-empty list of {what}")
    return value


def _is_int(v, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_pair(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(isinstance(p, str) for p in v)


# --- the experiment context ---------------------------------------------------------------------------------


@dataclass
class Context:
    experiment: str
    den: object  # a Denoiser
    settings: dict
    seed: int
    out_dir: Path
    data: str | None
    data_sha256: dict | None
    classifier_path: str | None
    rows: list[dict] = field(default_factory=list)
    _classifier: object = None

    @property
    def T(self) -> int:
        return int(self.den.alphas_cumprod.shape[0])

    @property
    def cfg_scale(self) -> float:
        return _number(self.settings, "cfg_scale")

    def generator(self, *keys) -> torch.Generator:
        """The experiment's random stream: derived from the config seed, the experiment and `keys`."""
        return make_generator(self.seed, "part_a", self.experiment, *keys, device=self.den.device)

    def figure_path(self, name: str) -> Path:
        return self.out_dir / name

    def figure(self, name: str, caption: str, label: str) -> str:
        """Markdown for a figure in the out dir, its path relative to where the CLI runs (the repository root)."""
        return f"![{caption}]({self.figure_path(name).as_posix()}){{#fig-a-{label}}}"

    def metric(self, parameter: str, metric: str, value: float, n: int | None = None, extractor: str = "") -> None:
        self.rows.append({"experiment": f"part_a_{self.experiment}", "model": "class", "epoch": getattr(self.den, "epoch", None),
                          "parameter": parameter, "metric": metric, "value": float(value), "n": n, "extractor": extractor})

    def timesteps(self) -> list[int]:
        return A.denoising_timesteps(self.T, _int(self.settings, "stride", 1))

    def noise_timesteps(self, stride: int | None = None) -> list[int]:
        """Timesteps of a chain from pure noise: `stride` (default config 'stride') in config 'timestep_spacing'."""
        spacing = _get(self.settings, "timestep_spacing")
        if spacing not in A.SPACINGS:
            raise _bad("timestep_spacing", spacing, " or ".join(A.SPACINGS))
        return A.denoising_timesteps(self.T, stride or _int(self.settings, "stride", 1), spacing=spacing)

    def i_start(self, key: str, value: int, timesteps: list[int]) -> int:
        if not 0 <= value < len(timesteps) - 1:
            raise _bad(key, value, f"an index into the {len(timesteps) - 1} strided timesteps "
                                   f"{timesteps[0]}..{timesteps[-2]}, i.e. 0..{len(timesteps) - 2}")
        return value

    def encode(self, key: str, prompts: list[str]) -> Tensor:
        """Conditions (len(prompts), ...) for prompts from config key `key`; errors name the key."""
        conds = []
        for i, prompt in enumerate(prompts):
            try:
                conds.append(self.den.encode(prompt))
            except DifflabError as exc:
                raise DifflabError(f"config key 'part_a.{key}[{i}]': {exc}") from None
        return torch.cat(conds)

    def need_data(self) -> str:
        if not self.data:
            raise DifflabError(f"experiment {self.experiment!r} needs --data (the MNIST cache results/data/mnist.npz)")
        return self.data

    def test_images(self) -> tuple[Tensor, Tensor, list[int]]:
        indices = _list(self.settings, "test_images", _is_int, "MNIST test indices")
        x, y = inputs.mnist_test_images(self.need_data(), indices, self.data_sha256)
        return x.to(self.den.device), y.to(self.den.device), indices

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        x, y = inputs.mnist_split(self.need_data(), split, self.data_sha256)
        return x.to(self.den.device), y.to(self.den.device)

    def classifier(self, required: bool):
        """The Part B MNIST classifier from --classifier, or None when it is optional and not given."""
        if self._classifier is None and self.classifier_path:
            from difflab.checkpoint import load_model

            model, ckpt = load_model(self.classifier_path, self.den.device)
            if ckpt.get("architecture") != "classifier":
                raise DifflabError(f"{self.classifier_path}: architecture is {ckpt.get('architecture')!r}; expected 'classifier'")
            self._classifier = model
        if self._classifier is None and required:
            raise DifflabError(f"experiment {self.experiment!r} needs --classifier (results/classifier/classifier.pt)")
        return self._classifier

    def levels(self) -> list[int]:
        """The noise levels of 1.1-1.3 and the benchmark: t = round(fraction * T), at most T - 1."""
        fractions = _list(self.settings, "forward_fractions", lambda f: isinstance(f, (int, float)) and 0 < f < 1,
                          "fractions in (0, 1)")
        return [min(self.T - 1, round(f * self.T)) for f in fractions]


def digit_conditions(ctx: Context, digits: list[int]) -> Tensor:
    """Conditions (N, ...) for digits, through the backend's prompt encoder ("a 3")."""
    return torch.cat([ctx.den.encode(f"a {int(d)}") for d in digits])


def clamp(ctx: Context, x: Tensor) -> Tensor:
    lo, hi = ctx.den.value_range
    return x.clamp(lo, hi)


@torch.no_grad()
def classify(model, images: Tensor) -> tuple[Tensor, Tensor]:
    """(predicted digit, its softmax probability) for images in [0, 1]."""
    probs = torch.softmax(model(images.clamp(0, 1)), dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


def fmt(values, digits: int = 2, sep: str = ", ") -> str:
    return sep.join(f"{float(v):.{digits}f}" for v in values)


def quoted(prompts) -> str:
    return ", ".join(f"“{p}”" for p in prompts)


def interleave(columns: list[Tensor]) -> Tensor:
    """Row-major grid order from per-column batches: image k of every column, then image k + 1, ..."""
    return torch.stack(columns, dim=1).flatten(0, 1)


def save_grid(ctx: Context, name: str, images: Tensor, nrow: int, **kwargs) -> None:
    from difflab import viz

    viz.save_grid(ctx.figure_path(name), clamp(ctx, images).cpu(), nrow=nrow, **kwargs)


# --- shared pieces ------------------------------------------------------------------------------------------


def quality(x: Tensor, x0: Tensor, ssim: bool = False) -> dict[str, Tensor]:
    """Per-image MSE and PSNR (and SSIM when asked: it imports torchmetrics) of x against x0, images in [0, 1]."""
    from difflab.metrics.image_quality import mse_per_image, psnr_from_mse, ssim_per_image

    x, x0 = x.float().cpu(), x0.float().cpu()
    mse = mse_per_image(x, x0)
    scores = {"mse": mse, "psnr": psnr_from_mse(mse)}
    if ssim:
        scores["ssim"] = ssim_per_image(x, x0)
    return scores


def trend(first: float, last: float) -> str:
    return "rises" if last > first else "falls" if last < first else "stays"


def best_blur_sigmas(ctx: Context, levels: list[int]) -> dict[int, float]:
    """For each t, the candidate blur sigma (config 'blur_sigmas') with the lowest mean MSE on noisy training
    images (as many as the benchmark uses, so the test images never choose their own filter)."""
    from difflab.metrics.image_quality import mse_per_image

    sigmas = _list(ctx.settings, "blur_sigmas", lambda s: isinstance(s, (int, float)) and s > 0, "positive numbers")
    train, _ = ctx.split("train")
    train = train[: _int(ctx.settings, "benchmark_num_images", 1)]
    schedule = A.schedule_of(ctx.den)
    best = {}
    for t in sorted(set(levels)):
        # the same noise for a given t in blur, iterative and benchmark, so they agree on the choice
        x_t = A.forward(ctx.den, train, t, make_generator(ctx.seed, "part_a", "blur_selection", t, device=ctx.den.device))
        mse = [float(mse_per_image(clamp(ctx, A.blur_denoise(x_t, schedule.abar(t), s)), train).mean()) for s in sigmas]
        best[t] = float(sigmas[min(range(len(sigmas)), key=mse.__getitem__)])
    return best


# --- 0: sampling --------------------------------------------------------------------------------------------


def exp_sampling(ctx: Context) -> str:
    prompts = _list(ctx.settings, "sample_prompts", lambda p: isinstance(p, str), "prompts")
    step_counts = _list(ctx.settings, "sample_step_counts", lambda n: _is_int(n, 1), "positive step counts")
    S = _int(ctx.settings, "num_samples", 1)
    gamma = ctx.cfg_scale
    cond = ctx.encode("sample_prompts", prompts).repeat_interleave(S, dim=0)
    x_T = A.pure_noise(ctx.den, len(prompts) * S, ctx.generator("noise"))
    rows, labels, used = [], [], []
    for n in step_counts:
        ts = ctx.noise_timesteps(A.stride_for_steps(ctx.T, n))
        used.append(len(ts) - 1)
        x = A.iterative_denoise(ctx.den, x_T, 0, ts, cond, ctx.generator("steps", n), gamma, desc=f"sampling, {n} steps")
        rows.append(x)
        labels += [f"“{p}”\n{len(ts) - 1} steps" for p in prompts]
    grid = torch.cat(rows)
    save_grid(ctx, "sampling.png", grid, nrow=len(prompts) * len(step_counts), row_labels=labels)
    text = (f"We sample the prompts {quoted(prompts)} from pure noise with classifier-free guidance "
            f"($\\gamma = {gamma:g}$) at {' and '.join(str(u) for u in used)} denoising steps (strided timesteps), "
            f"{S} samples per prompt from the same initial noise for every step count.")
    text += _classifier_sentence(ctx, grid, torch.cat([cond.argmax(dim=1)] * len(step_counts)),
                                 [(f"steps={u}", f"{u} steps") for u in used], len(prompts) * S)
    caption = (f"Samples for {quoted(prompts)} with {' and '.join(str(u) for u in used)} steps (rows), CFG γ = {gamma:g}, "
               f"T = {ctx.T}; same initial noise per column; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("sampling.png", caption, "sampling") + "\n"


def _classifier_sentence(ctx: Context, images: Tensor, intended: Tensor, groups: list[tuple[str, str]], group_size: int) -> str:
    """With --classifier: the share of each group of `group_size` images that the classifier reads as the intended
    digit, as a sentence plus metric rows; groups are (metric parameter, words for the sentence). Without it: ''."""
    model = ctx.classifier(required=False)
    if model is None:
        return ""
    pred, _ = classify(model, images)
    hits = (pred == intended.to(pred.device)).float().reshape(len(groups), group_size).mean(dim=1)
    for (parameter, _), rate in zip(groups, hits):
        ctx.metric(parameter, "classifier_agreement", float(rate), group_size)
    parts = [f"{100 * float(r):.0f}%" + (f" ({words})" if words else "") for (_, words), r in zip(groups, hits)]
    return f" The Part B classifier reads the intended digit in {', '.join(parts)} of them."


# --- 1.1-1.4: forward, blur, one-step, iterative -------------------------------------------------------------


def exp_forward(ctx: Context) -> str:
    x0, _, idx = ctx.test_images()
    levels = ctx.levels()
    g = ctx.generator()
    schedule = A.schedule_of(ctx.den)
    noisy = [A.forward(ctx.den, x0, t, g) for t in levels]
    abar = [float(schedule.abar(t)) for t in levels]
    for t, a, x_t in zip(levels, abar, noisy):
        ctx.metric(f"t={t}", "abar", a)
        ctx.metric(f"t={t}", "psnr_mean", float(quality(clamp(ctx, x_t), x0)["psnr"].mean()), len(idx))
    titles = ["original"] + [f"t = {t}" for t in levels]
    save_grid(ctx, "forward.png", interleave([x0] + noisy), nrow=len(idx), titles=titles)
    text = (f"The forward process $x_t = \\sqrt{{\\bar\\alpha_t}}\\,x_0 + \\sqrt{{1-\\bar\\alpha_t}}\\,\\epsilon$ noises MNIST "
            f"test images {', '.join(map(str, idx))} to $t = {', '.join(map(str, levels))}$ of $T = {ctx.T}$ "
            f"(the writeup's 250, 500, 750 of 1000 as fractions of $T$): the signal weight $\\sqrt{{\\bar\\alpha_t}}$ "
            f"falls to {fmt([a ** 0.5 for a in abar])} while the noise standard deviation $\\sqrt{{1-\\bar\\alpha_t}}$ "
            f"rises to {fmt([(1 - a) ** 0.5 for a in abar])}.")
    caption = f"Forward process on MNIST test images {', '.join(map(str, idx))} at t = {', '.join(map(str, levels))} of T = {ctx.T}; seed {ctx.seed}"
    return text + "\n\n" + ctx.figure("forward.png", caption, "forward") + "\n"


def exp_blur(ctx: Context) -> str:
    x0, _, idx = ctx.test_images()
    levels = ctx.levels()
    best = best_blur_sigmas(ctx, levels)
    g = ctx.generator()
    schedule = A.schedule_of(ctx.den)
    cols, titles, psnr = [], [], []
    for t in levels:
        x_t = A.forward(ctx.den, x0, t, g)
        blurred = A.blur_denoise(x_t, schedule.abar(t), best[t])
        cols += [x_t, blurred]
        titles += [f"noisy t = {t}", f"blur σ = {best[t]:g}"]
        psnr.append(float(quality(clamp(ctx, blurred), x0)["psnr"].mean()))
        ctx.metric(f"t={t}", "blur_sigma", best[t])
        ctx.metric(f"t={t}", "blur_psnr_mean", psnr[-1], len(idx))
    save_grid(ctx, "blur.png", interleave(cols), nrow=len(idx), titles=titles)
    text = (f"Classical denoising blurs the noisy image rescaled to the clean image's range, "
            f"$\\hat x_0 = G_\\sigma * (x_t/\\sqrt{{\\bar\\alpha_t}})$, with the Gaussian $\\sigma$ per noise level picked "
            f"from {{{', '.join(f'{s:g}' for s in _get(ctx.settings, 'blur_sigmas'))}}} by the lowest MSE on noisy training "
            f"images ($\\sigma$ = {', '.join(f'{best[t]:g}' for t in levels)} at $t$ = {', '.join(map(str, levels))}); "
            f"on the test images shown the PSNR is {fmt(psnr, 1)} dB.")
    caption = (f"Gaussian-blur denoising of MNIST test images {', '.join(map(str, idx))} at t = {', '.join(map(str, levels))} "
               f"(T = {ctx.T}), best σ per level; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("blur.png", caption, "blur") + "\n"


def exp_one_step(ctx: Context) -> str:
    x0, _, idx = ctx.test_images()
    levels = ctx.levels()
    g = ctx.generator()
    null = ctx.den.null_condition(len(idx))
    cols, titles, psnr = [x0], ["original"], []
    for t in levels:
        x_t = A.forward(ctx.den, x0, t, g)
        x0_hat = A.one_step_denoise(ctx.den, x_t, t, null)
        cols += [x_t, x0_hat]
        titles += [f"noisy t = {t}", "one-step"]
        psnr.append(float(quality(clamp(ctx, x0_hat), x0)["psnr"].mean()))
        ctx.metric(f"t={t}", "one_step_psnr_mean", psnr[-1], len(idx))
    save_grid(ctx, "one_step.png", interleave(cols), nrow=len(idx), titles=titles)
    text = (f"One-step denoising inverts the forward process with the model's noise estimate under the null condition "
            f"(the MNIST stand-in for “a high quality photo”): $\\hat x_0 = (x_t - \\sqrt{{1-\\bar\\alpha_t}}\\,"
            f"\\hat\\epsilon_\\theta(x_t, t, \\varnothing))/\\sqrt{{\\bar\\alpha_t}}$. At $t$ = {', '.join(map(str, levels))} "
            f"the estimates reach {fmt(psnr, 1)} dB PSNR on the images shown.")
    caption = (f"One-step denoising of MNIST test images {', '.join(map(str, idx))} at t = {', '.join(map(str, levels))} "
               f"(T = {ctx.T}), null condition; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("one_step.png", caption, "one-step") + "\n"


def exp_iterative(ctx: Context) -> str:
    x0, _, idx = ctx.test_images()
    ts = ctx.timesteps()
    i_start = ctx.i_start("i_start", _int(ctx.settings, "i_start"), ts)
    t0 = ts[i_start]
    sigma = best_blur_sigmas(ctx, [t0])[t0]
    g = ctx.generator()
    null = ctx.den.null_condition(len(idx))
    x_t = A.forward(ctx.den, x0, t0, g)
    shown, shown_t = [x_t], [t0]

    def keep(i: int, t: int, x: Tensor) -> None:
        if (i - i_start) % PREVIEW_EVERY == 0 and t >= 0:
            shown.append(x)
            shown_t.append(t)

    final = A.iterative_denoise(ctx.den, x_t, i_start, ts, null, g, callback=keep, desc="iterative denoising")
    one_step = A.one_step_denoise(ctx.den, x_t, t0, null)
    blurred = A.blur_denoise(x_t, A.schedule_of(ctx.den).abar(t0), sigma)
    save_grid(ctx, "iterative_steps.png", interleave(shown + [final]), nrow=len(idx),
              titles=[f"t = {t}" for t in shown_t] + ["final"])
    methods = {"iterative": final, "one_step": one_step, "blur": blurred}
    psnr = {m: float(quality(clamp(ctx, x), x0)["psnr"].mean()) for m, x in methods.items()}
    for m, v in psnr.items():
        ctx.metric(f"t={t0}", f"{m}_psnr_mean", v, len(idx))
    save_grid(ctx, "iterative_compare.png", interleave([x0, x_t, final, one_step, blurred]), nrow=len(idx),
              titles=["original", f"noisy t = {t0}", "iterative", "one-step", f"blur σ = {sigma:g}"])
    stride = ts[0] - ts[1] if len(ts) > 2 else 1
    text = (f"Iterative denoising walks the strided timesteps {ts[0]}, {ts[1]}, …, 0 (stride {stride}) from $i_{{start}} = {i_start}$ "
            f"($t = {t0}$) with the DDPM posterior step $x_{{t'}} = \\frac{{\\sqrt{{\\bar\\alpha_{{t'}}}}\\beta_t}}{{1-\\bar\\alpha_t}}\\hat x_0 + "
            f"\\frac{{\\sqrt{{\\alpha_t}}(1-\\bar\\alpha_{{t'}})}}{{1-\\bar\\alpha_t}}x_t + \\sigma_t z$, "
            f"$\\alpha_t = \\bar\\alpha_t/\\bar\\alpha_{{t'}}$, where the MNIST model has no learned variance, so "
            f"$\\sigma_t^2 = \\tilde\\beta_t = \\frac{{1-\\bar\\alpha_{{t'}}}}{{1-\\bar\\alpha_t}}\\beta_t$. On the images shown it reaches "
            f"{psnr['iterative']:.1f} dB PSNR against {psnr['one_step']:.1f} dB for one step and {psnr['blur']:.1f} dB for the blur.")
    cap1 = (f"Iterative denoising of MNIST test images {', '.join(map(str, idx))} from i_start = {i_start} (t = {t0}, stride {stride}, "
            f"T = {ctx.T}), every {PREVIEW_EVERY}th step and the result; null condition, no CFG; seed {ctx.seed}")
    cap2 = f"Iterative vs one-step vs Gaussian blur (σ = {sigma:g}) from the same noisy images at t = {t0}; seed {ctx.seed}"
    return (text + "\n\n" + ctx.figure("iterative_steps.png", cap1, "iterative") + "\n\n"
            + ctx.figure("iterative_compare.png", cap2, "iterative-compare") + "\n")


# --- denoiser benchmark -------------------------------------------------------------------------------------

METHOD_NAMES = {"blur": "Gaussian blur", "one_step": "one-step", "iterative": "iterative"}


def exp_benchmark(ctx: Context) -> str:
    from difflab.metrics.image_quality import summarize

    n = _int(ctx.settings, "benchmark_num_images", 1)
    test, _ = ctx.split("test")
    if n > len(test):
        raise _bad("benchmark_num_images", n, f"at most the {len(test)} test images in {ctx.data}")
    x0 = test[:n]
    levels = ctx.levels()
    stride = _int(ctx.settings, "stride", 1)
    best = best_blur_sigmas(ctx, levels)
    schedule = A.schedule_of(ctx.den)
    null = ctx.den.null_condition(n)
    results: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for t in levels:
        g = ctx.generator("level", t)
        x_t = A.forward(ctx.den, x0, t, g)
        outputs = {
            "blur": A.blur_denoise(x_t, schedule.abar(t), best[t]),
            "one_step": A.one_step_denoise(ctx.den, x_t, t, null),
            "iterative": A.iterative_denoise(ctx.den, x_t, 0, A.denoising_timesteps(ctx.T, stride, start=t), null, g,
                                             desc=f"benchmark t={t}"),
        }
        for method, x in outputs.items():
            scores = quality(clamp(ctx, x), x0, ssim=True)
            results[method, t] = {k: summarize(v) for k, v in scores.items()}
            for k, (mean, std) in results[method, t].items():
                ctx.metric(f"t={t}", f"{method}_{k}_mean", mean, n)
                ctx.metric(f"t={t}", f"{method}_{k}_std", std, n)
    _benchmark_plot(ctx, results, levels)
    lines = ["| $t$ | method | MSE | PSNR (dB) | SSIM |", "|---:|:---|---:|---:|---:|"]
    for t in levels:
        for method in METHOD_NAMES:
            r = results[method, t]
            name = METHOD_NAMES[method] + (f" (σ = {best[t]:g})" if method == "blur" else "")
            lines.append(f"| {t} | {name} | {r['mse'][0]:.4f} ± {r['mse'][1]:.4f} | {r['psnr'][0]:.2f} ± {r['psnr'][1]:.2f} "
                         f"| {r['ssim'][0]:.3f} ± {r['ssim'][1]:.3f} |")
    hi = levels[-1]
    text = (f"The three denoisers are scored against the clean image on the first {n} MNIST test images at each noise level "
            f"(outputs clamped to [0, 1]; blur with the best σ per level chosen on training images, iterative denoising from "
            f"exactly $t$ with stride {stride}). At $t = {hi}$ iterative denoising reaches "
            f"{results['iterative', hi]['psnr'][0]:.2f} dB PSNR and SSIM {results['iterative', hi]['ssim'][0]:.3f}, "
            f"one-step {results['one_step', hi]['psnr'][0]:.2f} dB and {results['one_step', hi]['ssim'][0]:.3f}, "
            f"blur {results['blur', hi]['psnr'][0]:.2f} dB and {results['blur', hi]['ssim'][0]:.3f} (means over images; the table adds the standard deviations).")
    best_psnr = max(METHOD_NAMES, key=lambda m: results[m, hi]["psnr"][0])
    best_ssim = max(METHOD_NAMES, key=lambda m: results[m, hi]["ssim"][0])
    if best_psnr == best_ssim:
        text += f" {METHOD_NAMES[best_psnr].capitalize()} is best on both measures there."
    else:
        text += (f" The two measures disagree there: {METHOD_NAMES[best_psnr]} has the best PSNR (the lowest squared error, "
                 f"which an average of plausible digits wins) and {METHOD_NAMES[best_ssim]} the best SSIM (local structure).")
    table = "\n".join(lines) + (f"\n\n: Denoiser benchmark on {n} MNIST test images, mean ± std, T = {ctx.T}; "
                                f"seed {ctx.seed} {{#tbl-a-benchmark}}\n")
    caption = f"MSE, PSNR and SSIM (mean ± std over {n} test images) of blur, one-step and iterative denoising vs t (T = {ctx.T}); seed {ctx.seed}"
    return text + "\n\n" + table + "\n" + ctx.figure("benchmark.png", caption, "benchmark") + "\n"


def _benchmark_plot(ctx: Context, results: dict, levels: list[int]) -> None:
    import matplotlib.pyplot as plt

    from difflab.viz import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, (key, label) in zip(axes, [("mse", "MSE"), ("psnr", "PSNR (dB)"), ("ssim", "SSIM")]):
        for method, name in METHOD_NAMES.items():
            means = [results[method, t][key][0] for t in levels]
            stds = [results[method, t][key][1] for t in levels]
            ax.errorbar(levels, means, yerr=stds, label=name, marker="o", capsize=3, linewidth=1.3, markersize=4)
        ax.set_xlabel("noise level t")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, ctx.figure_path("benchmark.png"))


# --- 1.5, 1.6: sampling without and with CFG ----------------------------------------------------------------


def exp_samples(ctx: Context) -> str:
    S = _int(ctx.settings, "num_samples", 1)
    g = ctx.generator()
    x = A.iterative_denoise(ctx.den, A.pure_noise(ctx.den, S, g), 0, ctx.noise_timesteps(), ctx.den.null_condition(S), g,
                            desc="samples")
    titles, extra = None, ""
    model = ctx.classifier(required=False)
    if model is not None:
        pred, conf = classify(model, x)
        titles = [f"reads {int(p)} ({float(c):.2f})" for p, c in zip(pred, conf)]
        ctx.metric("", "classifier_confidence_mean", float(conf.mean()), S)
        extra = f" The Part B classifier reads them as {', '.join(str(int(p)) for p in pred)} with mean confidence {float(conf.mean()):.2f}."
    save_grid(ctx, "samples.png", x, nrow=1, titles=titles)
    text = (f"Sampling from pure noise ($i_{{start}} = 0$) with the null condition and no guidance draws from the model's "
            f"unconditional distribution, the MNIST counterpart of “a high quality photo” without CFG; {S} samples." + extra)
    caption = f"{S} samples from pure noise, null condition, no CFG, T = {ctx.T}, stride {_int(ctx.settings, 'stride', 1)}; seed {ctx.seed}"
    return text + "\n\n" + ctx.figure("samples.png", caption, "samples") + "\n"


def exp_cfg(ctx: Context) -> str:
    S = _int(ctx.settings, "num_samples", 1)
    gamma = ctx.cfg_scale
    g = ctx.generator()
    digits = torch.randint(0, 10, (S,), generator=g, device=ctx.den.device)
    cond = digit_conditions(ctx, digits.tolist())
    x = A.iterative_denoise(ctx.den, A.pure_noise(ctx.den, S, g), 0, ctx.noise_timesteps(), cond, g, gamma, desc="CFG samples")
    save_grid(ctx, "cfg.png", x, nrow=1, titles=[f"“a {int(d)}”" for d in digits])
    text = (f"Classifier-free guidance combines the conditional and the null-condition estimates, "
            f"$\\epsilon = \\epsilon_u + \\gamma(\\epsilon_c - \\epsilon_u)$ with $\\gamma = {gamma:g}$. The MNIST model has no "
            f"content-free condition that CFG could sharpen, so each sample is guided towards a digit drawn uniformly at random "
            f"(the guided counterpart of sampling the whole distribution).")
    text += _classifier_sentence(ctx, x, digits, [(f"guidance={gamma:g}", "")], S)
    caption = (f"{S} CFG samples, γ = {gamma:g}, each guided to a random digit ({', '.join(str(int(d)) for d in digits)}), "
               f"T = {ctx.T}; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("cfg.png", caption, "cfg") + "\n"


# --- 1.7: SDEdit, inputs, inpainting, image-to-image --------------------------------------------------------


def _sdedit_series(ctx: Context, x0: Tensor, cond: Tensor, key: str, tag: str) -> tuple[list[Tensor], list[int], list[int]]:
    """SDEdit of every image at every i_start in config 'sdedit_i_starts', with CFG."""
    ts = ctx.timesteps()
    starts = [ctx.i_start(key, i, ts) for i in _list(ctx.settings, key, _is_int, "indices")]
    outs = [A.sdedit(ctx.den, x0, i, ts, cond, ctx.generator(tag, i), ctx.cfg_scale, desc=f"{tag} i_start={i}") for i in starts]
    return outs, starts, [ts[i] for i in starts]


def exp_sdedit(ctx: Context) -> str:
    x0, labels, idx = ctx.test_images()
    gamma = ctx.cfg_scale
    outs, starts, t_values = _sdedit_series(ctx, x0, digit_conditions(ctx, labels.tolist()), "sdedit_i_starts", "sdedit")
    psnr = []
    for i, x in zip(starts, outs):
        psnr.append(float(quality(clamp(ctx, x), x0)["psnr"].mean()))
        ctx.metric(f"i_start={i}", "psnr_to_input_mean", psnr[-1], len(idx))
    save_grid(ctx, "sdedit.png", interleave(outs + [x0]), nrow=len(idx),
              titles=[f"i={i} (t={t})" for i, t in zip(starts, t_values)] + ["original"])
    text = (f"SDEdit noises each test image to $t$ = timesteps[$i_{{start}}$] and denoises it with CFG ($\\gamma = {gamma:g}$), "
            f"guided by the digit the image shows (its label); a larger $i_{{start}}$ starts from less noise. The PSNR to the "
            f"original {trend(psnr[0], psnr[-1])} from {psnr[0]:.1f} dB at $i_{{start}} = {starts[0]}$ ($t = {t_values[0]}$) "
            f"to {psnr[-1]:.1f} dB at $i_{{start}} = {starts[-1]}$ ($t = {t_values[-1]}$).")
    caption = (f"SDEdit of MNIST test images {', '.join(map(str, idx))} at i_start = {', '.join(map(str, starts))}, "
               f"conditioned on each image's label, CFG γ = {gamma:g}; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("sdedit.png", caption, "sdedit") + "\n"


def exp_sdedit_inputs(ctx: Context) -> str:
    hand = _list(ctx.settings, "hand_drawn_digits", lambda d: _is_int(d) and d <= 9, "digits 0-9")
    web = _list(ctx.settings, "web_digits", lambda d: _is_int(d) and d <= 9, "digits 0-9")
    g = ctx.generator("pen")
    images = [inputs.stroke_digit(d, PEN_WIDTH, PEN_WOBBLE, g) for d in hand] + [inputs.font_digit(d) for d in web]
    names = [f"hand-drawn {d}" for d in hand] + [f"DejaVu Sans {d}" for d in web]
    digits: list[int | None] = list(hand) + list(web)
    images_dir = Path(ctx.settings.get("images_dir") or "data/images")
    loaded, skipped = inputs.load_user_images(images_dir)
    for path, image, notes in loaded:
        for note in notes:
            log(f"{path}: {note}")
        digit = inputs.digit_in_name(path)
        if digit is None:
            log(f"{path}: no digit at the start of the file name; guided by the null condition (unguided SDEdit)")
        images.append(image)
        names.append(Path(path).name)
        digits.append(digit)
    for path, reason in skipped:
        log(f"skipped {path}: {reason}")
    x0 = torch.stack(images).to(ctx.den.device)
    cond = torch.cat([digit_conditions(ctx, [d]) if d is not None else ctx.den.null_condition(1) for d in digits])
    gamma = ctx.cfg_scale
    outs, starts, t_values = _sdedit_series(ctx, x0, cond, "sdedit_i_starts", "sdedit_inputs")
    save_grid(ctx, "sdedit_inputs.png", interleave(outs + [x0]), nrow=len(images), row_labels=names,
              titles=[f"i={i} (t={t})" for i, t in zip(starts, t_values)] + ["input"])
    psnr = [float(quality(clamp(ctx, x), x0)["psnr"].mean()) for x in outs]
    for i, v in zip(starts, psnr):
        ctx.metric(f"i_start={i}", "psnr_to_input_mean", v, len(images))
    text = (f"The same SDEdit series on inputs the pipeline makes itself: {len(hand)} digit(s) drawn as pen strokes "
            f"({', '.join(map(str, hand))}), {len(web)} digit(s) set in DejaVu Sans ({', '.join(map(str, web))}) as the "
            f"“web” image, and {len(loaded)} image(s) from `{images_dir.as_posix()}/`, all centred like MNIST; CFG $\\gamma = {gamma:g}$ "
            f"towards each input's digit. The PSNR to the input {trend(psnr[0], psnr[-1])} from {psnr[0]:.1f} dB at $i_{{start}} = {starts[0]}$ "
            f"to {psnr[-1]:.1f} dB at $i_{{start}} = {starts[-1]}$.")
    if skipped:
        text += " Skipped (unreadable): " + "; ".join(f"`{Path(p).name}` ({r})" for p, r in skipped) + "."
    caption = (f"SDEdit of hand-drawn, font-rendered and user images at i_start = {', '.join(map(str, starts))}, CFG γ = {gamma:g}; "
               f"seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("sdedit_inputs.png", caption, "sdedit-inputs") + "\n"


def _masks(ctx: Context) -> list[Tensor]:
    """part_a.inpaint_masks: each a rectangle [row0, row1, col0, col1] or the path of a black-and-white mask image."""
    C, H, W = ctx.den.image_shape
    masks = []
    for i, item in enumerate(_get(ctx.settings, "inpaint_masks")):
        key = f"config key 'part_a.inpaint_masks[{i}]'"
        if isinstance(item, str):
            try:
                m = inputs.load_mask(item, H, W)
            except DifflabError as exc:
                raise DifflabError(f"{key}: {exc}") from None
            masks.append(m.expand(C, H, W).unsqueeze(0).to(ctx.den.device))
            continue
        if not (isinstance(item, list) and len(item) == 4 and all(_is_int(v) for v in item)
                and 0 <= item[0] < item[1] <= H and 0 <= item[2] < item[3] <= W):
            raise DifflabError(f"{key} is {item!r}; expected [row0, row1, col0, col1] with 0 <= row0 < row1 <= {H} "
                               f"and 0 <= col0 < col1 <= {W}, or the path of a {W} x {H} black-and-white mask image")
        m = torch.zeros(1, C, H, W, device=ctx.den.device)
        m[..., item[0]:item[1], item[2]:item[3]] = 1
        masks.append(inputs.check_mask(m, f"{key} = {item!r}"))
    if not masks:
        raise _bad("inpaint_masks", [], "a non-empty list of rectangles or mask images")
    return masks


def _describe_mask(item) -> str:
    return f"`{Path(item).name}`" if isinstance(item, str) else f"rows {item[0]}–{item[1]}, columns {item[2]}–{item[3]}"


def exp_inpaint(ctx: Context) -> str:
    x0, labels, idx = ctx.test_images()
    masks = _masks(ctx)
    S = _int(ctx.settings, "num_samples", 1)
    gamma = ctx.cfg_scale
    K, M = len(idx), len(masks)
    # batch order: image, mask, sample
    orig = x0.repeat_interleave(M * S, dim=0)
    mask = torch.cat(masks).repeat_interleave(S, dim=0).repeat(K, 1, 1, 1)
    cond = digit_conditions(ctx, labels.tolist()).repeat_interleave(M * S, dim=0)
    g = ctx.generator()
    out = A.inpaint(ctx.den, orig, mask, ctx.timesteps(), cond, g, gamma, desc="inpainting")
    kept_err = float(((out - orig).abs() * (1 - mask)).amax())
    hole_mse = float((((out - orig) ** 2) * mask).flatten(1).sum(1).div(mask.flatten(1).sum(1)).mean())
    ctx.metric("", "kept_region_max_abs_error", kept_err, K * M * S)
    ctx.metric("", "hole_mse_to_original_mean", hole_mse, K * M * S)
    rows = []
    for k in range(K):
        for j in range(M):
            sl = slice((k * M + j) * S, (k * M + j + 1) * S)
            hole = orig[sl][:1] * (1 - mask[sl][:1]) + 0.5 * mask[sl][:1]
            rows.append(torch.cat([orig[sl][:1], hole, clamp(ctx, out[sl])]))
    save_grid(ctx, "inpaint.png", torch.cat(rows), nrow=K * M, titles=["original", "mask (grey)"] + [f"sample {s + 1}" for s in range(S)])
    boxes = "; ".join(_describe_mask(item) for item in _get(ctx.settings, "inpaint_masks"))
    text = (f"Inpainting runs the CFG sampler ($\\gamma = {gamma:g}$, guided by each image's label) from pure noise and, after every "
            f"step, puts the noised original back where the mask $m$ is 0: $x_{{t'}} \\leftarrow m\\,x_{{t'}} + (1-m)\\,"
            f"\\mathrm{{forward}}(x_{{orig}}, t')$. The kept region ends equal to the original (largest deviation "
            f"{kept_err:.1e}); inside the holes the new strokes differ from the original's by a mean squared error of {hole_mse:.3f}.")
    caption = (f"Inpainting of MNIST test images {', '.join(map(str, idx))} with masks ({boxes}), "
               f"{S} samples each, CFG γ = {gamma:g}; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("inpaint.png", caption, "inpaint") + "\n"


def exp_img2img(ctx: Context) -> str:
    x0, _, idx = ctx.test_images()
    prompts = _list(ctx.settings, "img2img_prompts", lambda p: isinstance(p, str), "prompts")
    conds = ctx.encode("img2img_prompts", prompts)
    gamma = ctx.cfg_scale
    K, P = len(idx), len(prompts)
    src = x0.repeat(P, 1, 1, 1)  # batch order: prompt, image
    cond = conds.repeat_interleave(K, dim=0)
    outs, starts, t_values = _sdedit_series(ctx, src, cond, "sdedit_i_starts", "img2img")
    names = [f"{i} → “{p}”" for p in prompts for i in idx]
    save_grid(ctx, "img2img.png", interleave([src] + outs), nrow=K * P, row_labels=names,
              titles=["original"] + [f"i={i} (t={t})" for i, t in zip(starts, t_values)])
    text = (f"Image-to-image translation is SDEdit guided by a different digit: test images {', '.join(map(str, idx))} edited "
            f"towards {quoted(prompts)} at $i_{{start}}$ = {', '.join(map(str, starts))} with CFG $\\gamma = {gamma:g}$; a small "
            f"$i_{{start}}$ starts from more noise and leaves the model more room to change the digit.")
    model = ctx.classifier(required=False)
    if model is not None:
        target = cond.argmax(dim=1)
        rates = []
        for i, x in zip(starts, outs):
            pred, _ = classify(model, x)
            rates.append(float((pred == target).float().mean()))
            ctx.metric(f"i_start={i}", "reads_as_target", rates[-1], K * P)
        text += (f" The Part B classifier reads the target digit in {', '.join(f'{100 * r:.0f}%' for r in rates)} of the edits "
                 f"at these $i_{{start}}$.")
    caption = (f"Text-conditional image-to-image: MNIST test images {', '.join(map(str, idx))} towards {quoted(prompts)} at "
               f"i_start = {', '.join(map(str, starts))}, CFG γ = {gamma:g}; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("img2img.png", caption, "img2img") + "\n"


# --- 1.8, 1.9, measured illusions ---------------------------------------------------------------------------


def _pairs(ctx: Context, key: str) -> tuple[list[list[str]], Tensor, Tensor]:
    pairs = _list(ctx.settings, key, _is_pair, "[prompt, prompt] pairs")
    first = ctx.encode(key, [p[0] for p in pairs])
    second = ctx.encode(key, [p[1] for p in pairs])
    return pairs, first, second


def _flip_mode(ctx: Context) -> str:
    mode = _get(ctx.settings, "anagram_flip")
    if mode not in A.FLIPS:
        raise _bad("anagram_flip", mode, " or ".join(A.FLIPS))
    return mode


def _hybrid_filter(ctx: Context) -> tuple[int, float]:
    k = _int(ctx.settings, "hybrid_kernel_size", 1)
    if k % 2 == 0:
        raise _bad("hybrid_kernel_size", k, "an odd integer")
    sigma = _number(ctx.settings, "hybrid_sigma", strict=True)
    ref = _int(ctx.settings, "hybrid_reference_size", 1)
    return A.scale_blur_to_size(k, sigma, ctx.den.image_shape[-1], ref)


def make_anagrams(ctx: Context, seeds: int, tag: str) -> tuple[list[list[str]], Tensor, str]:
    """All anagram pairs x `seeds` samples in one batch (order: pair, seed)."""
    pairs, up, flipped = _pairs(ctx, "anagrams")
    mode = _flip_mode(ctx)
    n = len(pairs) * seeds
    g = ctx.generator(tag)
    x = A.visual_anagram(ctx.den, A.pure_noise(ctx.den, n, g), ctx.noise_timesteps(), up.repeat_interleave(seeds, 0),
                         flipped.repeat_interleave(seeds, 0), g, ctx.cfg_scale, mode, desc="anagrams")
    return pairs, x, mode


def make_hybrids(ctx: Context, seeds: int, tag: str) -> tuple[list[list[str]], Tensor, tuple[int, float]]:
    """All hybrid pairs x `seeds` samples in one batch (order: pair, seed)."""
    pairs, low, high = _pairs(ctx, "hybrids")
    k, sigma = _hybrid_filter(ctx)
    n = len(pairs) * seeds
    g = ctx.generator(tag)
    x = A.hybrid(ctx.den, A.pure_noise(ctx.den, n, g), ctx.noise_timesteps(), low.repeat_interleave(seeds, 0),
                 high.repeat_interleave(seeds, 0), g, ctx.cfg_scale, k, sigma, desc="hybrids")
    return pairs, x, (k, sigma)


def highpass_view(x: Tensor, k: int, sigma: float) -> Tensor:
    """What the high-pass half of a hybrid shows: the positive part of x - lowpass(x), scaled to a maximum of 1
    per image, so strokes stay bright on a black background like MNIST."""
    hp = A.highpass(x, k, sigma).clamp(min=0)
    return hp / hp.flatten(1).amax(dim=1).clamp(min=1e-8).reshape(-1, 1, 1, 1)


def exp_anagrams(ctx: Context) -> str:
    S = _int(ctx.settings, "num_samples", 1)
    pairs, x, mode = make_anagrams(ctx, S, "anagrams")
    rows, labels = [], []
    for j, (p1, p2) in enumerate(pairs):
        batch = x[j * S:(j + 1) * S]
        rows += [batch, A.flip_image(batch, mode)]
        labels += [f"“{p1}”\nupright", f"“{p2}”\n{'flipped' if mode == 'vertical' else 'rotated'}"]
    save_grid(ctx, "anagrams.png", torch.cat(rows), nrow=2 * len(pairs), row_labels=labels)
    view = "a vertical flip" if mode == "vertical" else "a 180° rotation"
    text = (f"Visual anagrams average two guided noise estimates, one for the image and one for its view under {view}: "
            f"$\\epsilon = \\tfrac12\\big(\\epsilon_1(x_t) + f(\\epsilon_2(f(x_t)))\\big)$, each with CFG $\\gamma = {ctx.cfg_scale:g}$; "
            f"{len(pairs)} pairs ({', '.join(f'“{a}” / “{b}”' for a, b in pairs)}), {S} seeds each, shown upright and transformed.")
    caption = (f"Visual anagrams ({view}): {', '.join(f'“{a}” upright / “{b}” flipped' for a, b in pairs)}; {S} samples each, "
               f"CFG γ = {ctx.cfg_scale:g}, T = {ctx.T}; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("anagrams.png", caption, "anagrams") + "\n"


def exp_hybrids(ctx: Context) -> str:
    S = _int(ctx.settings, "num_samples", 1)
    pairs, x, (k, sigma) = make_hybrids(ctx, S, "hybrids")
    rows, labels = [], []
    for j, (p1, p2) in enumerate(pairs):
        batch = x[j * S:(j + 1) * S]
        rows += [batch, A.lowpass(batch, k, sigma), highpass_view(batch, k, sigma)]
        labels += [f"“{p1}” + “{p2}”", f"low-pass\n(“{p1}”)", f"high-pass\n(“{p2}”)"]
    save_grid(ctx, "hybrids.png", torch.cat(rows), nrow=3 * len(pairs), row_labels=labels)
    text = (f"Hybrid images combine the low frequencies of one guided estimate with the high frequencies of another, "
            f"$\\epsilon = f_{{lowpass}}(\\epsilon_1) + f_{{highpass}}(\\epsilon_2)$, with a Gaussian low-pass of "
            f"{_get(ctx.settings, 'hybrid_kernel_size')} px and $\\sigma = {_get(ctx.settings, 'hybrid_sigma'):g}$ at "
            f"{_get(ctx.settings, 'hybrid_reference_size')} px scaled to {k} px and $\\sigma = {sigma:.3g}$ at "
            f"{ctx.den.image_shape[-1]} px, and $f_{{highpass}}(x) = x - f_{{lowpass}}(x)$; CFG $\\gamma = {ctx.cfg_scale:g}$, "
            f"{len(pairs)} pairs, {S} seeds each.")
    caption = (f"Hybrid images {', '.join(f'“{a}” (low) + “{b}” (high)' for a, b in pairs)}: the image, its low-pass and the "
               f"positive part of its high-pass; kernel {k} px, σ = {sigma:.3g}, CFG γ = {ctx.cfg_scale:g}; seed {ctx.seed}")
    return text + "\n\n" + ctx.figure("hybrids.png", caption, "hybrids") + "\n"


def exp_illusions(ctx: Context) -> str:
    model = ctx.classifier(required=True)
    N = _int(ctx.settings, "illusion_num_seeds", 1)
    table = []  # (kind, pair label, view names, rate1, rate2, both)

    def score(kind: str, pairs, view1: Tensor, view2: Tensor, names: tuple[str, str]) -> None:
        p1, _ = classify(model, view1)
        p2, _ = classify(model, view2)
        for j, (a, b) in enumerate(pairs):
            d1, d2 = (ctx.den.encode(a).argmax(dim=1).item(), ctx.den.encode(b).argmax(dim=1).item())
            ok1 = (p1[j * N:(j + 1) * N] == d1).float()
            ok2 = (p2[j * N:(j + 1) * N] == d2).float()
            rates = (float(ok1.mean()), float(ok2.mean()), float((ok1 * ok2).mean()))
            table.append((kind, f"“{a}” / “{b}”", names, *rates))
            for metric, r in zip((f"{names[0]}_rate", f"{names[1]}_rate", "both_rate"), rates):
                ctx.metric(f"{kind}={a}/{b}", metric, r, N, "")

    pairs, x, mode = make_anagrams(ctx, N, "anagrams")
    score("anagram", pairs, x, A.flip_image(x, mode), ("upright", "flipped"))
    pairs, x, (k, sigma) = make_hybrids(ctx, N, "hybrids")
    score("hybrid", pairs, A.lowpass(x, k, sigma), highpass_view(x, k, sigma), ("low-pass", "high-pass"))

    lines = ["| illusion | prompts | first view | second view | both |", "|:---|:---|---:|---:|---:|"]
    for kind, label, names, r1, r2, both in table:
        lines.append(f"| {kind} | {label} | {names[0]}: {100 * r1:.0f}% | {names[1]}: {100 * r2:.0f}% | {100 * both:.0f}% |")
    _illusion_plot(ctx, table)
    mean_both = {kind: sum(r[5] for r in table if r[0] == kind) / sum(1 for r in table if r[0] == kind) for kind in ("anagram", "hybrid")}
    text = (f"The Part B classifier judges each illusion over {N} seeds: an anagram succeeds when it reads the first digit upright "
            f"and the second after the {'flip' if mode == 'vertical' else '180° rotation'}, a hybrid when it reads the first digit "
            f"in the low-pass and the second in the positive part of the high-pass; the rate over seeds $i$ is "
            f"$\\frac{{1}}{{n}}\\sum_i [\\hat y(v_1(x_i)) = d_1]\\,[\\hat y(v_2(x_i)) = d_2]$ with $n = {N}$. Both views succeed in "
            f"{100 * mean_both['anagram']:.0f}% of anagrams and {100 * mean_both['hybrid']:.0f}% of hybrids on average.")
    table_md = "\n".join(lines) + (f"\n\n: Illusion success rates read by the MNIST classifier over {N} seeds per pair, CFG γ = "
                                   f"{ctx.cfg_scale:g}; seed {ctx.seed} {{#tbl-a-illusions}}\n")
    caption = f"Success rates of anagrams and hybrids over {N} seeds per pair, read by the MNIST classifier; seed {ctx.seed}"
    return text + "\n\n" + table_md + "\n" + ctx.figure("illusions.png", caption, "illusions") + "\n"


def _illusion_plot(ctx: Context, table: list) -> None:
    import matplotlib.pyplot as plt

    from difflab.viz import save_figure

    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(table)), 3.2))
    xs = range(len(table))
    width = 0.27
    for offset, col, label in ((-width, 3, "first view"), (0, 4, "second view"), (width, 5, "both")):
        ax.bar([x + offset for x in xs], [100 * row[col] for row in table], width, label=label)
    ax.set_xticks(list(xs), [f"{row[0]}\n{row[1]}" for row in table], fontsize=7)
    ax.set_ylabel("read as intended (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, ctx.figure_path("illusions.png"))


EXPERIMENTS: dict[str, Callable[[Context], str]] = {
    "sampling": exp_sampling,
    "forward": exp_forward,
    "blur": exp_blur,
    "one_step": exp_one_step,
    "iterative": exp_iterative,
    "benchmark": exp_benchmark,
    "samples": exp_samples,
    "cfg": exp_cfg,
    "sdedit": exp_sdedit,
    "sdedit_inputs": exp_sdedit_inputs,
    "inpaint": exp_inpaint,
    "img2img": exp_img2img,
    "anagrams": exp_anagrams,
    "hybrids": exp_hybrids,
    "illusions": exp_illusions,
}


# --- command line -------------------------------------------------------------------------------------------


def run(experiment: str, checkpoint: str, settings: dict, out_dir: str, snippet: str, metrics_out: str | None = None,
        data: str | None = None, classifier: str | None = None, data_sha256: dict | None = None) -> str:
    """Run one experiment; write its figures, snippet and (optionally) metrics CSV. Returns the snippet text."""
    if experiment not in EXPERIMENTS:
        raise DifflabError(f"unknown Part A experiment {experiment!r}; expected one of {', '.join(EXPERIMENTS)}")
    seed = settings.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DifflabError(f"config key 'seed' is {seed!r}; expected an integer (pass it in --settings)")
    device = resolve_device(str(settings.get("device", "auto")))
    backend = settings.get("backend", "mnist")
    den = load_backend(backend, checkpoint, device)
    if hasattr(den, "batch_size"):
        den.batch_size = _int(settings, "batch_size", 1)
    ctx = Context(experiment, den, settings, seed, Path(out_dir), data, data_sha256, classifier)
    log(f"{experiment}: backend {backend}, checkpoint {checkpoint} (epoch {getattr(den, 'epoch', '?')}), T = {ctx.T}, device {device}")
    with torch.no_grad():
        text = EXPERIMENTS[experiment](ctx)
    write_text(snippet, text)
    if metrics_out:
        from difflab.metrics.tables import write_metrics

        write_metrics(metrics_out, ctx.rows)
    log(f"{experiment}: wrote {snippet}" + (f" and {len(ctx.rows)} metric rows to {metrics_out}" if metrics_out else ""))
    return text


def cli(argv: list[str]) -> None:
    from difflab.cli import json_object

    parser = argparse.ArgumentParser(prog="difflab parta", description="Run one Part A editing experiment.")
    parser.add_argument("experiment", choices=list(EXPERIMENTS))
    parser.add_argument("--checkpoint", required=True, help="Part B class-conditioned checkpoint (epoch_<last>.pt)")
    parser.add_argument("--settings", required=True, type=json_object, help="JSON: config part_a plus seed and device")
    parser.add_argument("--out-dir", required=True, help="folder for the figures (results/part_a/<experiment>)")
    parser.add_argument("--snippet", required=True, help="report snippet to write (Pandoc markdown)")
    parser.add_argument("--metrics-out", help="tidy metrics CSV to write")
    parser.add_argument("--data", help="the verified MNIST cache (results/data/mnist.npz)")
    parser.add_argument("--classifier", help="the MNIST classifier checkpoint (needed by illusions)")
    parser.add_argument("--data-sha256", help="JSON file with the SHA-256 of the four arrays when --data is not the "
                                              "official MNIST (difflab.data.array_hashes; used by tests)")
    args = parser.parse_args(argv)
    configure_threads()
    expected = None
    if args.data_sha256:
        from difflab.io import read_json

        expected = read_json(args.data_sha256)
    run(args.experiment, args.checkpoint, args.settings, args.out_dir, args.snippet, args.metrics_out, args.data,
        args.classifier, expected)
