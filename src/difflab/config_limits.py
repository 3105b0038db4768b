"""Cross-key limits of a schema-valid config, each checked with the function the job itself runs (one bound each):
a filter larger than the image, an i_start beyond the strided timesteps, a schedule whose abar reaches 0 or 1, an OOD
noise level beyond the schedule, step counts beyond T, prompts missing from a precomputed embeddings dict.

Called by difflab.config.validate_config (only in the main Snakemake process: these import torch and the job modules).
Messages are one line each, naming the key, the value and the largest value that runs.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Callable

from difflab import DifflabError
from difflab.config import _shown, deepfloyd_prompt_errors


def backend_image_shape(name: str) -> tuple[int, ...]:
    """The (C, H, W) images of the Part A backend registered as `name` (its class attribute `image_shape`),
    resolved through the registry that `difflab.edit.backends.load_backend` uses, without loading a checkpoint."""
    from difflab.edit.backends import BACKENDS

    module_name, class_name = BACKENDS[name].split(":")
    return tuple(getattr(importlib.import_module(module_name), class_name).image_shape)


def filter_failure(run: Callable[[], Any]) -> str | None:
    """None if `run()` returns a tensor of finite values, else why not: the exception it raised (type and first
    line) or 'non-finite values'. Used to try a filter on a probe image exactly as a job would apply it."""
    import torch

    try:
        out = run()
    except Exception as exc:  # noqa: BLE001 -- whatever the job's code raises is the answer to report
        return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return None if bool(torch.isfinite(out).all()) else "non-finite values"


def largest_passing(ok: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The largest n in [lo, hi] with ok(n), for ok true up to some n and false above it (bisection); None if
    not ok(lo)."""
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def hybrid_filter_errors(a: dict, image_size: int) -> list[str]:
    """part_a.hybrid_*: the job's own scaling (`difflab.experiments.part_a.illusions.hybrid_filter`, i.e.
    `scale_blur_to_size`), then the low- and high-pass of A.1.9 on a probe image of the backend's size."""
    import torch

    from difflab.edit import algorithms as A

    probe = torch.ones(1, 1, image_size, image_size)

    def scaled(kernel_size: int) -> tuple[int, float]:
        return A.scale_blur_to_size(kernel_size, a["hybrid_sigma"], image_size, a["hybrid_reference_size"])

    def failure(kernel_size: int) -> str | None:
        k, sigma = scaled(kernel_size)
        return filter_failure(lambda: A.lowpass(probe, k, sigma) + A.highpass(probe, k, sigma))

    size, sigma, reference = a["hybrid_kernel_size"], a["hybrid_sigma"], a["hybrid_reference_size"]
    try:
        k, scaled_sigma = scaled(size)
    except DifflabError as exc:
        return [str(exc)]
    why = failure(size)
    if why is None:
        return []
    largest = largest_passing(lambda j: failure(2 * j + 1) is None, 0, (size - 1) // 2)
    if largest is not None:
        return [f"config key 'part_a.hybrid_kernel_size' = {size}: scaled from hybrid_reference_size = {reference} px to "
                f"the {image_size} px images of the backend it is a {k} px Gaussian kernel, which does not fit the image; "
                f"expected an odd value <= {2 * largest + 1} at this reference size"]
    return [f"config keys 'part_a.hybrid_kernel_size' = {size}, 'part_a.hybrid_sigma' = {sigma!r}, "
            f"'part_a.hybrid_reference_size' = {reference}: their Gaussian filter ({k} px, sigma {scaled_sigma:.3g} at "
            f"{image_size} px) cannot be applied ({why})"]


def hybrid_sweep_errors(a: dict, image_size: int) -> list[str]:
    """part_a.hybrid_sigmas and a numeric part_a.hybrid_sigma_choice: each sigma's low-pass and high-pass as the jobs
    build them (`difflab.experiments.part_a.illusions.kernel_follows_sigma`: the kernel follows sigma at the ratio
    hybrid_kernel_size / hybrid_sigma) on a probe image of the backend's size. Checked only when the writeup's own
    filter passes (hybrid_filter_errors)."""
    import torch

    from difflab.edit import algorithms as A
    from difflab.experiments.part_a.illusions import kernel_follows_sigma

    probe = torch.ones(1, 1, image_size, image_size)

    def failure(sigma: float) -> str | None:
        def run():
            k, scaled = kernel_follows_sigma(sigma, a["hybrid_kernel_size"], a["hybrid_sigma"], image_size,
                                             a["hybrid_reference_size"])
            return A.lowpass(probe, k, scaled) + A.highpass(probe, k, scaled)
        return filter_failure(run)

    keyed = [(f"part_a.hybrid_sigmas[{i}]", s) for i, s in enumerate(a["hybrid_sigmas"])]
    if a["hybrid_sigma_choice"] != "best":
        keyed.append(("part_a.hybrid_sigma_choice", a["hybrid_sigma_choice"]))
    ratio = a["hybrid_kernel_size"] / a["hybrid_sigma"]
    return [f"config key '{key}' = {sigma!r}: its Gaussian low-pass (kernel {ratio:.3g} sigma at "
            f"{a['hybrid_reference_size']} px, from hybrid_kernel_size / hybrid_sigma) cannot be applied to the "
            f"{image_size} px images ({why}); expected a sigma whose kernel fits the image"
            for key, sigma in keyed if (why := failure(sigma)) is not None]


def blur_sigma_errors(name: str, sigmas: list, image_size: int) -> list[str]:
    """A list of blur candidates (config key `name`: part_a.blur_sigmas, part_b.denoiser.blur_sigmas): each
    sigma's Gaussian blur (A.1.2, `blur_denoise`, kernel `gaussian_kernel_size`) on a probe image of the image
    size; for a sigma too large, the largest one that runs (bisection)."""
    import torch

    from difflab.edit import algorithms as A

    probe, abar = torch.ones(1, 1, image_size, image_size), torch.ones(())

    def failure(sigma: float) -> str | None:
        return filter_failure(lambda: A.blur_denoise(probe, abar, sigma))

    def largest_sigma(failing: float) -> float | None:
        """The largest sigma that runs, to 4 significant digits (geometric bisection from 1, which runs)."""
        lo, hi = 1.0, failing
        if not (lo < hi and failure(lo) is None):
            return None
        while hi / lo > 1 + 1e-9:
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if failure(mid) is None else (lo, mid)
        rounded = float(f"{lo:.4g}")
        return rounded if failure(rounded) is None else math.floor(lo * 1e4) / 1e4

    lines, limit = [], None
    for i, sigma in enumerate(sigmas):
        why = failure(sigma)
        if why is None:
            continue
        key = f"config key '{name}[{i}]' = {sigma!r}"
        limit = limit if limit is not None and sigma > limit else largest_sigma(sigma)
        if limit is not None:
            lines.append(f"{key}: its Gaussian kernel (gaussian_kernel_size, 2 ceil(3 sigma) + 1 px) does not fit the "
                         f"{image_size} px images of the backend; expected sigma <= {limit:g}")
        else:
            lines.append(f"{key}: its Gaussian blur cannot be applied to the {image_size} px images of the backend ({why})")
    return lines


def backend_num_timesteps(config: dict) -> int:
    """T of the Part A backend's schedule: part_b.ddpm.num_timesteps for mnist, the class attribute num_timesteps
    otherwise (DeepFloyd IF: 1000)."""
    if config["part_a"]["backend"] == "mnist":
        return config["part_b"]["ddpm"]["num_timesteps"]
    from difflab.edit.backends import BACKENDS

    module_name, class_name = BACKENDS[config["part_a"]["backend"]].split(":")
    return int(getattr(importlib.import_module(module_name), class_name).num_timesteps)


def i_start_errors(config: dict) -> list[str]:
    """part_a.i_start and part_a.sdedit_i_starts: indices into the strided timesteps of A.1.4, checked by the
    job's own check (`difflab.sampler.check_i_start`, which the reverse loop runs) on the job's own
    list (`denoising_timesteps`)."""
    from difflab.edit.algorithms import denoising_timesteps
    from difflab.sampler import check_i_start

    a, T = config["part_a"], backend_num_timesteps(config)
    timesteps = denoising_timesteps(T, a["stride"])
    keys = [("i_start", a["i_start"])] + [(f"sdedit_i_starts[{j}]", i) for j, i in enumerate(a["sdedit_i_starts"])]
    lines = []
    for key, value in keys:
        try:
            check_i_start(value, timesteps)
        except ValueError as exc:
            lines.append(f"config key 'part_a.{key}' = {value}: {exc} ({a['backend']} backend: T = {T}, "
                         f"part_a.stride = {a['stride']})")
    return lines


def schedule_errors(config: dict) -> list[str]:
    """part_b.ddpm.beta_start / beta_end / num_timesteps: the code's schedule (`NoiseSchedule.linear`, abar_t in
    float32) must keep 0 < abar_t < 1, since the reverse process divides by 1 - abar_t (`posterior_mean`) and by
    sqrt(abar_t) (`predict_x0`); a beta_start below about 6e-8 rounds abar_0 to 1, a long or steep schedule
    underflows abar_(T-1) to 0, and sampling then gives NaN images."""
    from difflab.schedule import NoiseSchedule

    d = config["part_b"]["ddpm"]
    abar = NoiseSchedule.linear(d["beta_start"], d["beta_end"], d["num_timesteps"]).alphas_cumprod
    keys = (f"config keys 'part_b.ddpm.beta_start' = {d['beta_start']!r}, 'part_b.ddpm.beta_end' = {d['beta_end']!r}, "
            f"'part_b.ddpm.num_timesteps' = {d['num_timesteps']}")
    lines = []
    if not float(abar[0]) < 1:
        lines.append(f"{keys}: abar_0 = 1 - beta_start rounds to 1 in float32, and sampling divides by 1 - abar_t; "
                     "expected a larger beta_start")
    if not float(abar[-1]) > 0:
        lines.append(f"{keys}: abar_(T-1) underflows to 0 in float32, and sampling divides by sqrt(abar_t); "
                     "expected a smaller beta_end or fewer timesteps")
    return lines


def noise_level_errors(config: dict) -> list[str]:
    """part_b.denoiser.noise_levels: the OOD table feeds each sigma to the time-conditioned DDPM at
    `sigma_to_timestep`, which cannot represent a sigma above `sigma_max` of the configured schedule."""
    from difflab.schedule import NoiseSchedule, sigma_max

    d, levels = config["part_b"]["ddpm"], config["part_b"]["denoiser"]["noise_levels"]
    limit = sigma_max(NoiseSchedule.linear(d["beta_start"], d["beta_end"], d["num_timesteps"]))
    beyond = [s for s in levels if s > limit]
    if not beyond:
        return []
    return [f"config key 'part_b.denoiser.noise_levels' = {_shown(levels)}: {_shown(beyond)} exceed the largest noise level "
            f"of the time-conditioned DDPM's schedule (T = {d['num_timesteps']}, beta {d['beta_start']:g} -> {d['beta_end']:g}), "
            f"sigma_max = sqrt((1 - abar_(T-1)) / abar_(T-1)); expected levels <= {math.floor(limit * 1e4) / 1e4:g}"]


def step_count_errors(config: dict) -> list[str]:
    """part_b.steps.step_counts: a chain of N model calls needs N <= part_b.ddpm.num_timesteps timesteps."""
    T, counts = config["part_b"]["ddpm"]["num_timesteps"], config["part_b"]["steps"]["step_counts"]
    beyond = [n for n in counts if n > T]
    if not beyond:
        return []
    return [f"config key 'part_b.steps.step_counts' = {_shown(counts)}: {_shown(beyond)} exceed "
            f"part_b.ddpm.num_timesteps = {T}; expected step counts <= {T}"]


def limit_errors(config: dict) -> list[str]:
    """The cross-key limits of a schema-valid, defaults-filled config (imports torch and the job modules)."""
    a = config["part_a"]
    image_size = backend_image_shape(a["backend"])[-1]
    schedule = schedule_errors(config)
    hybrid = hybrid_filter_errors(a, image_size)
    hybrid = hybrid or hybrid_sweep_errors(a, image_size)
    return (hybrid + blur_sigma_errors("part_a.blur_sigmas", a["blur_sigmas"], image_size)
            + blur_sigma_errors("part_b.denoiser.blur_sigmas", config["part_b"]["denoiser"]["blur_sigmas"],
                                backend_image_shape("mnist")[-1])
            + i_start_errors(config) + schedule + ([] if schedule else noise_level_errors(config))
            + deepfloyd_prompt_errors(config)
            + step_count_errors(config))
