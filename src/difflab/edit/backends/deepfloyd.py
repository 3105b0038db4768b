"""DeepFloyd IF stage I behind the `Denoiser` protocol (diffusers), plus T5 prompt embeddings and stage II upsampling.

- Images are 3 x 64 x 64 in [-1, 1] (the size comes from the UNet's `sample_size`), as the course's notebook uses them.
- The schedule is the stage I scheduler's `alphas_cumprod` (T = 1000, squaredcos_cap_v2).
- The UNet is called as unet(x_t, t, encoder_hidden_states=prompt_embeds) (spec "Core model call"); it returns 6
  channels: the first 3 are eps, the last 3 the learned-range variance value v in [-1, 1] (Improved DDPM), which
  difflab.sampler.step_variance turns into the step's variance ("learned_range", the diffusers formula).
- Conditions are T5 prompt embeddings (N, 77, d) (d = 4096 for T5-v1.1-XXL), looked up by prompt text in a dict
  file (prompt -> (1, 77, d), the course's prompt_embeds_dict.pth format) that `encode_prompts` writes once; the
  null condition is the embedding of the empty prompt "" (spec A.1.6). T5 is never loaded by the Denoiser.
- fp16 weights on CUDA (the reverse loop itself stays in float32: the UNet's input is cast to fp16 and its output
  back), float32 on CPU; model CPU offload (accelerate) on request, for 16 GB GPUs.

Loading never downloads: the folder comes from deepfloyd_weights.resolve_model_folder (model_dir or the Hugging Face
cache) and from_pretrained gets local_files_only=True with HF_HUB_OFFLINE=1 set before diffusers is imported.

What difflab does differently from diffusers' IFPipeline: no dynamic thresholding or clipping of x0_hat (the course's
own loop has neither; the real IF scheduler config has thresholding=True), and strided timesteps ending in a step
into t = -1 (the pipeline's own timestep lists differ). tests/unit/test_deepfloyd.py checks that with the same noise,
embeddings, timesteps and guidance, and thresholding and clipping off in the scheduler, both give the same images.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import torch
from torch import Tensor

from difflab import DifflabError
from difflab.edit.backends.deepfloyd_weights import resolve_model_folder, uses_fp16_variant, weights_bytes
from difflab.runtime import map_in_chunks

KEY = "part_a.deepfloyd"
FULL_SIZE_BYTES = 256 * 2**20  # a UNet with more weights than this (every real IF model) needs CUDA
EMBED_LENGTH = 77  # T5 tokens per prompt (IFPipeline.encode_prompt's max_length)


def _offline() -> None:
    """Make huggingface_hub refuse the network: it reads HF_HUB_OFFLINE when first imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.float32


