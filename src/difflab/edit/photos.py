"""Input images for the DeepFloyd IF backend: 3 x S x S float tensors in [-1, 1] (S = 64 for stage I).

- `process_pil_im`: the course's preprocessing of web and hand-drawn images (spec A.0): RGB, the shorter side resized
  to S (bilinear, antialiased, as torchvision's Resize on a PIL image), a centre crop of S x S, then 2 x - 1;
- `skimage_photo`: a photo shipped inside scikit-image (`skimage.data.<name>`: astronaut, coffee, chelsea, rocket,
  ...) through `process_pil_im`: the test images where the user gives none;
- `rgb_from_gray`: an MNIST-style input (1 x 28 x 28 in [0, 1], e.g. the stroke-drawn "hand-drawn" digits) as an
  RGB image of the backend's size and range;
- `scaled_rectangle_mask`: a mask rectangle given on a reference size (64 px, the writeup's), scaled to S.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.nn import functional as F

from difflab import DifflabError


def process_pil_im(im: Image.Image, size: int) -> Tensor:
    """(1, 3, size, size) float32 in [-1, 1]: RGB, shorter side -> size (bilinear), centre crop, 2 x - 1."""
    im = im.convert("RGB")
    w, h = im.size
    scale = size / min(w, h)
    w2, h2 = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((w2, h2), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (w2 - size) // 2, (h2 - size) // 2
    im = im.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (2.0 * x - 1.0).unsqueeze(0)


def skimage_photo(name: str, size: int) -> Tensor:
    """skimage.data.<name>() as (1, 3, size, size) in [-1, 1]; an unknown name is a DifflabError naming the key."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise DifflabError(f"config key 'part_a.deepfloyd.photos': {name!r} is not an image of skimage.data")
    array = np.asarray(loader())
    if array.dtype != np.uint8:
        raise DifflabError(f"config key 'part_a.deepfloyd.photos': skimage.data.{name} is {array.dtype}, expected 8-bit")
    return process_pil_im(Image.fromarray(array), size)


def load_photo(path, size: int) -> Tensor:
    """A user's image file as (1, 3, size, size) in [-1, 1] via process_pil_im, after what the MNIST path does
    (difflab.edit.inputs.read_gray): the first frame, EXIF orientation applied, 16-bit and float images scaled by
    their maximum, transparency composited onto white, CMYK/palette converted to RGB. A file that cannot be read is
    a DifflabError naming it (the messages of inputs.read_gray, which checks it first)."""
    from PIL import ImageOps

    from difflab.edit.inputs import read_gray

    read_gray(path, [])  # the same checks (size, decompression bomb, corrupt data) as the MNIST path
    with Image.open(path) as im:
        im.seek(0)
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            array = np.asarray(im, dtype=np.float64)
            im = Image.fromarray(np.uint8(np.clip(255.0 * array / max(float(array.max()), 1.0), 0, 255).round()))
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, rgba)
        return process_pil_im(im, size)


def rgb_from_gray(x: Tensor, size: int, value_range: tuple[float, float]) -> Tensor:
    """(N, 1, h, w) in [0, 1] -> (N, 3, size, size) in value_range: bilinear resize (antialiased), grey repeated."""
    lo, hi = value_range
    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return (lo + (hi - lo) * y).repeat(1, 3, 1, 1)


def scaled_rectangle_mask(rect: list[int], shape: tuple[int, int, int], reference: int = 64) -> Tensor:
    """(1, C, H, W) float mask, 1 inside rows [r0, r1) and columns [c0, c1) of a reference x reference image scaled to
    H x W (rounded), 0 elsewhere; raises DifflabError when the scaled rectangle is empty or covers everything."""
    c, h, w = shape
    r0, r1, c0, c1 = rect
    rows = slice(round(r0 * h / reference), round(r1 * h / reference))
    cols = slice(round(c0 * w / reference), round(c1 * w / reference))
    mask = torch.zeros(1, c, h, w)
    mask[:, :, rows, cols] = 1.0
    if mask.sum() == 0 or mask.min() == 1:
        raise DifflabError(f"config key 'part_a.deepfloyd.photo_masks': rectangle {rect} on {reference} px covers "
                           f"{'nothing' if mask.sum() == 0 else 'everything'} of a {h} x {w} image")
    return mask
