"""`difflab metrics <action>`: train the MNIST classifier, score a samples file, measure the real-vs-real floor.

    train-classifier  the CNN's checkpoint and its test accuracy (job models.classifier)
    fid               FID and KID of a samples file against as many MNIST test images, + class accuracy
                      (job metrics.fid; model, epoch and guidance scale are read from the samples file)
    real-floor        FID and KID of the first N train images against the first N test images (job metrics.fid_floor)

Every action writes a tidy metrics CSV (difflab.metrics.tables).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

from difflab import DifflabError


def train_classifier_cmd(args, settings) -> None:
    from difflab.checkpoint import save_checkpoint
    from difflab.data import mnist_tensors
    from difflab.metrics.classifier import accuracy, train_classifier
    from difflab.metrics.tables import write_metrics
    from difflab.runtime import start_job

    device, seed = start_job(settings.device, settings.seed)
    train_x, train_y = mnist_tensors(args.data, "train", device, settings.train_subset)
    test_x, test_y = mnist_tensors(args.data, "test", device)
    model, history = train_classifier(train_x, train_y, settings.epochs, settings.batch_size, settings.lr,
                                      settings.width, seed, device)
    acc = accuracy(model, test_x, test_y)
    save_checkpoint(args.out, {
        "architecture": "classifier",
        "width": settings.width,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "test_accuracy": acc,
        "epoch": settings.epochs,
        "history": history,
        "train_images": train_x.shape[0],
        "settings": dataclasses.asdict(settings),
        "seed": seed,
    })
    base = {"experiment": "classifier", "model": "cnn", "epoch": settings.epochs, "parameter": f"width={settings.width}"}
    write_metrics(args.metrics_out, [
        {**base, "metric": "test_accuracy", "value": acc, "n": test_x.shape[0]},
        {**base, "metric": "train_loss", "value": history[-1]["loss"], "n": train_x.shape[0]},
    ])
    speed = sum(h["images_per_second"] for h in history) / len(history)
    print(f"classifier (width {settings.width}, {settings.epochs} epochs, {train_x.shape[0]} images): "
          f"test accuracy {acc:.4f}, {speed:.0f} images/s on {device} -> {args.out}")


def fid_cmd(args, settings) -> None:
    import numpy as np
    import torch

    from difflab.data import mnist_tensors
    from difflab.metrics.classifier import accuracy
    from difflab.metrics.fid import classifier_extractor_name
    from difflab.metrics.scores import fid_rows, load_classifier, load_samples
    from difflab.metrics.tables import write_metrics
    from difflab.runtime import start_job

    device, _ = start_job(settings.device, 0)
    fake, labels = load_samples(args.samples)
    with np.load(args.samples) as data:
        model_name, epoch, guidance = str(data["model"]), int(data["epoch"]), float(data["guidance"])
    n = fake.shape[0]
    real_all, _ = mnist_tensors(args.data, "test", device)
    if n > real_all.shape[0]:
        raise DifflabError(f"{args.samples}: holds {n} images but MNIST test has only {real_all.shape[0]}; FID compares equal n")
    model, ckpt = load_classifier(args.classifier, device)
    parameter = "" if math.isnan(guidance) else f"guidance={guidance:g}"
    base = {"experiment": args.experiment, "model": model_name, "epoch": epoch, "parameter": parameter}
    rows = fid_rows(real_all[:n], fake, model, ckpt["width"], base, device, settings.inception,
                    settings.kid_subset_size, settings.kid_subsets)
    if labels[0] >= 0:
        acc = accuracy(model, fake, torch.from_numpy(labels))
        rows.append({**base, "metric": "class_accuracy", "value": acc, "n": n, "extractor": classifier_extractor_name(ckpt["width"])})
    write_metrics(args.out, rows)
    print("; ".join(f"{r['metric']} {r['value']:.4g} ({r['extractor']})" for r in rows) + f", n={n} -> {args.out}")


def real_floor_cmd(args, settings) -> None:
    from difflab.data import mnist_tensors
    from difflab.metrics.scores import fid_rows, load_classifier
    from difflab.metrics.tables import write_metrics
    from difflab.runtime import start_job

    device, _ = start_job(settings.device, 0)
    n = settings.real_floor_num_images
    train_x, _ = mnist_tensors(args.data, "train", device)
    test_x, _ = mnist_tensors(args.data, "test", device)
    model, ckpt = load_classifier(args.classifier, device)
    base = {"experiment": "fid_floor", "model": "mnist-train", "epoch": None, "parameter": ""}
    rows = fid_rows(test_x[:n], train_x[:n], model, ckpt["width"], base, device, settings.inception,
                    settings.kid_subset_size, settings.kid_subsets)
    write_metrics(args.out, rows)
    print("; ".join(f"floor {r['metric']} {r['value']:.4g} ({r['extractor']})" for r in rows) + f", n={n} -> {args.out}")


ACTIONS = {"train-classifier": ("models.classifier", train_classifier_cmd), "fid": ("metrics.fid", fid_cmd),
           "real-floor": ("metrics.fid_floor", real_floor_cmd)}


def cli(argv: list[str]) -> None:
    from difflab.settings import from_json

    parser = argparse.ArgumentParser(prog="difflab metrics", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for action, (job, _) in ACTIONS.items():
        p = sub.add_parser(action, help=f"settings: job {job}")
        p.add_argument("--data", required=True, help="results/data/mnist.npz")
        p.add_argument("--settings", required=True, help=f"JSON of the job {job} (difflab.settings.pipeline)")
        p.add_argument("--out", required=True, help="checkpoint (train-classifier) or tidy CSV to write")
        if action == "train-classifier":
            p.add_argument("--metrics-out", required=True, help="tidy CSV with the test accuracy")
        else:
            p.add_argument("--classifier", required=True, help="results/models/classifier.pt")
        if action == "fid":
            p.add_argument("--samples", required=True, help="npz of difflab.commands.samples")
            p.add_argument("--experiment", required=True, help="the experiment column: ddpm_time, ddpm_class or cfg_sweep")
    args = parser.parse_args(argv)
    job, run = ACTIONS[args.action]
    run(args, from_json(job, args.settings))