def _from_pretrained(pipeline_class, folder: Path, device: torch.device, component: str = "unet", **components):
    """pipeline_class.from_pretrained(folder) from local files only, fp16 on CUDA, with the safety checker,
    watermarker and feature extractor left out (Part A needs none of them); the fp16 variant files when present."""
    options = dict(safety_checker=None, watermarker=None, feature_extractor=None, requires_safety_checker=False,
                   local_files_only=True, dtype=_dtype(device), **components)
    if uses_fp16_variant(folder, component):
        options["variant"] = "fp16"
    try:
        return pipeline_class.from_pretrained(str(folder), **options)
    except (OSError, ValueError, EnvironmentError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DifflabError(f"{folder}: diffusers cannot load {pipeline_class.__name__} from it ({first}); "
                           f"set config key '{KEY}.model_dir' to a complete diffusers folder") from None


def check_device(folder: Path, device: torch.device, what: str) -> None:
    """A full-size model (UNet weights over FULL_SIZE_BYTES) on a machine without CUDA is a one-line error."""
    if device.type != "cuda" and weights_bytes(folder) > FULL_SIZE_BYTES:
        raise DifflabError(f"{what} in {folder} has {weights_bytes(folder) / 2**30:.1f} GiB of UNet weights and needs a "
                           "CUDA GPU (fp16), but this job runs on the CPU; run on a GPU machine (config key 'device': "
                           f"auto or cuda), or set '{KEY}.model_dir' to a small test pipeline")


def place(pipe, device: torch.device, cpu_offload: bool):
    """The pipeline on `device`, or with model CPU offload (config key part_a.deepfloyd.cpu_offload: each model moves
    to the GPU only while it runs, through the `accelerate` package). On the CPU there is nothing to offload to, so
    the key is ignored there (with a note on stderr); offload on CUDA without accelerate is a DifflabError."""
    if cpu_offload and device.type != "cuda":
        import sys

        print(f"difflab: '{KEY}.cpu_offload' is ignored on {device} (offload moves models to a GPU while they run)",
              file=sys.stderr)
    if cpu_offload and device.type == "cuda":
        import importlib.util

        if importlib.util.find_spec("accelerate") is None:
            raise DifflabError(f"config key '{KEY}.cpu_offload' is true but the 'accelerate' package is not installed; "
                               "install it (pip install -r requirements.txt) or set the key to false")
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    return pipe


# --- prompt embeddings --------------------------------------------------------------------------------------


def load_prompt_embeds(path: str | os.PathLike) -> dict[str, Tensor]:
    """A prompt -> (1, L, d) tensor dict saved with torch.save (the course's prompt_embeds_dict.pth, or what
    `encode_prompts` wrote). Raises DifflabError naming the file if it is missing, unreadable or of another form."""
    path = Path(path)
    if not path.is_file():
        raise DifflabError(f"{path}: prompt embeddings file not found (config key '{KEY}.prompt_embeds')")
    try:
        embeds = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling error, as one line
        raise DifflabError(f"{path}: not a torch.save file of prompt embeddings ({type(exc).__name__})") from None
    if not isinstance(embeds, dict) or not embeds:
        raise DifflabError(f"{path}: expected a non-empty dict prompt -> tensor [1, {EMBED_LENGTH}, d]")
    for prompt, value in embeds.items():
        if not isinstance(prompt, str) or not isinstance(value, Tensor) or value.dim() != 3 or value.shape[0] != 1:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise DifflabError(f"{path}: entry {str(prompt)[:40]!r} is {shape}; expected a tensor [1, {EMBED_LENGTH}, d]")
    return embeds


def missing_prompts(prompts: list[str], embeds: dict[str, Tensor]) -> list[str]:
    """The prompts (in order, once each) that have no entry in `embeds`."""
    return [p for p in dict.fromkeys(prompts) if p not in embeds]


@torch.no_grad()
def encode_prompts(folder: Path, prompts: list[str], device: torch.device) -> dict[str, Tensor]:
    """{prompt: (1, 77, d) float tensor on the CPU} for each prompt, from the T5 encoder and tokenizer in `folder`
    (IFPipeline.encode_prompt, clean_caption off; fp16 on CUDA). The encoder is freed before returning."""
    _offline()
    from diffusers import IFPipeline

    pipe = _from_pretrained(IFPipeline, folder, device, component="text_encoder", unet=None)
    if pipe.text_encoder is None or pipe.tokenizer is None:
        raise DifflabError(f"{folder}: has no text_encoder/ or tokenizer/ to encode prompts with; set config key "
                           f"'{KEY}.prompt_embeds' to a precomputed prompt -> embedding dict instead")
    pipe.text_encoder.to(device)
    embeds = {}
    for prompt in dict.fromkeys(prompts):
        positive, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False, device=device, clean_caption=False)
        embeds[prompt] = positive.detach().cpu()
    del pipe
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return embeds


# --- the Denoiser -------------------------------------------------------------------------------------------


