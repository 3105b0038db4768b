"""`make bench`: speed of the hot paths, reported as ratios measured in one run on this machine.

Each comparison times two ways of doing the same work back to back (median of `repeats`), so the ratio
holds on this machine even when absolute numbers vary with load. Results go to results/bench/bench.json
and are printed as a table. Nothing here is asserted: benchmarks measure, tests check behaviour.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from difflab.io import write_json
from difflab.models import build_model
from difflab.performance import accelerate, make_adam, sample_batch, sample_precision, train_precision, uses_cuda_graphs
from difflab.runtime import device_name, resolve_device
from difflab.schedule import NoiseSchedule


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(name: str, baseline: str, candidate: str, t_base: float, t_cand: float, images: int) -> dict:
    return {
        "comparison": name,
        "baseline": baseline,
        "candidate": candidate,
        "baseline_images_per_s": images / t_base,
        "candidate_images_per_s": images / t_cand,
        "speedup": t_base / t_cand,
    }


@torch.no_grad()
def bench_cfg_batching(model, device, batch: int, repeats: int) -> dict:
    """Algorithm B.4 needs eps(x, c) and eps(x, 0): one forward over [c; 0] vs two forwards."""
    x = torch.randn(batch, 1, 28, 28, device=device)
    c = F.one_hot(torch.arange(batch, device=device) % 10, 10).float()
    t = torch.full((batch,), 0.5, device=device)

    def two_forwards():
        model(x, c, t)
        model(x, torch.zeros_like(c), t)

    def one_forward():
        model(torch.cat([x, x]), torch.cat([c, torch.zeros_like(c)]), torch.cat([t, t]))

    return compare("CFG: cond + uncond predictions", "two forwards of B", "one forward of 2B",
                   median_seconds(two_forwards, repeats, device), median_seconds(one_forward, repeats, device), batch)


@torch.no_grad()
def bench_sampling_batch(model, device, n: int, small: int, repeats: int) -> dict:
    """One reverse step over n images, in chunks of `small` vs all n at once."""
    x = torch.randn(n, 1, 28, 28, device=device)
    c = torch.arange(n, device=device) % 10
    t = torch.full((n,), 0.5, device=device)

    def chunked():
        for i in range(0, n, small):
            model(x[i:i + small], c[i:i + small], t[i:i + small])

    return compare("sampling forward", f"chunks of {small}", f"one batch of {n}",
                   median_seconds(chunked, repeats, device), median_seconds(lambda: model(x, c, t), repeats, device), n)


def bench_data_path(model, device, n: int, batch: int, repeats: int) -> dict:
    """One training pass over n images: DataLoader over a TensorDataset vs slicing a tensor held on the device."""
    images = torch.rand(n, 1, 28, 28)
    on_device = images.to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    model.train()

    def step(x):
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def dataloader():
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images), batch_size=batch, shuffle=True)
        for (x,) in loader:
            step(x.to(device))

    def tensor_slices():
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            step(on_device[order[i:i + batch]])

    return compare("training data path", "DataLoader(TensorDataset)", "tensor on device, index slices",
                   median_seconds(dataloader, repeats, device), median_seconds(tensor_slices, repeats, device), n)


@torch.no_grad()
def bench_threads(model, device, batch: int, repeats: int) -> dict | None:
    """Intra-op threads for one sampling forward (CPU only): 1 thread vs all cores."""
    if device.type != "cpu" or torch.get_num_threads() < 2:
        return None
    x = torch.randn(batch, 1, 28, 28)
    c = torch.arange(batch) % 10
    t = torch.full((batch,), 0.5)
    cores = torch.get_num_threads()
    torch.set_num_threads(1)
    one = median_seconds(lambda: model(x, c, t), repeats, device)
    torch.set_num_threads(cores)
    many = median_seconds(lambda: model(x, c, t), repeats, device)
    return compare("CPU threads, sampling forward", "1 thread", f"{cores} threads", one, many, batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_path(hidden: int, batch: int, steps: int, device: torch.device, precision: str, compile: bool,
               cuda_graphs: bool, baseline: bool = False) -> dict:
    """`steps` Adam steps of the class DDPM (Algorithm B.3, T = 300, the spec's lr, EMA 0.999) at `batch` from seed 0
    through difflab.train_step.TrainStep, the code the training jobs run; the first 4 steps (compilation, CUDA-graph
    warm-up and capture) are timed apart. `baseline`: PyTorch's default Adam (not fused), as before the switches.
    Returns img/s and the losses."""
    from difflab.train import make_ema
    from difflab.train_step import WARMUP_STEPS, TrainStep

    torch.manual_seed(0)
    model = build_model("class", hidden).to(device)
    forward = accelerate(model, precision, compile, device)
    graphs = uses_cuda_graphs(cuda_graphs, compile, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3) if baseline else make_adam(model.parameters(), 1e-3, device, graphs)
    schedule = NoiseSchedule.linear(1e-4, 0.02, 300).to(device)
    generator = torch.Generator(device).manual_seed(1)
    images = torch.rand(batch * 8, 1, 28, 28, generator=generator, device=device)
    labels = torch.randint(0, 10, (batch * 8,), generator=generator, device=device)
    step = TrainStep("class", forward, model, optimizer, generator, schedule, p_uncond=0.1, ema=make_ema(model, 0.999),
                     ema_decay=0.999, batch_size=batch, cuda_graph=graphs)
    losses = []  # kept on the device: no host synchronisation per step

    def run(i: int) -> None:
        idx = torch.arange(i * batch, (i + 1) * batch, device=device) % images.shape[0]
        losses.append(step(images[idx], labels[idx]))

    warm = min(WARMUP_STEPS + 1, steps - 1)
    start = time.perf_counter()
    for i in range(warm):
        run(i)
    _sync(device)
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(warm, steps):
        run(i)
    _sync(device)
    seconds = time.perf_counter() - start
    return {"images_per_s": (steps - warm) * batch / seconds, "warmup_s": warmup, "losses": torch.stack(losses).cpu()}


def bench_training_paths(hidden: int, batch: int, steps: int, device: torch.device, precision: str, compile: bool,
                         cuda_graphs: bool) -> dict:
    """fp32 eager (default Adam) vs the switches' path, same seed and batches: img/s of each, and how far their losses
    drift (mean absolute difference of the last 10 losses, relative to the eager mean)."""
    eager = train_path(hidden, batch, steps, device, "fp32", False, False, baseline=True)
    fast = train_path(hidden, batch, steps, device, precision, compile, cuda_graphs)
    tail = slice(max(0, steps - 10), steps)
    drift = (eager["losses"][tail] - fast["losses"][tail]).abs().mean() / eager["losses"][tail].mean()
    row = compare("training (class DDPM, Algorithm B.3)", "fp32 eager", _path_name(precision, compile, cuda_graphs, device),
                  batch / eager["images_per_s"], batch / fast["images_per_s"], batch)
    row |= {"steps": steps, "compile_warmup_s": fast["warmup_s"], "loss_eager": float(eager["losses"][tail].mean()),
            "loss_candidate": float(fast["losses"][tail].mean()), "loss_relative_difference": float(drift)}
    return row


@torch.no_grad()
def bench_sampling_paths(hidden: int, n: int, steps: int, device: torch.device, precision: str, compile: bool,
                         batch: int) -> dict:
    """CFG sampling (Algorithm B.4, gamma 5) of n images over a `steps`-step schedule, fp32 eager in chunks of
    min(n, 1000) (the former default) vs the switches' path in chunks of `batch`, from the same weights and the same
    noise; the largest absolute pixel difference of the two sample sets."""
    from difflab.sampling import ddpm_sample

    torch.manual_seed(0)
    model = build_model("class", hidden).to(device).eval()
    schedule = NoiseSchedule.linear(1e-4, 0.02, steps)
    labels = torch.arange(n) % 10
    results = {}
    for name, (p, c, b) in {"eager": ("fp32", False, min(n, 1000)), "fast": (precision, compile, batch)}.items():
        forward = accelerate(model, p, c, device)
        ddpm_sample(forward, NoiseSchedule(schedule.alphas_cumprod[:2]), n, torch.Generator(device).manual_seed(2), device,
                    labels, 5.0, batch_size=b, show_progress=False)  # warm-up and compilation, same shapes
        _sync(device)
        start = time.perf_counter()
        x, _ = ddpm_sample(forward, schedule, n, torch.Generator(device).manual_seed(3), device, labels, 5.0,
                           batch_size=b, show_progress=False)
        _sync(device)
        results[name] = (time.perf_counter() - start, x.clamp(0, 1).cpu())
    row = compare(f"CFG sampling ({steps} steps)", f"fp32 eager, batch {min(n, 1000)}",
                  f"{_path_name(precision, compile, False, device)}, batch {batch}",
                  results["eager"][0], results["fast"][0], n)
    row["max_abs_pixel_difference"] = float((results["eager"][1] - results["fast"][1]).abs().max())
    return row


def _path_name(precision: str, compile: bool, cuda_graphs: bool, device: torch.device) -> str:
    mode = " + torch.compile" if compile else " + CUDA graphs" if uses_cuda_graphs(cuda_graphs, compile, device) else " eager"
    return f"{precision}{mode}"


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m difflab.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--hidden", type=int, default=32, help="UNet width D (the spec's DDPMs use 64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="training precision of the optimised path (config performance.train_precision)")
    parser.add_argument("--sample-precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="sampling precision of the optimised path (performance.sample_precision)")
    parser.add_argument("--cuda-graphs", default=True, action=argparse.BooleanOptionalAction,
                        help="training replays CUDA graphs (performance.cuda_graphs; CUDA only)")
    parser.add_argument("--compile", default=False, action=argparse.BooleanOptionalAction,
                        help="torch.compile the optimised path (performance.compile)")
    parser.add_argument("--train-steps", type=int, default=None, help="training steps per path (default: 200 CUDA, 20 CPU)")
    parser.add_argument("--out", default="results/bench/bench.json")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model("class", args.hidden).to(device).eval()
    big = 1000 if device.type == "cuda" else 256
    rows = [
        bench_cfg_batching(model, device, sample_batch("auto", big, device), args.repeats),  # at the batch sampling uses
        bench_sampling_batch(model, device, big, 32, args.repeats),
        bench_data_path(build_model("unconditional", args.hidden).to(device), device, 2048, 256, max(2, args.repeats // 2)),
    ]
    cuda = device.type == "cuda"
    rows.append(bench_training_paths(args.hidden, 128, args.train_steps or (200 if cuda else 20), device,
                                     train_precision(args.train_precision, device), args.compile, args.cuda_graphs))
    n = 10000 if cuda else 1000
    rows.append(bench_sampling_paths(args.hidden, n, 50 if cuda else 10, device, sample_precision(args.sample_precision, device),
                                     args.compile, sample_batch("auto", n, device)))
    threads = bench_threads(model, device, big, args.repeats)
    if threads:
        rows.append(threads)
    result = {"device": device_name(device), "hidden": args.hidden, "torch": torch.__version__, "results": rows}
    write_json(args.out, result)
    print(f"device: {result['device']}, class UNet D={args.hidden}")
    print(f"{'comparison':34} {'baseline':28} {'candidate':36} {'speed-up':>8}")
    for r in rows:
        print(f"{r['comparison']:34} {r['baseline']:28} {r['candidate']:36} {r['speedup']:7.2f}x")
    for r in rows:
        if "loss_relative_difference" in r:
            print(f"same computation? training: mean loss of the last 10 steps {r['loss_eager']:.5f} (eager) vs "
                  f"{r['loss_candidate']:.5f}: relative difference {r['loss_relative_difference']:.2e}; "
                  f"warm-up/capture/compile {r['compile_warmup_s']:.1f} s")
        if "max_abs_pixel_difference" in r:
            print(f"same computation? sampling: largest pixel difference from the same noise {r['max_abs_pixel_difference']:.2e}")
    print(f"-> {args.out}")


if __name__ == "__main__":
    cli()
