"""Where DeepFloyd IF weights live on disk, and what is missing: no torch, no diffusers, no network.

The Snakefile's preflight calls `missing_weights` before any job starts; the backend (edit/backends/deepfloyd.py)
calls `resolve_model_folder` to find the folder it loads. A model is found in one of two places:

- `model_dir`: a local folder in the diffusers layout (`model_index.json`, `unet/`, `scheduler/`, and for prompt
  encoding `text_encoder/` and `tokenizer/`), e.g. the result of `hf download <id> --local-dir <folder>`;
- the Hugging Face cache: `$HF_HUB_CACHE` (default `$HF_HOME/hub`, i.e. ~/.cache/huggingface/hub), folder
  `models--DeepFloyd--IF-I-L-v1.0/snapshots/<commit>/`, the commit named by `refs/main` (or the only snapshot).

Nothing here downloads: a model that is in neither place is a DifflabError that says which files are missing, that
the DeepFloyd IF licence must be accepted on the model page first, the `hf download` command that fetches the files,
and the config key that points at a local folder. Source for the layout: huggingface_hub's cache documentation
(https://huggingface.co/docs/huggingface_hub/guides/manage-cache) and diffusers' `DiffusionPipeline.save_pretrained`.
"""

from __future__ import annotations

import os
from pathlib import Path

from difflab import DifflabError

STAGE_1_IDS = ("DeepFloyd/IF-I-L-v1.0", "DeepFloyd/IF-I-XL-v1.0", "DeepFloyd/IF-I-M-v1.0")
STAGE_2_IDS = ("DeepFloyd/IF-II-L-v1.0", "DeepFloyd/IF-II-M-v1.0")
LICENCE_PAGE = "https://huggingface.co/DeepFloyd/IF-I-XL-v1.0"  # accepting it there covers every IF repository

# What each use of a model folder needs (paths relative to the folder; a weights entry is a prefix).
UNET_FILES = ("model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "unet/diffusion_pytorch_model")
TEXT_FILES = ("model_index.json", "text_encoder/config.json", "text_encoder/model", "tokenizer/")
# `hf download` patterns that fetch exactly those files (fp16 weights only; the full-precision ones are not needed).
UNET_PATTERNS = ("model_index.json", "scheduler/*", "unet/config.json", "unet/*fp16*")
TEXT_PATTERNS = ("model_index.json", "text_encoder/*", "tokenizer/*")


def hub_cache() -> Path:
    """The Hugging Face hub cache folder: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub
    (the rule of huggingface_hub.constants, read here without importing it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_snapshot(model_id: str, cache: Path | None = None) -> Path | None:
    """The cache's snapshot folder of `model_id` (the commit refs/main names, else the only snapshot), or None."""
    repo = (cache or hub_cache()) / ("models--" + model_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        folder = repo / "snapshots" / ref.read_text().strip()
        return folder if folder.is_dir() else None
    snapshots = sorted(p for p in (repo / "snapshots").glob("*") if p.is_dir())
    return snapshots[0] if len(snapshots) == 1 else None


def resolve_model_folder(model_id: str, model_dir: str, key: str) -> Path:
    """The folder to load: `model_dir` if given (it must exist), else the cached snapshot of `model_id`.

    `key` is the config key that holds `model_dir` (e.g. 'part_a.deepfloyd.model_dir'), named in the error. Raises
    DifflabError with the download hint when neither exists."""
    if model_dir:
        folder = Path(model_dir).expanduser()
        if not folder.is_dir():
            raise DifflabError(f"config key '{key}' = {model_dir!r}: folder not found; "
                               f"expected a diffusers folder of {model_id} ({download_hint(model_id, UNET_PATTERNS, key)})")
        return folder
    folder = cached_snapshot(model_id)
    if folder is None:
        raise DifflabError(f"{model_id} is not in the Hugging Face cache {hub_cache()} and config key '{key}' "
                           f"is empty; {download_hint(model_id, UNET_PATTERNS, key)}")
    return folder


def download_hint(model_id: str, patterns: tuple[str, ...], key: str) -> str:
    """How to get the files: accept the licence, then `hf download` (into the cache, or a folder for model_dir)."""
    include = " ".join(f"'{p}'" for p in patterns)
    return (f"accept the DeepFloyd IF licence at {LICENCE_PAGE} (non-commercial research use), log in with `hf auth login`, "
            f"then run `hf download {model_id} --include {include}` (fills the cache) or add `--local-dir <folder>` "
            f"and set config key '{key}' to that folder")


def missing_files(folder: Path, needed: tuple[str, ...]) -> list[str]:
    """The entries of `needed` absent from `folder`: a name ending in '/' must be a non-empty folder, a name whose
    last part has no extension is a prefix of a weights file (any of .safetensors, .bin, .fp16.safetensors, ...)."""
    missing = []
    for name in needed:
        path = folder / name
        if name.endswith("/"):
            ok = path.is_dir() and any(path.iterdir())
        elif "." not in Path(name).name:
            ok = any(p.is_file() for p in path.parent.glob(path.name + "*")) if path.parent.is_dir() else False
        else:
            ok = path.is_file()
        if not ok:
            missing.append(name)
    return missing


def missing_weights(model_id: str, model_dir: str, key: str, needs_text_encoder: bool = False) -> list[str]:
    """One line per problem (empty when the model can be loaded): the folder cannot be found, or it lacks files
    the run needs (the UNet and scheduler; with needs_text_encoder also the T5 encoder and tokenizer)."""
    try:
        folder = resolve_model_folder(model_id, model_dir, key)
    except DifflabError as exc:
        text = " (with 'text_encoder/*' 'tokenizer/*' for the T5 prompt encoder)" if needs_text_encoder else ""
        return [str(exc) + text]
    needed = UNET_FILES + (TEXT_FILES if needs_text_encoder else ())
    patterns = UNET_PATTERNS + (TEXT_PATTERNS if needs_text_encoder else ())
    missing = list(dict.fromkeys(missing_files(folder, needed)))
    if not missing:
        return []
    return [f"{model_id} in {folder} lacks {', '.join(missing)}; {download_hint(model_id, patterns, key)}"]


def uses_fp16_variant(folder: Path, component: str = "unet") -> bool:
    """Whether `folder/component` holds the fp16 variant files (`*.fp16.safetensors`, `*.fp16.bin`), as the
    DeepFloyd repositories ship them; diffusers then loads them with variant='fp16'."""
    return any((folder / component).glob("*.fp16.*"))


def weights_bytes(folder: Path, component: str = "unet") -> int:
    """Total size in bytes of the weight files of `folder/component` (0 if none)."""
    return sum(p.stat().st_size for p in (folder / component).glob("diffusion_pytorch_model*") if p.is_file())