class DeepFloydDenoiser:
    """A Denoiser over DeepFloyd IF stage I (an IFPipeline's unet and scheduler) with a prompt-embedding dict."""

    value_range = (-1.0, 1.0)
    image_shape = (3, 64, 64)  # stage I of every IF size; an instance takes its own from the UNet's sample_size
    num_timesteps = 1000  # T of the IF schedulers; an instance takes its own from alphas_cumprod

    def __init__(self, pipe, embeds: dict[str, Tensor], device: torch.device, model_id: str = "",
                 embeds_file: str = "", null_prompt: str = "", batch_size: int = 16):
        self.pipe = pipe
        self.unet = pipe.unet
        self.device = torch.device(device)
        self.dtype = self.unet.dtype
        self.alphas_cumprod = pipe.scheduler.alphas_cumprod.to(self.device, torch.float32)
        self.num_timesteps = int(self.alphas_cumprod.shape[0])
        size = self.unet.config.sample_size
        self.channels = int(self.unet.config.in_channels)
        self.image_shape = (self.channels, int(size), int(size))
        if self.unet.config.out_channels != 2 * self.channels:
            raise DifflabError(f"{model_id}: the UNet returns {self.unet.config.out_channels} channels; the DeepFloyd "
                               f"backend needs {2 * self.channels} (eps and the learned-range variance)")
        self.embeds = embeds
        self.embeds_file = embeds_file
        self.model_id = model_id
        self.null_prompt = null_prompt
        self.batch_size = batch_size
        self.stage_2 = None

    @classmethod
    def load(cls, model_id: str, model_dir: str, embeds: dict[str, Tensor], device: torch.device | str = "cpu",
             cpu_offload: bool = False, embeds_file: str = "", null_prompt: str = "") -> "DeepFloydDenoiser":
        """Stage I from `model_dir` (or the Hugging Face cache for `model_id`) without its text encoder."""
        _offline()
        from diffusers import IFPipeline

        device = torch.device(device)
        folder = resolve_model_folder(model_id, model_dir, f"{KEY}.model_dir")
        check_device(folder, device, model_id)
        pipe = _from_pretrained(IFPipeline, folder, device, text_encoder=None, tokenizer=None)
        return cls(place(pipe, device, cpu_offload), embeds, device, model_id, embeds_file, null_prompt)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "DeepFloydDenoiser":
        """From a backend file (results/models/deepfloyd/backend.json, written by `difflab deepfloyd backend`): the
        model id and folder, the prompt-embedding dict, cpu_offload, the null prompt and the stage II settings."""
        from difflab.io import read_json

        spec = read_json(path)
        embeds = load_prompt_embeds(spec["prompt_embeds"])
        den = cls.load(spec["model_id"], spec["model_dir"], embeds, device, spec["cpu_offload"], spec["prompt_embeds"],
                       spec["null_prompt"])
        den.stage_2 = spec.get("stage_2") or None
        den.spec = spec  # photos, masks and prompts the Part A experiments read (difflab.experiments.part_a.context)
        return den

    @torch.no_grad()
    def predict_noise(self, x_t: Tensor, t: int, cond: Tensor) -> tuple[Tensor, Tensor]:
        """(eps, v) for x_t (N, 3, H, W) at timestep t with prompt embeddings cond (N, 77, d): the UNet's 6 output
        channels split 3 + 3, in x_t's dtype; the UNet runs in its own dtype (fp16 on CUDA), in chunks of batch_size."""
        def run(a: int, b: int) -> Tensor:
            out = self.unet(x_t[a:b].to(self.dtype), t, encoder_hidden_states=cond[a:b].to(self.device, self.dtype),
                            return_dict=False)[0]
            return out.to(x_t.dtype)

        chunks, self.batch_size = map_in_chunks(run, x_t.shape[0], self.batch_size,
                                                f"in the DeepFloyd backend at timestep {t}")
        eps, v = torch.cat(chunks).split(self.channels, dim=1)
        return eps, v

    def encode(self, prompt: str) -> Tensor:
        """The (1, 77, d) embedding of `prompt` from the dict; a prompt not in it is a DifflabError naming both."""
        if prompt not in self.embeds:
            where = self.embeds_file or "the prompt embeddings"
            raise DifflabError(f"prompt {prompt[:60]!r} has no embedding in {where}; add it to the config's prompts "
                               f"(the embedding job encodes every one) or to the dict of '{KEY}.prompt_embeds'")
        return self.embeds[prompt].to(self.device, torch.float32)

    def null_condition(self, batch: int) -> Tensor:
        """The embedding of the null prompt ("" by default), repeated to `batch` rows."""
        return self.encode(self.null_prompt).expand(batch, -1, -1)

    @torch.no_grad()
    def upsample(self, images: Tensor, cond: Tensor, generator: torch.Generator) -> Tensor | None:
        """Stage II (IFSuperResolutionPipeline) on final images (N, 3, 64, 64) in [-1, 1] with their prompt embeddings
        cond (N, 77, d) and the null prompt as the negative: (N, 3, 256, 256) in [-1, 1] (clamped), or None when
        stage II is off (config key part_a.deepfloyd.stage_2)."""
        spec = self.stage_2
        if not spec or not spec.get("enabled"):
            return None
        from diffusers import IFSuperResolutionPipeline

        folder = resolve_model_folder(spec["model_id"], spec["model_dir"], f"{KEY}.stage_2_dir")
        check_device(folder, self.device, spec["model_id"])
        pipe = place(_from_pretrained(IFSuperResolutionPipeline, folder, self.device, text_encoder=None, tokenizer=None),
                     self.device, bool(spec.get("cpu_offload")))
        dtype = pipe.unet.dtype
        out = pipe(image=images.to(self.device, dtype), prompt_embeds=cond.to(self.device, dtype),
                   negative_prompt_embeds=self.null_condition(images.shape[0]).to(dtype),
                   num_inference_steps=int(spec["num_steps"]), generator=generator, output_type="pt").images
        del pipe
        gc.collect()
        return out.float().clamp(-1.0, 1.0)
