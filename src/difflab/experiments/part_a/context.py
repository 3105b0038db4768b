"""What every Part A experiment shares: the loaded Denoiser, its random streams, MNIST inputs, the classifier,
the image-quality scores, and the Result type with its writer (result.npz, facts.json, metrics CSV).

No validation happens here: config/schema.yaml and difflab.config checked every value once, at the
Snakefile's entry. What only the loaded inputs can tell (a test index beyond the file, a prompt the backend
cannot read, a mask file's content) is a one-line DifflabError naming the config key.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difflab import DifflabError
from difflab.edit import algorithms as A
from difflab.runtime import make_generator

FACT_NAME = re.compile(r"[a-z0-9_]+")


@dataclass
class Context:
    """One experiment's inputs. `den` is a Denoiser (difflab.edit.denoiser); `data` the verified MNIST cache
    (results/data/mnist.npz); `classifier_path` the Part B MNIST classifier checkpoint; `hybrid_sweep` the hybrid
    sweep's result.npz, read by the 1.9 jobs when part_a.hybrid_sigma_choice is 'best' (else None)."""

    experiment: str
    den: Any
    seed: int
    data: str
    classifier_path: str
    _classifier: Any = None
    backend: str = "mnist"  # config key part_a.backend
    hybrid_sweep: str | None = None

    @property
    def is_mnist(self) -> bool:
        """Whether the backend is the MNIST one: inputs are MNIST digits and the MNIST classifier reads the outputs.
        On other backends (deepfloyd) the test images are photos (`photos`) and classifier metrics are skipped."""
        return self.backend == "mnist"

    def photos(self) -> Tensor:
        """The non-MNIST backend's test images (K, C, S, S) in its value range: skimage.data photos named by config
        key part_a.deepfloyd.photos, resized on the short side and centre-cropped (difflab.edit.photos)."""
        from difflab.edit.photos import skimage_photo

        size = self.den.image_shape[-1]
        return torch.cat([skimage_photo(name, size) for name in self.den.spec["photos"]]).to(self.den.device)

    def content_conditions(self, labels: Tensor | None, n: int) -> Tensor:
        """The conditions that ask for "a better version of this image": the digit each MNIST input shows, or on other
        backends the unconditional prompt ("a high quality photo", spec A.1.3-A.1.7) for all n images."""
        if labels is None:
            return self.den.encode(self.den.spec["unconditional_prompt"]).expand(n, *([-1] * 2))
        return self.digit_conditions(labels.tolist())
    ddim_eta: float | None = None  # the reverse loop's step: None = DDPM, a number = DDIM (config part_a.sampler)

    @property
    def T(self) -> int:
        """Number of diffusion timesteps of the backend's schedule."""
        return int(self.den.alphas_cumprod.shape[0])

    @property
    def epoch(self) -> int | None:
        return getattr(self.den, "epoch", None)

    def generator(self, *keys, device: torch.device | str | None = None) -> torch.Generator:
        """The experiment's random stream: make_generator(seed, 'part_a', experiment, *keys) on `device` (default: the
        backend's). These keys are the ones the pipeline has always used, so the same config draws the same numbers.
        Inputs drawn on the host (pen strokes) take device="cpu": the same drawings on every device."""
        return make_generator(self.seed, "part_a", self.experiment, *keys, device=device or self.den.device)

    def timesteps(self, stride: int, spacing: str = "leading") -> list[int]:
        """The strided timesteps of A.1.4, then -1 (the clean image): stride = config key part_a.stride; spacing
        (config key part_a.timestep_spacing, for chains from pure noise only) "leading" = the spec's multiples of the
        stride (290, ..., 0 for T = 300), "trailing" = as many steps from T - 1 (299, ..., 9). A.denoising_timesteps."""
        return A.denoising_timesteps(self.T, stride, spacing=spacing)

    def levels(self, forward_fractions: list) -> list[int]:
        """Noise levels t = round(fraction * T), at most T - 1 (config key part_a.forward_fractions)."""
        return [min(self.T - 1, round(f * self.T)) for f in forward_fractions]

    def encode(self, key: str, prompts: list[str]) -> Tensor:
        """Conditions (len(prompts), ...) for prompts from config key `part_a.<key>`; a prompt the backend cannot
        read is a DifflabError naming the key and index."""
        conds = []
        for i, prompt in enumerate(prompts):
            try:
                conds.append(self.den.encode(prompt))
            except DifflabError as exc:
                raise DifflabError(f"config key 'part_a.{key}[{i}]': {exc}") from None
        return torch.cat(conds)

    def digit_conditions(self, digits: list[int]) -> Tensor:
        """Conditions (N, ...) for digits, through the backend's prompt encoder ("a 3")."""
        return torch.cat([self.den.encode(f"a {int(d)}") for d in digits])

    def test_images(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """MNIST test images (K, 1, 28, 28) in [0, 1] and labels (K,) at `indices` (config key part_a.test_images);
        an index out of range is a DifflabError naming it. Other backends: their `photos` and labels None."""
        if not self.is_mnist:
            return self.photos(), None
        images, labels = self.split("test")
        bad = [i for i in indices if not 0 <= i < len(images)]
        if bad:
            raise DifflabError(f"config key 'part_a.test_images': MNIST test index {bad[0]} is out of range; "
                               f"{self.data} has {len(images)} test images (0..{len(images) - 1})")
        index = torch.as_tensor(list(indices), dtype=torch.long, device=images.device)
        return images[index], labels[index]

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        """All images (N, 1, 28, 28) in [0, 1] and labels (N,) of one MNIST split ('train' | 'test'), on the backend's
        device, from the one MNIST loader (difflab.data.mnist_tensors, hash-verified). Other backends: the photos
        (for the blur selection and the benchmark) and labels None."""
        if not self.is_mnist:
            return self.photos(), None
        from difflab.data import mnist_tensors

        return mnist_tensors(self.data, split, device=self.den.device)

    def classifier(self):
        """The Part B MNIST classifier (eval mode, on the backend's device), loaded once."""
        if self._classifier is None:
            from difflab.checkpoint import load_model

            model, ckpt = load_model(self.classifier_path, self.den.device)
            arch = ckpt["architecture"] if isinstance(ckpt, dict) else ckpt.architecture  # UNets load as Checkpoint
            if arch != "classifier":
                raise DifflabError(f"{self.classifier_path}: architecture is {arch!r}; expected 'classifier'")
            self._classifier = model
        return self._classifier

    def read_digits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """`classify` with the MNIST classifier; on other backends (photos) predictions -1 and confidences NaN, which
        the metrics and the report show as n/a."""
        if self.is_mnist:
            return classify(self.classifier(), images)
        n = images.shape[0]
        return torch.full((n,), -1, dtype=torch.long), torch.full((n,), float("nan"))

    def describe_inputs(self, s) -> str:
        """The report's name of the test images: "MNIST test images 0, 1, 2" (settings `s` with test_images) or, on
        other backends, "the photos astronaut, coffee, chelsea (skimage.data, 64 px)"."""
        if self.is_mnist:
            return f"MNIST test images {listed(s.test_images)}" if hasattr(s, "test_images") else "MNIST test images"
        return f"the photos {listed(self.den.spec['photos'])} (skimage.data, {self.den.image_shape[-1]} px)"

    def describe_model(self) -> str:
        """The report's name of the backend's model: the Part B UNet (with its epoch) or the DeepFloyd model id."""
        if self.is_mnist:
            return f"the class-conditioned MNIST UNet of Part B (epoch {self.epoch})"
        return f"DeepFloyd IF stage I ({getattr(self.den, 'model_id', '')})"

    def clamp(self, x: Tensor) -> Tensor:
        """x clamped to the backend's value range (MNIST: [0, 1])."""
        lo, hi = self.den.value_range
        return x.clamp(lo, hi)

    def row(self, parameter: str, metric: str, value: float, n: int | None = None) -> dict:
        """One tidy metric row (difflab.metrics.tables.COLUMNS) of this experiment."""
        return {"experiment": f"part_a_{self.experiment}", "model": "class", "epoch": self.epoch,
                "parameter": parameter, "metric": metric, "value": float(value), "n": n, "extractor": ""}


def load_context(experiment: str, settings, checkpoint: str, data: str, classifier: str, device: torch.device,
                 hybrid_sweep: str | None = None) -> Context:
    """Load the backend named by `settings.backend` from `checkpoint` on `device` and set its batch size; jobs that
    run the reverse loop also get their sampler (part_a.sampler, part_a.ddim_eta)."""
    from difflab.edit.backends import load_backend
    from difflab.sampler import ddim_eta_of

    den = load_backend(settings.backend, checkpoint, device)
    if hasattr(den, "batch_size"):
        den.batch_size = settings.batch_size
    ddim_eta = ddim_eta_of(settings.sampler, settings.ddim_eta) if hasattr(settings, "sampler") else None
    return Context(experiment, den, int(settings.seed), data, classifier, backend=settings.backend,
                   hybrid_sweep=hybrid_sweep, ddim_eta=ddim_eta)


# --- shared measurements ------------------------------------------------------------------------------------


def quality(x: Tensor, x0: Tensor, value_range: tuple[float, float], ssim: bool = False) -> dict[str, Tensor]:
    """Per-image scores of x against x0, both (N, C, H, W) float in `value_range` (the backend's): {'mse', 'psnr'
    (dB, data range hi - lo)} and, with ssim=True, 'ssim' (Wang et al. 2004: Gaussian 11x11 window, sigma 1.5, mean
    over the windows inside the image); each (N,) on the CPU. Source: difflab.metrics.image_quality, which raises
    DifflabError for integer images or values outside `value_range`."""
    from difflab.metrics.image_quality import mse_per_image, psnr_from_mse, ssim_per_image

    x, x0 = x.cpu(), x0.cpu()
    mse = mse_per_image(x, x0, value_range)
    scores = {"mse": mse, "psnr": psnr_from_mse(mse, value_range)}
    if ssim:
        scores["ssim"] = ssim_per_image(x, x0, value_range)
    return scores


def mean_psnr(ctx: Context, x: Tensor, x0: Tensor) -> float:
    """Mean PSNR (dB) of clamp(x) against x0 over the batch, in the backend's value range."""
    return float(quality(ctx.clamp(x), x0, ctx.den.value_range)["psnr"].mean())


@torch.no_grad()
def classify(model, images: Tensor) -> tuple[Tensor, Tensor]:
    """(predicted digit (N,), its softmax probability (N,)) for images (N, 1, 28, 28), clamped to [0, 1]."""
    probs = torch.softmax(model(images.clamp(0, 1)), dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


def best_blur_sigmas(ctx: Context, levels: list[int], blur_sigmas: list, benchmark_num_images: int) -> dict[int, float]:
    """For each t, the candidate sigma (config part_a.blur_sigmas) with the lowest mean MSE on the first
    `benchmark_num_images` noisy training images, so the test images never choose their own filter.
    Random draws: per t, make_generator(seed, 'part_a', 'blur_selection', t): the same noise in blur, iterative
    and benchmark, so they agree on the choice."""
    from difflab.metrics.baselines import best_blur_sigma

    train, _ = ctx.split("train")
    train = train[:benchmark_num_images]
    schedule = A.schedule_of(ctx.den)
    best = {}
    for t in sorted(set(levels)):
        x_t = A.forward(ctx.den, train, t, make_generator(ctx.seed, "part_a", "blur_selection", t, device=ctx.den.device))
        best[t] = best_blur_sigma(train, x_t, blur_sigmas, schedule.abar(t), ctx.den.value_range)
    return best


def percent(rate: float) -> str:
    """'87%' of a share in [0, 1]; 'n/a' for NaN (no classifier reads this backend's images, Context.read_digits)."""
    return "n/a" if rate != rate else f"{100 * rate:.0f}%"


def trend(first: float, last: float) -> str:
    """'rises' | 'falls' | 'stays': how a value moves from `first` to `last` (a word the report's text uses)."""
    return "rises" if last > first else "falls" if last < first else "stays"


def interleave(columns: list[Tensor]) -> Tensor:
    """Per-column batches (K, ...) each -> (K * len(columns), ...) in row-major grid order: image k of every
    column, then image k + 1."""
    return torch.stack(columns, dim=1).flatten(0, 1)


def listed(values, fmt: str = "{}") -> str:
    """'a, b, c' of values formatted with `fmt`: the display form of a list fact."""
    return ", ".join(fmt.format(v) for v in values)


def quoted(prompts) -> str:
    """“a 3”, “a 7”: prompts as the report shows them."""
    return ", ".join(f"“{p}”" for p in prompts)


# --- results ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """What an experiment returns. Subclasses add array fields (tensors, numpy arrays, lists of numbers or
    strings), each documented with its shape and batch order.

    metrics: tidy metric rows (difflab.metrics.tables.COLUMNS) for results/metrics/part_a_<name>.csv;
    facts: {var: display-ready value} for facts.json, read by the report as {{< var part_a.<name>.<var> >}}."""

    metrics: list
    facts: dict


def result_arrays(result: Result) -> dict[str, np.ndarray]:
    """The Result's array fields as numpy arrays: tensors as float32 (or their integer dtype), strings as str."""
    arrays = {}
    for field in dataclasses.fields(result):
        if field.name in ("metrics", "facts"):
            continue
        value = getattr(result, field.name)
        if isinstance(value, Tensor):
            value = value.detach().cpu()
            value = value.float() if value.is_floating_point() else value
            arrays[field.name] = value.numpy()
        else:
            arr = np.asarray(value)
            arrays[field.name] = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
    return arrays


def write_result(result: Result, out_dir: str | Path, metrics_out: str | Path) -> None:
    """Write out_dir/result.npz (the array fields), out_dir/facts.json and the metrics CSV, each atomically."""
    from difflab.io import atomic_path, write_json
    from difflab.metrics.tables import write_metrics

    bad = [k for k in result.facts if not FACT_NAME.fullmatch(k)]
    if bad:
        raise ValueError(f"fact names must match [a-z0-9_]+: {bad}")
    out_dir = Path(out_dir)
    with atomic_path(out_dir / "result.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **result_arrays(result))
    write_json(out_dir / "facts.json", result.facts)
    write_metrics(metrics_out, list(result.metrics))
