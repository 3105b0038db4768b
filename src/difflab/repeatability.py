"""`python -m difflab.repeatability`: is a run repeatable on this device, and how far apart are two runs?

Runs the real training epoch and the real sampler twice from the same checkpoint and seed, and reports per
quantity whether the two results are bit-identical and their largest absolute difference. On CUDA it also
compares one model forward on the GPU against the CPU (the cross-device tolerance) and, with
--nondeterministic, repeats training with torch's non-deterministic kernels allowed, to show what the
deterministic mode that `difflab train` switches on buys. Results go to results/bench/repeatability.json.

This measures; it asserts nothing. The CPU guarantee (bit-identical metric files) is tested in
tests/test_e2e.py; this tool documents the GPU side, where the test suite cannot run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from difflab.checkpoint import Checkpoint
from difflab.io import write_json
from difflab.models import build_model
from difflab.performance import sample_batch
from difflab.runtime import device_name, enable_determinism, make_generator, resolve_device


def difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Bitwise equality and max |a - b| of two tensors of the same shape."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return {"bitwise_equal": bool(torch.equal(a, b)), "max_abs_diff": float((a - b).abs().max())}


def state_difference(first: dict, second: dict) -> dict:
    """difference() over all tensors of two state dicts, flattened into one vector each."""
    keys = sorted(first)

    def flat(state: dict) -> torch.Tensor:
        return torch.cat([state[k].detach().double().flatten().cpu() for k in keys])

    return difference(flat(first), flat(second))


def class_model(ckpt: Checkpoint) -> torch.nn.Module:
    """The class-conditioned UNet of a checkpoint, in eval mode on the CPU."""
    model = build_model("class", ckpt.hidden)
    model.load_state_dict(ckpt.model)
    return model.eval()


def set_kernel_mode(deterministic: bool) -> None:
    if deterministic:
        enable_determinism()
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def train_twice(settings: dict, images, labels, device, deterministic: bool) -> tuple[Checkpoint, dict]:
    """One real training epoch of the class-conditioned DDPM, twice from the same initial checkpoint."""
    from difflab.train import initial_checkpoint, train_one_epoch

    set_kernel_mode(deterministic)
    start = initial_checkpoint("class", settings, settings["seed"])
    first = train_one_epoch(start, images, labels, device, show_progress=False)
    second = train_one_epoch(start, images, labels, device, show_progress=False)
    row = {
        "quantity": f"class DDPM weights after 1 epoch ({'deterministic' if deterministic else 'non-deterministic'} kernels)",
        **state_difference(first.model, second.model),
        "losses": difference(torch.tensor(first.losses), torch.tensor(second.losses)),
        "epoch_seconds": [first.epoch_seconds[-1], second.epoch_seconds[-1]],
        "images_per_second": first.images_per_second,
    }
    return first, row


def sample_twice(ckpt: Checkpoint, n: int, guidance_scale: float, batch_size: int, device) -> dict:
    """Algorithm B.4 sampling of n images, twice with the same generator seed."""
    from difflab.sampling import ddpm_sample

    model = class_model(ckpt).to(device)
    schedule = ckpt.schedule()
    labels = torch.arange(n) % 10
    outputs, seconds = [], []
    for _ in range(2):
        generator = make_generator(ckpt.seed, "repeatability", "sample", device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        x, _ = ddpm_sample(model, schedule, n, generator, device, labels=labels, guidance_scale=guidance_scale,
                           batch_size=batch_size, show_progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - began)
        outputs.append(x)
    return {"quantity": f"{n} class-conditioned samples (gamma={guidance_scale:g}, {ckpt.num_timesteps} steps)",
            **difference(*outputs), "seconds": seconds, "images_per_second": n / min(seconds)}


@torch.no_grad()
def cpu_versus_device(ckpt: Checkpoint, device, n: int = 256) -> dict:
    """The same forward pass on the CPU and on `device`: the tolerance between machines."""
    model = class_model(ckpt)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 28, 28, generator=generator)
    c = torch.nn.functional.one_hot(torch.arange(n) % 10, 10).float()
    t = torch.rand(n, generator=generator)
    on_cpu = model(x, c, t)
    on_device = model.to(device)(x.to(device), c.to(device), t.to(device))
    return {"quantity": f"one forward of {n} images, CPU vs {device.type}", **difference(on_cpu, on_device),
            "output_scale": float(on_cpu.abs().max()),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m difflab.repeatability", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="results/data/mnist.npz")
    parser.add_argument("--config", default="config/config.yaml", help="part_b.ddpm settings are read from here")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--hidden", type=int, help="override part_b.ddpm.hidden (the UNet width D)")
    parser.add_argument("--train-images", type=int, default=0, help="first N training images (0 = all 60000)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--nondeterministic", action="store_true", help="also train twice with non-deterministic kernels")
    parser.add_argument("--out", default="results/bench/repeatability.json")
    args = parser.parse_args(argv)

    from difflab.data import mnist_tensors

    config = yaml.safe_load(Path(args.config).read_text())
    device = resolve_device(args.device)
    settings = {**config["part_b"]["ddpm"], **config["performance"], "seed": config["seed"], "device": device.type,
                "train_subset": args.train_images}
    if args.hidden:
        settings["hidden"] = args.hidden
    images, labels = mnist_tensors(args.data, "train", device=device, subset=args.train_images)

    trained, row = train_twice(settings, images, labels, device, deterministic=True)
    rows = [row]
    if args.nondeterministic:
        rows.append(train_twice(settings, images, labels, device, deterministic=False)[1])
        set_kernel_mode(True)
    rows.append(sample_twice(trained, args.samples, config["part_b"]["ddpm"]["guidance_scale"],
                             sample_batch(config["part_b"]["ddpm"]["sample_batch_size"], args.samples, device), device))
    if device.type == "cuda":
        rows.append(cpu_versus_device(trained, device))
    name = device_name(device)
    result = {"device": name, "torch": torch.__version__, "hidden": settings["hidden"],
              "train_images": images.shape[0], "results": rows}
    write_json(args.out, result)
    print(f"device: {name}, torch {torch.__version__}, class UNet D={settings['hidden']}, {images.shape[0]} training images")
    for r in rows:
        print(f"  {r['quantity']}: bit-identical {r['bitwise_equal']}, max |diff| {r['max_abs_diff']:.3g}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    cli()
