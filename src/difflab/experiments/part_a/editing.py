"""Part A 1.7: SDEdit of test images (1.7), of drawn, font-set and user images (1.7.1), inpainting (1.7.2) and
class-conditional image-to-image translation (1.7.3), each returning a Result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from difflab import DifflabError
from difflab.edit import algorithms as A
from difflab.edit import inputs
from difflab.edit.photos import load_photo, rgb_from_gray, scaled_rectangle_mask
from difflab.experiments.part_a.context import (
    Context,
    Result,
    listed,
    mean_psnr,
    percent,
    quoted,
    trend,
)
from difflab.io import stderr_logger

PEN_WIDTH = 2.6  # "hand-drawn" stroke width in pixels of the 28 x 28 frame
PEN_WOBBLE = 0.02  # per-point jitter of the hand-drawn strokes, in units of the digit's height
DEFAULT_IMAGES_DIR = "data/images"  # part_a.images_dir = "" means this folder, if present

log = stderr_logger("difflab parta")


def sdedit_series(ctx: Context, s, x0: Tensor, cond: Tensor, tag: str) -> tuple[list[Tensor], list[int]]:
    """SDEdit (A.sdedit) of every image at every i_start of part_a.sdedit_i_starts, CFG gamma = part_a.cfg_scale.
    Returns the outputs, one (N, ...) batch per i_start, and their timesteps t = timesteps[i_start].
    Random draws: ctx.generator(tag, i_start) per i_start: the forward eps, then one z per step."""
    ts = ctx.timesteps(s.stride)
    outs = [A.sdedit(ctx.den, x0, i, ts, cond, ctx.generator(tag, i), cfg_scale=s.cfg_scale, desc=f"{tag} i_start={i}",
                    ddim_eta=ctx.ddim_eta)
            for i in s.sdedit_i_starts]
    return outs, [ts[i] for i in s.sdedit_i_starts]


@dataclass(frozen=True)
class SdeditResult(Result):
    """edits: (I*K, 1, 28, 28) order i_start, image; originals: (K, 1, 28, 28); i_starts, t_values: (I,);
    names: (K,) row labels of the inputs (empty strings for test images)."""

    edits: Tensor
    originals: Tensor
    i_starts: list
    t_values: list
    names: list


def _psnr_facts(psnr: list[float], starts: list[int], t_values: list[int]) -> dict:
    return {"i_starts": listed(starts), "psnr_trend": trend(psnr[0], psnr[-1]), "psnr_first": f"{psnr[0]:.1f}",
            "psnr_last": f"{psnr[-1]:.1f}", "i_first": starts[0], "i_last": starts[-1], "t_first": t_values[0],
            "t_last": t_values[-1]}


def sdedit(ctx: Context, s) -> SdeditResult:
    """1.7: SDEdit of MNIST test images guided by each image's label."""
    x0, labels = ctx.test_images(s.test_images)
    outs, t_values = sdedit_series(ctx, s, x0, ctx.content_conditions(labels, len(x0)), "sdedit")
    psnr = [mean_psnr(ctx, x, x0) for x in outs]
    metrics = [ctx.row(f"i_start={i}", "psnr_to_input_mean", v, len(s.test_images)) for i, v in zip(s.sdedit_i_starts, psnr)]
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "test_images": listed(s.test_images),
             **_psnr_facts(psnr, s.sdedit_i_starts, t_values)}
    return SdeditResult(metrics, facts, ctx.clamp(torch.cat(outs)), x0, list(s.sdedit_i_starts), t_values,
                        [""] * len(x0))


