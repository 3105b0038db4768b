"""`difflab train`: initialise a Part B model (epoch 0) or train it one more epoch (the resumable chain).

    python -m difflab train --model class --epoch 0 --settings '<json>' --out results/models/class/chain/epoch_0.pt
    python -m difflab train --model class --epoch 3 --previous .../chain/epoch_2.pt --data results/data/mnist.npz \
        --settings '<json>' --out .../chain/epoch_3.pt
"""

from __future__ import annotations

import argparse
import dataclasses

from difflab import DifflabError


def cli(argv: list[str]) -> None:
    from difflab.settings import from_json

    parser = argparse.ArgumentParser(prog="difflab train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, choices=["denoiser", "time", "class"])
    parser.add_argument("--epoch", required=True, type=int, help="epoch to produce; 0 initialises the model")
    parser.add_argument("--settings", required=True, help="JSON of the job models.train_<model> (difflab.settings.pipeline)")
    parser.add_argument("--out", required=True, help="checkpoint to write (epoch_<epoch>.pt)")
    parser.add_argument("--previous", help="checkpoint of epoch-1 (required for epoch >= 1)")
    parser.add_argument("--data", help="results/data/mnist.npz (required for epoch >= 1)")
    args = parser.parse_args(argv)
    settings = dataclasses.asdict(from_json(f"models.train_{args.model}", args.settings))

    from difflab.checkpoint import load_unet_checkpoint, save_checkpoint
    from difflab.performance import train_precision
    from difflab.runtime import start_job
    from difflab.train import initial_checkpoint, train_one_epoch

    device, seed = start_job(settings["device"], settings["seed"])
    if args.epoch == 0:
        save_checkpoint(args.out, initial_checkpoint(args.model, settings, seed))
        print(f"initialised {args.model} UNet (D={settings['hidden']}) -> {args.out}")
        return
    if not args.previous or not args.data:
        raise DifflabError("--previous and --data are required for epoch >= 1")
    ckpt = load_unet_checkpoint(args.previous)
    if ckpt.kind != args.model or ckpt.epoch != args.epoch - 1:
        raise DifflabError(f"{args.previous}: holds {ckpt.kind} epoch {ckpt.epoch}, expected {args.model} epoch {args.epoch - 1}")
    # The device may change between runs (resume a CPU run on a GPU); every other setting must match.
    changed = sorted(k for k in set(ckpt.settings) | set(settings)
                     if k != "device" and ckpt.settings.get(k) != settings.get(k))
    if changed:
        raise DifflabError(f"{args.previous}: was trained with different settings ({', '.join(changed)}); delete results/models/{args.model}/chain to retrain")
    from difflab.data import mnist_tensors

    images, labels = mnist_tensors(args.data, "train", device=device, subset=settings["train_subset"])
    new = train_one_epoch(ckpt, images, labels, device)
    save_checkpoint(args.out, new)
    last = new.losses[-new.steps_per_epoch:]
    precision = train_precision(settings["train_precision"], device)
    print(f"{args.model} epoch {args.epoch}: mean loss {sum(last) / len(last):.5f}, "
          f"{new.images_per_second:.0f} images/s on {device} in {precision} -> {args.out}")
