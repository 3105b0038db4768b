"""`python -m difflab deepfloyd embed|backend ...`: the DeepFloyd IF backend's two models-stage jobs.

    deepfloyd embed   --settings JSON --out results/models/deepfloyd/prompt_embeds.pt
    deepfloyd backend --settings JSON --embeds EMBEDS.pt --out results/models/deepfloyd/backend.json

`embed` encodes every prompt the config uses (settings class models.deepfloyd_embeds) with the model's T5 encoder
once, writes the prompt -> (1, 77, d) dict and frees the encoder; it runs only when part_a.deepfloyd.prompt_embeds
is "". `backend` writes the file every Part A job loads as its 'checkpoint' (settings class models.deepfloyd_backend
plus the embeddings file in use), after checking that the dict holds every prompt.
"""

from __future__ import annotations

import argparse

from difflab.io import stderr_logger

log = stderr_logger("difflab deepfloyd")


def config_prompts(s) -> list[str]:
    """Every prompt a Part A job on this backend encodes, once each, in config order: the unconditional and null
    prompts, then part_a.sample_prompts, img2img_prompts and the anagram and hybrid pairs."""
    prompts = [s.unconditional_prompt, s.null_prompt, *s.sample_prompts, *s.img2img_prompts]
    prompts += [p for pair in list(s.anagrams) + list(s.hybrids) for p in pair]
    return list(dict.fromkeys(prompts))


def embed(settings_text: str, out: str) -> None:
    import torch

    from difflab.edit.backends.deepfloyd import KEY, encode_prompts
    from difflab.edit.backends.deepfloyd_weights import resolve_model_folder
    from difflab.io import atomic_path
    from difflab.runtime import resolve_device
    from difflab.settings import from_json

    s = from_json("models.deepfloyd_embeds", settings_text)
    device = resolve_device(s.device)
    folder = resolve_model_folder(s.model_id, s.model_dir, f"{KEY}.model_dir")
    prompts = config_prompts(s)
    embeds = encode_prompts(folder, prompts, device)
    with atomic_path(out) as tmp:
        torch.save(embeds, tmp)
    shape = tuple(next(iter(embeds.values())).shape)
    log(f"encoded {len(embeds)} prompts with the T5 encoder of {s.model_id} ({folder}) on {device}: {shape} each -> {out}")


def backend(settings_text: str, embeds_path: str, out: str) -> None:
    from difflab import DifflabError
    from difflab.edit.backends.deepfloyd import load_prompt_embeds
    from difflab.io import write_json
    from difflab.settings import from_json

    s = from_json("models.deepfloyd_backend", settings_text)
    embeds = load_prompt_embeds(embeds_path)
    for prompt in (s.unconditional_prompt, s.null_prompt):
        if prompt not in embeds:
            raise DifflabError(f"prompt {prompt!r} is not in {embeds_path}")
    spec = {"model_id": s.model_id, "model_dir": s.model_dir, "prompt_embeds": embeds_path, "cpu_offload": s.cpu_offload,
            "unconditional_prompt": s.unconditional_prompt, "null_prompt": s.null_prompt, "photos": list(s.photos),
            "photo_masks": [list(m) for m in s.photo_masks],
            "stage_2": {"enabled": s.stage_2, "model_id": s.stage_2_id, "model_dir": s.stage_2_dir,
                        "num_steps": s.stage_2_steps, "cpu_offload": s.cpu_offload}}
    write_json(out, spec)
    log(f"{out}: {s.model_id} with {len(embeds)} prompt embeddings from {embeds_path}")


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab deepfloyd", description="DeepFloyd IF backend: prompt embeddings "
                                     "and the backend file Part A jobs load.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    e = verbs.add_parser("embed", help="encode every config prompt with T5 into a prompt -> embedding dict")
    e.add_argument("--settings", required=True, help="JSON: settings of models.deepfloyd_embeds")
    e.add_argument("--out", required=True, help="results/models/deepfloyd/prompt_embeds.pt")
    b = verbs.add_parser("backend", help="write the backend file every Part A job loads")
    b.add_argument("--settings", required=True, help="JSON: settings of models.deepfloyd_backend")
    b.add_argument("--embeds", required=True, help="the prompt -> embedding dict in use")
    b.add_argument("--out", required=True, help="results/models/deepfloyd/backend.json")
    args = parser.parse_args(argv)
    if args.verb == "embed":
        embed(args.settings, args.out)
    else:
        backend(args.settings, args.embeds, args.out)