def sdedit_inputs(ctx: Context, s) -> SdeditResult:
    """1.7.1: SDEdit of digits drawn as pen strokes (part_a.hand_drawn_digits), set in DejaVu Sans (part_a.web_digits)
    and the images in part_a.images_dir (a file name starting with a digit guides towards it, else the null
    condition). Random draws: ctx.generator('pen') for the strokes, then the SDEdit series ('sdedit_inputs', i)."""
    g = ctx.generator("pen", device="cpu")  # strokes are drawn on the host, whatever the backend's device
    images = [inputs.stroke_digit(d, PEN_WIDTH, PEN_WOBBLE, g) for d in s.hand_drawn_digits]
    images += [inputs.font_digit(d) for d in s.web_digits]
    names = [f"hand-drawn {d}" for d in s.hand_drawn_digits] + [f"DejaVu Sans {d}" for d in s.web_digits]
    digits: list[int | None] = list(s.hand_drawn_digits) + list(s.web_digits)
    images_dir = Path(s.images_dir or DEFAULT_IMAGES_DIR)
    loaded, skipped = inputs.load_user_images(images_dir)
    for path, image, notes in loaded:
        for note in notes:
            log(f"{path}: {note}")
        digit = inputs.digit_in_name(path)
        if digit is None:
            log(f"{path}: no digit at the start of the file name; guided by the null condition (unguided SDEdit)")
        images.append(image)
        names.append(Path(path).name)
        digits.append(digit)
    for path, reason in skipped:
        log(f"skipped {path}: {reason}")
    x0 = torch.stack(images).to(ctx.den.device)
    if ctx.is_mnist:
        cond = torch.cat([ctx.digit_conditions([d]) if d is not None else ctx.den.null_condition(1) for d in digits])
    else:  # drawn digits as RGB at the backend's size, user images in colour; all towards "a high quality photo"
        x0 = rgb_from_gray(x0[:len(images) - len(loaded)], ctx.den.image_shape[-1], ctx.den.value_range)
        x0 = torch.cat([x0, *[load_photo(path, ctx.den.image_shape[-1]) for path, _, _ in loaded]]).to(ctx.den.device)
        cond = ctx.content_conditions(None, len(x0))
    outs, t_values = sdedit_series(ctx, s, x0, cond, "sdedit_inputs")
    psnr = [mean_psnr(ctx, x, x0) for x in outs]
    metrics = [ctx.row(f"i_start={i}", "psnr_to_input_mean", v, len(images)) for i, v in zip(s.sdedit_i_starts, psnr)]
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "hand_drawn": listed(s.hand_drawn_digits),
             "num_hand_drawn": len(s.hand_drawn_digits), "web": listed(s.web_digits), "num_web": len(s.web_digits),
             "num_user_images": len(loaded), "images_dir": images_dir.as_posix(),
             "skipped": "; ".join(f"{Path(p).name} ({r})" for p, r in skipped) or "none",
             **_psnr_facts(psnr, s.sdedit_i_starts, t_values)}
    return SdeditResult(metrics, facts, ctx.clamp(torch.cat(outs)), x0, list(s.sdedit_i_starts), t_values, names)


def masks_of(ctx: Context, inpaint_masks: list) -> list[Tensor]:
    """part_a.inpaint_masks as (1, C, H, W) tensors (1 = inpaint): each a rectangle [row0, row1, col0, col1] or the
    path of a black-and-white mask image; a mask file's size, grey levels or coverage is a DifflabError naming it."""
    C, H, W = ctx.den.image_shape
    masks = []
    for i, item in enumerate(inpaint_masks):
        key = f"config key 'part_a.inpaint_masks[{i}]'"
        if isinstance(item, str):
            try:
                m = inputs.load_mask(item, H, W)
            except DifflabError as exc:
                raise DifflabError(f"{key}: {exc}") from None
            masks.append(m.expand(C, H, W).unsqueeze(0).to(ctx.den.device))
            continue
        m = torch.zeros(1, C, H, W, device=ctx.den.device)
        m[..., item[0]:item[1], item[2]:item[3]] = 1
        masks.append(inputs.check_mask(m, f"{key} = {item!r}"))
    return masks


@dataclass(frozen=True)
class InpaintResult(Result):
    """images: (K*M*S, 1, 28, 28) order image, mask, sample; originals: (K, 1, 28, 28); masks: (M, 1, 28, 28),
    1 = inpainted; mask_names: (M,) 'rows a–b, columns c–d' or a file name."""

    images: Tensor
    originals: Tensor
    masks: Tensor
    mask_names: list


def _describe_mask(item) -> str:
    return Path(item).name if isinstance(item, str) else f"rows {item[0]}–{item[1]}, columns {item[2]}–{item[3]}"


