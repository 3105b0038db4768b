"""Input images for the MNIST backend: 1 x 28 x 28 float tensors in [0, 1], a white digit on black like MNIST.

- `stroke_digit`: the "hand-drawn" inputs of A.1.7.1, digits drawn as pen strokes (polylines with round caps,
  drawn 8x larger and downsampled, so anti-aliased), with an optional seeded wobble of the pen;
- `font_digit`: the "web" input, a digit set in DejaVu Sans, the TrueType font shipped with matplotlib;
- `load_user_image` / `load_user_images`: PNG, JPEG, GIF, BMP, WebP or TIFF files a user drops into data/images/
  (transparent ones included: alpha is the ink when the colour alone shows no digit).

MNIST itself comes from the one loader, `difflab.data.mnist_tensors`. Everything that is not an MNIST image goes through `center_like_mnist`, MNIST's own preprocessing: the digit's
bounding box is scaled to fit a 20 x 20 box (aspect kept, anti-aliased) and placed in the 28 x 28 frame with its
centre of mass at the centre.
"""

from __future__ import annotations

import math
import os
import re
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F

from difflab import DifflabError

SIZE = 28  # MNIST frame
BOX = 20  # MNIST fits each digit's bounding box into 20 x 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel image decodes to >= 40 MB; anything larger is refused unread
MIN_SIDE = 8


# --- MNIST-like centring ------------------------------------------------------------------------------------


