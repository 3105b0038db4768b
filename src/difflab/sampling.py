"""DDPM sampling (CS180 project 5, Algorithms B.2 and B.4) and the DDPM UNet used as a one-step denoiser.

Timesteps are 0-based (see difflab.schedule): the reverse loop runs t = T-1, ..., 0, the model sees t/T,
and the step below t = 0 has abar = 1. All N images advance together one timestep at a time; within a
timestep the model runs over chunks of `batch_size` images. The noise for a timestep is drawn for all N
images at once from the caller's generator, so the samples depend only on the generator, not on the batch
size (an out-of-memory retry with a smaller batch gives the same images).
"""

from __future__ import annotations


import torch
from torch import Tensor, nn

from difflab.runtime import map_in_chunks
from difflab.sampler import reverse
from difflab.schedule import NoiseSchedule, predict_x0, sigma_to_timestep



def predict_noise(model: nn.Module, x_t: Tensor, t: int, num_timesteps: int) -> Tensor:
    """eps_theta(x_t, t/T) of the time-conditioned UNet for one chunk at timestep t (Algorithm B.2). The class model
    goes through the Denoiser interface and the one CFG batcher (edit.algorithms.guided_noise_batch)."""
    return model(x_t, torch.full((x_t.shape[0],), t / num_timesteps, device=x_t.device))


def frame_indices(num_timesteps: int, frames: int) -> set[int]:
    """Which of the T + 1 states x_T (index 0), ..., x_0 (index T) to keep: `frames` evenly spaced ones,
    always including the pure noise and the final sample (frames = 1 keeps only the final sample)."""
    if frames <= 0:
        return set()
    if frames == 1:
        return {num_timesteps}
    return {round(k * num_timesteps / (frames - 1)) for k in range(frames)}


@torch.no_grad()
def ddpm_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    n: int,
    generator: torch.Generator,
    device: torch.device | str,
    labels: Tensor | None = None,
    guidance_scale: float | None = None,
    batch_size: int = 1000,
    frames: int = 0,
    show_progress: bool = True,
    timesteps: list[int] | None = None,
    ddim_eta: float | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Draw n samples by Algorithm B.2 (time model, labels=None) or B.4 (class model with labels and CFG scale).

    x_{T-1} ~ N(0, I); for t = T-1, ..., 0: x_{t-1} = posterior_mean(x_t, x0_hat(eps)) + sqrt(beta_t) z, z ~ N(0, I)
    (no noise on the last step), with beta_t = 1 - abar_t / abar_{t-1} and abar_{-1} = 1: difflab.sampler.reverse
    with variance "beta" over T-1, ..., 0, -1. The result is not clipped (the algorithm has no clipping); clip to
    [0, 1] only to display or store images.

    timesteps: the chain's descending list ending at -1 (None: all of T-1, ..., 0, -1; a strided list such as
    270, 240, ..., 0, -1 takes the same steps between its entries, with beta_t = 1 - abar_t / abar_t').
    ddim_eta: None for the steps above, a number for DDIM steps with that eta (difflab.sampler; config
    part_b.ddpm.sampler and ddim_eta). Random draws either way: x_T, then one z per step.

    Returns (images N x 1 x 28 x 28 on `device`, frames): `frames` evenly spaced snapshots of the whole batch,
    from the initial noise to the final sample, as CPU tensors clipped to [0, 1] for display.
    """
    if labels is not None:
        if guidance_scale is None:
            raise ValueError("class-conditioned sampling needs a guidance_scale (gamma = 1 is plain conditional sampling)")
        labels = labels.to(device)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    schedule = schedule.to(device)
    T = schedule.num_timesteps
    timesteps = list(range(T - 1, -2, -1)) if timesteps is None else list(timesteps)
    keep = frame_indices(len(timesteps) - 1, frames)
    snapshots: list[Tensor] = []

    chunk = [batch_size]  # halved after an out-of-memory error, and kept small for the timesteps after it
    if labels is None:
        def eps_of(x_c: Tensor, t: int, a: int, b: int) -> Tensor:
            return predict_noise(model, x_c, t, T)
    else:
        # Algorithm B.4 through the one CFG batcher: eps = eps_u + gamma (eps_c - eps_u), eps_c and eps_u from ONE
        # forward pass over the doubled chunk [c; 0] (the backend's own chunking is off: the chunks are these).
        from difflab.edit.algorithms import guided_noise_batch
        from difflab.edit.backends.mnist import MnistDenoiser

        den = MnistDenoiser(model, schedule, device, batch_size=2 * n)
        onehot = nn.functional.one_hot(labels.long(), model.num_classes).float()

        def eps_of(x_c: Tensor, t: int, a: int, b: int) -> Tensor:
            return guided_noise_batch(den, [x_c], t, [onehot[a:b]], guidance_scale)[0][0]

    def noise_fn(x_t: Tensor, t: int) -> tuple[Tensor, None]:
        chunks, chunk[0] = map_in_chunks(lambda a, b: eps_of(x_t[a:b], t, a, b), n, chunk[0], f"at timestep {t}")
        return torch.cat(chunks), None

    def snapshot(step: int, t: int, x_t: Tensor) -> None:
        if step in keep:
            snapshots.append(x_t.clamp(0, 1).cpu())

    x = torch.randn((n, 1, 28, 28), generator=generator, device=device)
    snapshot(0, timesteps[0], x)
    desc = f"sampling {n} images" if show_progress else None
    x = reverse(x, timesteps, schedule, noise_fn, generator, "beta", callback=snapshot, desc=desc, ddim_eta=ddim_eta)
    return x, snapshots


def noise_level_to_ddpm_input(z: Tensor, sigma: float, schedule: NoiseSchedule) -> tuple[Tensor, int]:
    """Map z = x0 + sigma eps to the DDPM's x_t: x_t / sqrt(abar_t) = x0 + sqrt((1 - abar_t) / abar_t) eps,
    so with t the nearest timestep to sigma^2 = (1 - abar_t) / abar_t we feed x_t = sqrt(abar_t) z.
    Returns (x_t, t)."""
    t = sigma_to_timestep(sigma, schedule)
    return schedule.to(z.device).abar(t).sqrt() * z, t


@torch.no_grad()
def ddpm_one_step_denoise(model: nn.Module, z: Tensor, sigma: float, schedule: NoiseSchedule, batch_size: int = 1000) -> tuple[Tensor, int]:
    """The time-conditioned DDPM UNet as a one-step denoiser of z = x0 + sigma eps:
    x_t = sqrt(abar_t) z at the nearest t, then x0_hat = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t/T)) / sqrt(abar_t).
    Returns (x0_hat, t)."""
    x_t, t = noise_level_to_ddpm_input(z, sigma, schedule)
    abar_t = schedule.to(z.device).abar(t)
    chunks, _ = map_in_chunks(lambda a, b: predict_x0(x_t[a:b], predict_noise(model, x_t[a:b], t, schedule.num_timesteps), abar_t),
                              z.shape[0], batch_size, "in the one-step DDPM denoiser")
    return torch.cat(chunks), t
