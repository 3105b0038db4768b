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
from difflab.runtime import device_name, resolve_device


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


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m difflab.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--hidden", type=int, default=32, help="UNet width D (the spec's DDPMs use 64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench/bench.json")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model("class", args.hidden).to(device).eval()
    big = 1000 if device.type == "cuda" else 256
    rows = [
        bench_cfg_batching(model, device, big, args.repeats),
        bench_sampling_batch(model, device, big, 32, args.repeats),
        bench_data_path(build_model("unconditional", args.hidden).to(device), device, 2048, 256, max(2, args.repeats // 2)),
    ]
    threads = bench_threads(model, device, big, args.repeats)
    if threads:
        rows.append(threads)
    result = {"device": device_name(device), "hidden": args.hidden, "torch": torch.__version__, "results": rows}
    write_json(args.out, result)
    print(f"device: {result['device']}, class UNet D={args.hidden}")
    print(f"{'comparison':34} {'baseline':28} {'candidate':32} {'speed-up':>8}")
    for r in rows:
        print(f"{r['comparison']:34} {r['baseline']:28} {r['candidate']:32} {r['speedup']:7.2f}x")
    print(f"-> {args.out}")


if __name__ == "__main__":
    cli()