def center_like_mnist(image: np.ndarray | Tensor, threshold: float = 0.05) -> Tensor:
    """A white-on-black grayscale image (H, W) in [0, 1] as a 1 x 28 x 28 MNIST-like digit.

    Pixels above `threshold` x the maximum form the bounding box; it is resized (antialiased bilinear) so its
    longer side is 20 px, then placed so that its centre of mass lands on the frame's centre (13.5, 13.5)
    and scaled so the brightest pixel is 1. An image with no ink raises DifflabError.
    """
    img = torch.as_tensor(np.asarray(image, dtype=np.float32)).clamp(0, 1)
    peak = float(img.max())
    if peak <= 0:
        raise DifflabError("the image is blank (no bright pixels on a dark background)")
    rows = torch.nonzero((img > threshold * peak).any(dim=1)).flatten()
    cols = torch.nonzero((img > threshold * peak).any(dim=0)).flatten()
    crop = img[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    h, w = crop.shape
    scale = BOX / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(crop[None, None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    small = small.clamp(min=0)
    ys, xs = torch.arange(new_h, dtype=torch.float32), torch.arange(new_w, dtype=torch.float32)
    mass = small.sum()
    cy, cx = float((small.sum(dim=1) * ys).sum() / mass), float((small.sum(dim=0) * xs).sum() / mass)
    top = min(max(round((SIZE - 1) / 2 - cy), 0), SIZE - new_h)
    left = min(max(round((SIZE - 1) / 2 - cx), 0), SIZE - new_w)
    out = torch.zeros(SIZE, SIZE)
    out[top: top + new_h, left: left + new_w] = small
    return (out / out.max()).clamp(0, 1)[None]


# --- "hand-drawn" digits: pen strokes -----------------------------------------------------------------------


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> list[tuple[float, float]]:
    """Points on an ellipse from angle a0 to a1 (degrees; 0 = right, 90 = down in image coordinates)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(a0, a1, n)]


# Each digit is a list of strokes; a stroke is a polyline in a unit box (x right, y down).
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_arc(0.5, 0.5, 0.3, 0.45, -90, 270, 40)],
    1: [[(0.35, 0.2), (0.56, 0.04), (0.56, 0.96)]],
    2: [_arc(0.5, 0.3, 0.27, 0.25, 185, 400) + [(0.18, 0.95), (0.84, 0.95)]],
    3: [_arc(0.5, 0.27, 0.24, 0.22, 200, 450), _arc(0.5, 0.71, 0.28, 0.24, -90, 160)],
    4: [[(0.66, 0.96), (0.66, 0.04), (0.16, 0.66), (0.86, 0.66)]],
    5: [[(0.78, 0.05), (0.33, 0.05), (0.29, 0.45)] + _arc(0.5, 0.68, 0.27, 0.27, -130, 150)],
    6: [[(0.7, 0.05), (0.45, 0.22), (0.3, 0.5)] + _arc(0.52, 0.7, 0.23, 0.25, 180, 540, 32)],
    7: [[(0.16, 0.05), (0.84, 0.05), (0.42, 0.96)]],
    8: [_arc(0.5, 0.26, 0.21, 0.21, 90, 450, 32), _arc(0.5, 0.71, 0.26, 0.24, -90, 270, 32)],
    9: [_arc(0.48, 0.3, 0.23, 0.25, 0, 360, 32) + [(0.71, 0.3), (0.62, 0.96)]],
}


def stroke_digit(digit: int, pen_width: float = 2.2, wobble: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """A digit drawn as pen strokes, 1 x 28 x 28 in [0, 1], MNIST-like centred.

    pen_width is in 28-px-frame pixels (MNIST strokes are about 2-3 px wide). wobble > 0 moves every stroke
    point by N(0, wobble^2) in unit-box coordinates, drawn from `generator`, so each drawing is a little different.
    """
    if digit not in STROKES:
        raise DifflabError(f"stroke digit {digit!r}: expected an integer 0-9")
    scale, margin = 8, 16  # draw 8x larger than the 20 px box, then let center_like_mnist downsample
    side = BOX * scale
    canvas = Image.new("L", (side + 2 * margin, side + 2 * margin), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(pen_width * scale))
    for stroke in STROKES[digit]:
        pts = torch.tensor(stroke, dtype=torch.float32)
        if wobble > 0:
            pts = pts + wobble * torch.randn(pts.shape, generator=generator)
        xy = [(margin + float(x) * side, margin + float(y) * side) for x, y in pts]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round pen caps
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return center_like_mnist(np.asarray(canvas, dtype=np.float32) / 255.0)


# --- "web" digits: a TrueType font --------------------------------------------------------------------------


def font_path(family: str = "DejaVu Sans") -> str:
    """The TrueType file of `family` as matplotlib finds it (DejaVu Sans ships inside matplotlib)."""
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=True)


def font_digit(digit: int, family: str = "DejaVu Sans") -> Tensor:
    """A digit set in a TrueType font (white on black), 1 x 28 x 28 in [0, 1], MNIST-like centred."""
    if not (isinstance(digit, int) and 0 <= digit <= 9):
        raise DifflabError(f"font digit {digit!r}: expected an integer 0-9")
    font = ImageFont.truetype(font_path(family), size=160)
    canvas = Image.new("L", (240, 240), 0)
    ImageDraw.Draw(canvas).text((120, 120), str(digit), fill=255, font=font, anchor="mm")
    return center_like_mnist(np.asarray(canvas, dtype=np.float32) / 255.0)


# --- user images --------------------------------------------------------------------------------------------

WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # one band, more than 8 bits: read as numbers
MIN_CONTRAST = 0.05  # a spread below this (on [0, 1]) is "no contrast", as load_user_image's "no digit" test
ORIENTATION_TAG = 0x0112  # EXIF/TIFF tag 274; its value -> the transpose that shows the pixels upright (EXIF 2.32)
ORIENTATION_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                         5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
                         8: Image.Transpose.ROTATE_90}


def describe_error(exc: BaseException) -> str:
    """An exception as one short line: 'struct.error: argument out of range' (its first line, at most 160 chars)."""
    kind = type(exc).__qualname__ if type(exc).__module__ == "builtins" else f"{type(exc).__module__}.{type(exc).__qualname__}"
    text = " ".join(str(exc).split("\n", 1)[0].split())
    return f"{kind}: {text[:160]}" if text else kind


def _spread(values: np.ndarray) -> float:
    """Robust contrast of values in [0, 1]: the 99.9th minus the 0.1st percentile of a non-empty array, so a few
    stray pixels do not count but a digit covering 0.1% of the area does."""
    low, high = np.percentile(values, [0.1, 99.9])
    return float(high - low)


def _upright(im: Image.Image, notes: list[str]) -> Image.Image:
    """The image turned upright by its EXIF Orientation tag (1-8; other values are ignored with a note).

    Pillow's ImageOps.exif_transpose is not used: after transposing it re-serialises the whole EXIF block, which
    raises struct.error on a malformed but irrelevant entry (e.g. an XResolution rational with denominator 0)."""
    orientation = im.getexif().get(ORIENTATION_TAG, 1)
    if orientation in ORIENTATION_TRANSPOSE:
        return im.transpose(ORIENTATION_TRANSPOSE[orientation])
    if orientation != 1:
        notes.append(f"EXIF orientation {orientation!r} is not 1-8: ignored")
    return im


def _luminance_and_alpha(im: Image.Image, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(luminance, alpha) of a PIL image as float (H, W) arrays in [0, 1]; alpha is None without transparency.

    Transparency is an alpha band (RGBA, LA, PA, RGBa, La) or a transparent colour or palette entry in
    `im.info["transparency"]` (P, L, RGB, 1 from PNG tRNS or a GIF transparent index; I;16 from 16-bit PNG tRNS).
    Luminance is Pillow's ITU-R 601-2 luma L = 0.299 R + 0.587 G + 0.114 B of the un-premultiplied colour;
    16-bit or 32-bit grayscale is scaled by 65535 (or 255 when it fits in 8 bits), float images by their maximum.
    """
    transparency = im.info.get("transparency")
    if im.mode in WIDE_MODES:
        raw = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or raw.max() > 255 else 255.0
        if im.mode == "F":
            top = max(float(raw.max()), 1e-12)
        notes.append(f"{im.mode} ({'16-bit' if top == 65535.0 else 'wide'} grayscale): scaled to [0, 1]")
        alpha = (raw != transparency).astype(np.float32) if isinstance(transparency, (int, float)) else None
        return np.clip(raw / top, 0, 1).astype(np.float32), alpha
    if im.mode == "La":  # premultiplied: Pillow converts it to RGBA only through LA
        im = im.convert("LA")
    if "A" in im.getbands() or "a" in im.getbands() or transparency is not None:
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        return np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32) / 255.0, alpha
    if im.mode not in ("L", "RGB", "1", "P"):
        notes.append(f"{im.mode}: converted to RGB")
    if im.mode not in ("L", "RGB", "1"):
        im = im.convert("RGB")
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0, None


def flatten_alpha(luminance: np.ndarray, alpha: np.ndarray, mode: str, notes: list[str]) -> np.ndarray:
    """One grayscale (H, W) image in [0, 1] from luminance and alpha (both (H, W) in [0, 1]), with a note.

    If the colour has (almost) no contrast inside the opaque area (alpha >= half its maximum; spread of luminance
    < MIN_CONTRAST) but alpha has, the drawing is in the alpha channel alone (e.g. a white digit on a transparent
    background): alpha is returned as the ink. Otherwise the image is composited onto white paper with the "over"
    operator (Porter & Duff 1984): gray = alpha * luminance + (1 - alpha) * 1.
    """
    colour = _spread(luminance[alpha >= 0.5 * float(alpha.max())])
    coverage = _spread(alpha)
    if colour < MIN_CONTRAST <= coverage:
        notes.append(f"{mode} with transparency: the colour is uniform where opaque (contrast {colour:.2f}), "
                     f"so alpha (contrast {coverage:.2f}) is the ink")
        return alpha
    notes.append(f"{mode} with transparency: composited onto white")
    return alpha * luminance + (1.0 - alpha)


def _to_gray(im: Image.Image, notes: list[str]) -> np.ndarray:
    """Any PIL image as a float (H, W) gray array in [0, 1] (see _luminance_and_alpha and flatten_alpha); each
    non-trivial conversion adds a note. A fully opaque alpha channel is ignored."""
    luminance, alpha = _luminance_and_alpha(im, notes)
    if alpha is None or float(alpha.min()) >= 1.0:
        return luminance
    return flatten_alpha(luminance, alpha, im.mode, notes)


def read_gray(path: str | os.PathLike, notes: list[str], min_side: int = MIN_SIDE) -> np.ndarray:
    """An image file as a float (H, W) gray array in [0, 1] (first frame, EXIF orientation applied, see _to_gray).

    Raises a one-line DifflabError naming the file for every problem: missing, not a regular file, empty, too
    large (bytes or pixels), not an image, truncated, smaller than min_side, and any other exception Pillow or
    its decoders raise on malformed data (struct.error, TypeError, ZeroDivisionError, ...), named with its type.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise DifflabError(f"{path}: cannot read ({exc.strerror or describe_error(exc)})") from None
    if not stat.S_ISREG(info.st_mode):
        raise DifflabError(f"{path}: not a regular file; expected an image file")
    if info.st_size == 0:
        raise DifflabError(f"{path}: empty file (0 bytes); expected a PNG or JPEG image")
    if info.st_size > MAX_FILE_BYTES:
        raise DifflabError(f"{path}: {info.st_size / 1e6:.0f} MB is too large; expected an image under {MAX_FILE_BYTES // 2**20} MiB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise DifflabError(f"{path}: {w} x {h} pixels is too large; expected at most {MAX_PIXELS // 10**6} megapixels")
                if min(w, h) < min_side:
                    raise DifflabError(f"{path}: {w} x {h} pixels is too small; expected at least {min_side} x {min_side}")
                if getattr(im, "n_frames", 1) > 1:  # animated GIF/PNG/WebP, multi-page TIFF
                    notes.append(f"animated ({im.n_frames} frames): used the first frame")
                    im.seek(0)
                im.load()
                return _to_gray(_upright(im, notes), notes)
    except DifflabError:
        raise
    except UnidentifiedImageError:
        raise DifflabError(f"{path}: not an image PIL can read; expected a PNG or JPEG") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DifflabError(f"{path}: too large (Pillow's decompression-bomb guard); expected at most {MAX_PIXELS // 10**6} megapixels") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DifflabError(f"{path}: truncated or corrupt image ({describe_error(exc)})") from None
    except Exception as exc:  # a decoder meeting malformed data: struct.error, TypeError, ZeroDivisionError, ...
        raise DifflabError(f"{path}: malformed image ({describe_error(exc)})") from None


def load_user_image(path: str | os.PathLike) -> tuple[Tensor, list[str]]:
    """A user's picture of a digit as a 1 x 28 x 28 MNIST-like image in [0, 1], and notes on what was done to it.

    Steps: read_gray's checks and conversions (first frame, EXIF orientation, 16-bit scaled, transparency: alpha
    as the ink when the colour is uniform where opaque, else composited onto white; to luminance). If the border is
    light (median of the outermost pixels > 0.5) the image is inverted to a white digit on black. The background
    level (that median) is subtracted and the contrast stretched to [0, 1], then `center_like_mnist`.
    Every problem is a one-line DifflabError naming the file.
    """
    path = Path(path)
    notes: list[str] = []
    gray = read_gray(path, notes)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    background = float(np.median(border))
    if background > 0.5:
        notes.append(f"light background (border median {background:.2f}): inverted to white-on-black like MNIST")
        gray, background = 1.0 - gray, 1.0 - background
    ink = np.clip(gray - background, 0, None)
    if ink.max() < MIN_CONTRAST:
        raise DifflabError(f"{path}: no digit found (the image is almost uniform); expected a dark digit on light paper or the reverse")
    return center_like_mnist(ink / ink.max()), notes


def digit_in_name(path: str | os.PathLike) -> int | None:
    """The digit a file name starts with ('3.png', '7_mine.jpg' -> 3, 7), else None."""
    match = re.match(r"(\d)(?!\d)", Path(path).name)
    return int(match.group(1)) if match else None


def skip_reason(path: str | os.PathLike, exc: Exception) -> str:
    """Why one user file was skipped, as one line without the path: a DifflabError's text after 'path: ',
    any other exception as 'unexpected error (type: message)'."""
    if isinstance(exc, DifflabError):
        text = " ".join(str(exc).split())
        return text.removeprefix(f"{Path(path)}: ") or "unreadable"
    return f"unexpected error ({describe_error(exc)})"


def load_user_images(folder: str | os.PathLike) -> tuple[list[tuple[str, Tensor, list[str]]], list[tuple[str, str]]]:
    """Every image file in `folder` (sorted by name): ([(path, image, notes)], [(path, reason skipped)]).

    A missing folder holds no images; one that cannot be listed is a DifflabError. Every non-folder entry with an
    image suffix (IMAGE_SUFFIXES, any case) goes through `load_user_image`; one that raises any Exception is skipped
    with its one-line `skip_reason` (the caller logs it), never stopping the others. Other suffixes are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    try:
        entries = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
    except OSError as exc:
        raise DifflabError(f"{folder}: cannot list the images folder ({exc.strerror or describe_error(exc)})") from None
    loaded, skipped = [], []
    for path in entries:
        try:
            image, notes = load_user_image(path)
        except Exception as exc:  # one bad file is a reason in the report, never a crash of the whole job
            skipped.append((str(path), skip_reason(path, exc)))
            continue
        loaded.append((str(path), image, notes))
    return loaded, skipped


# --- inpainting masks ---------------------------------------------------------------------------------------


def check_mask(mask: Tensor, name: str) -> Tensor:
    """A mask (1 = where new content appears, 0 = keep the original) must select some pixels but not all."""
    covered, total = int(mask.sum()), mask.numel()
    if covered == 0:
        raise DifflabError(f"{name}: the mask selects no pixels, so inpainting would change nothing; "
                           "expected white (1) where new content should appear")
    if covered == total:
        raise DifflabError(f"{name}: the mask selects every pixel, so nothing of the original is kept (that is plain "
                           "sampling); expected black (0) where the image is kept")
    return mask


def load_mask(path: str | os.PathLike, height: int, width: int) -> Tensor:
    """A black-and-white mask image as a 1 x height x width tensor: white (255) = inpaint, black (0) = keep.

    It must be exactly the backend's image size and contain only black and white (save masks as PNG:
    JPEG's compression adds grey levels), and select some but not all pixels.
    """
    path = Path(path)
    gray = read_gray(path, [], min_side=1)
    if gray.shape != (height, width):
        raise DifflabError(f"{path}: the mask is {gray.shape[1]} x {gray.shape[0]} pixels; expected {width} x {height} "
                           "(the backend's image size)")
    levels = np.unique(gray)
    grey = levels[(levels > 0) & (levels < 1)]
    if grey.size:
        raise DifflabError(f"{path}: the mask has {grey.size} grey level(s) besides black and white (e.g. {grey[0] * 255:.0f}); "
                           "expected only 0 (keep) and 255 (inpaint), saved as PNG")
    return check_mask(torch.from_numpy(gray.copy()).unsqueeze(0), str(path))