def inpaint(ctx: Context, s) -> InpaintResult:
    """1.7.2: A.inpaint (RePaint-style) of each test image under each mask, part_a.num_samples samples, CFG towards
    the image's label. Random draws: ctx.generator(): the start eps, then per step z and the forward noise."""
    x0, labels = ctx.test_images(s.test_images)
    mask_items = s.inpaint_masks if ctx.is_mnist else ctx.den.spec["photo_masks"]  # deepfloyd: 64 px rectangles
    masks = masks_of(ctx, s.inpaint_masks) if ctx.is_mnist else [
        scaled_rectangle_mask(r, ctx.den.image_shape).to(ctx.den.device) for r in mask_items]
    S, K, M = s.num_samples, len(x0), len(masks)
    orig = x0.repeat_interleave(M * S, dim=0)  # batch order: image, mask, sample
    mask = torch.cat(masks).repeat_interleave(S, dim=0).repeat(K, 1, 1, 1)
    cond = ctx.content_conditions(labels, K).repeat_interleave(M * S, dim=0)
    out = A.inpaint(ctx.den, orig, mask, ctx.timesteps(s.stride), cond, ctx.generator(), s.cfg_scale, desc="inpainting",
                    ddim_eta=ctx.ddim_eta)
    kept_err = float(((out - orig).abs() * (1 - mask)).amax())
    hole_mse = float((((out - orig) ** 2) * mask).flatten(1).sum(1).div(mask.flatten(1).sum(1)).mean())
    metrics = [ctx.row("", "kept_region_max_abs_error", kept_err, K * M * S),
               ctx.row("", "hole_mse_to_original_mean", hole_mse, K * M * S)]
    names = [_describe_mask(item) for item in mask_items]
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "test_images": listed(s.test_images), "num_samples": S,
             "masks": "; ".join(names), "kept_error": f"{kept_err:.1e}", "hole_mse": f"{hole_mse:.3f}"}
    return InpaintResult(metrics, facts, ctx.clamp(out), x0, torch.cat(masks), names)


@dataclass(frozen=True)
class Img2imgResult(Result):
    """edits: (I*P*K, 1, 28, 28) order i_start, prompt, image; sources: (P*K, 1, 28, 28) order prompt, image;
    i_starts, t_values: (I,); prompts: (P,); indices: (K,); target_rate: (I,) share read as the target digit."""

    edits: Tensor
    sources: Tensor
    i_starts: list
    t_values: list
    prompts: list
    indices: list
    target_rate: list


def img2img(ctx: Context, s) -> Img2imgResult:
    """1.7.3: SDEdit of the test images guided towards each of part_a.img2img_prompts.
    Random draws: the SDEdit series ('img2img', i_start)."""
    x0, _ = ctx.test_images(s.test_images)
    prompts = s.img2img_prompts
    conds = ctx.encode("img2img_prompts", prompts)
    K, P = len(x0), len(prompts)  # other backends: their photos, not part_a.test_images
    names = list(s.test_images) if ctx.is_mnist else list(ctx.den.spec["photos"])
    src = x0.repeat(P, 1, 1, 1)  # batch order: prompt, image
    cond = conds.repeat_interleave(K, dim=0)
    outs, t_values = sdedit_series(ctx, s, src, cond, "img2img")
    if ctx.is_mnist:  # the MNIST backend's conditions are one-hot digits
        target = cond.argmax(dim=1)
        rates = [float((ctx.read_digits(x)[0] == target).float().mean()) for x in outs]
    else:
        rates = [float("nan")] * len(outs)
    metrics = [ctx.row(f"i_start={i}", "reads_as_target", r, K * P) for i, r in zip(s.sdedit_i_starts, rates)]
    facts = {"seed": ctx.seed, "cfg_scale": f"{s.cfg_scale:g}", "test_images": listed(s.test_images),
             "prompts": quoted(prompts), "i_starts": listed(s.sdedit_i_starts),
             "target_rates": listed([percent(r) for r in rates])}
    return Img2imgResult(metrics, facts, ctx.clamp(torch.cat(outs)), src, list(s.sdedit_i_starts), t_values,
                         list(prompts), names, rates)
