"""User images (data/images/): transparent drawings in every form Pillow hands over, and folders of mixed files.

Every file here is built in the test with Pillow, tifffile or raw bytes. The reference is the same "7" drawn dark
on white paper, read by load_user_image; each variant must come out (nearly) the same 28 x 28 MNIST-like image.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from difflab import DifflabError
from difflab.edit import inputs

SIZE = (90, 120)
CLOSE = 0.03  # mean absolute difference to the reference image, on [0, 1]


def stroke_mask(size=SIZE) -> Image.Image:
    """A "7" as an 8-bit mask: 255 on the stroke, 0 elsewhere (anti-aliasing comes from the resize in the loader)."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).line([(20, 20), (70, 20), (35, 100)], fill=255, width=9)
    return mask


@pytest.fixture
def reference(tmp_path):
    path = tmp_path / "reference.png"
    ImageOps.invert(stroke_mask()).save(path)  # dark digit on white paper, no transparency
    image, _ = inputs.load_user_image(path)
    return image


def rgba(colour: int, clear: int = 0, ink_alpha: int = 255) -> Image.Image:
    """Colour `colour` where the stroke is (alpha ink_alpha), colour `clear` with alpha 0 elsewhere."""
    mask = stroke_mask()
    gray = Image.new("L", SIZE, clear)
    gray.paste(colour, mask=mask)
    return Image.merge("RGBA", [gray, gray, gray, mask.point(lambda v: ink_alpha if v else 0)])


def palette_white() -> Image.Image:
    """A P image whose two palette entries are both white: index 0 off the stroke, 1 on it."""
    im = Image.new("P", SIZE, 0)
    im.putpalette([255, 255, 255, 255, 255, 255])
    im.paste(1, mask=stroke_mask())
    return im


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_16bit_gray_alpha(gray: np.ndarray, alpha: np.ndarray) -> bytes:
    """A PNG of colour type 4 (gray + alpha) at 16 bits per sample, which Pillow cannot write itself."""
    h, w = gray.shape
    samples = np.stack([gray, alpha], axis=-1).astype(">u2").reshape(h, 2 * w)
    raw = b"".join(b"\0" + row.tobytes() for row in samples)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")


def tiff_16bit_rgba() -> bytes:
    import tifffile

    alpha = np.asarray(stroke_mask(), dtype=np.uint16) * 257
    white = np.full_like(alpha, 65535)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack([white, white, white, alpha], axis=-1), photometric="rgb", extrasamples=[2])
    return buf.getvalue()


def save(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def white_on_clear_files() -> dict[str, bytes]:
    """A white "7" on a transparent background in each transparent form Pillow opens."""
    mask = stroke_mask()
    white_la = Image.merge("LA", [Image.new("L", SIZE, 255), mask])
    alpha16 = np.asarray(mask, dtype=np.uint16) * 257
    return {
        "rgba_clear_black.png": save(rgba(255, clear=0), "PNG"),
        "rgba_clear_white.png": save(rgba(255, clear=255), "PNG"),
        "rgba_half_opaque_ink.png": save(rgba(255, ink_alpha=128), "PNG"),
        "la.png": save(white_la, "PNG"),
        "p_alpha_table.png": save(palette_white(), "PNG", transparency=b"\x00\xff"),
        "p_index.png": save(palette_white(), "PNG", transparency=0),
        "p_index.gif": save(palette_white(), "GIF", transparency=0),
        "l_trns.png": save(mask, "PNG", transparency=0),
        "rgb_trns.png": save(mask.convert("RGB"), "PNG", transparency=(0, 0, 0)),
        "bilevel_trns.png": save(mask.convert("1"), "PNG", transparency=0),
        "i16_trns.png": save(Image.fromarray(alpha16), "PNG", transparency=0),
        "la16.png": png_16bit_gray_alpha(np.full_like(alpha16, 65535), alpha16),
        "lossless.webp": save(rgba(255), "WEBP", lossless=True),
        "lossy.webp": save(rgba(255), "WEBP", quality=80),
        "rgba.tif": save(rgba(255), "TIFF"),
        "la.tif": save(white_la, "TIFF"),
        "rgba16.tif": tiff_16bit_rgba(),
    }


@pytest.mark.parametrize("name", list(white_on_clear_files()))
def test_a_white_digit_on_a_transparent_background_uses_alpha_as_the_ink(tmp_path, reference, name):
    path = tmp_path / name
    path.write_bytes(white_on_clear_files()[name])
    image, notes = inputs.load_user_image(path)
    assert float((image - reference).abs().mean()) < CLOSE, notes
    assert any("alpha" in note and "ink" in note for note in notes), notes  # the colour alone shows no digit


@pytest.mark.parametrize("name,build,note", [
    ("black_on_clear.png", lambda: rgba(0, clear=0), "ink"),  # colour uniform where opaque: alpha again
    ("opaque_dark_on_light.png", lambda: ImageOps.invert(stroke_mask()).convert("RGBA"), None),
    ("opaque_light_on_dark.png", lambda: stroke_mask().convert("RGBA"), None),
    ("paper_with_clear_margin.png", "paper", "composited onto white"),
    ("cut_out_of_black_sheet.png", "cut_out", "ink"),
])
def test_ordinary_transparent_images_keep_working(tmp_path, reference, name, build, note):
    if build == "paper":  # a scan of white paper with a dark digit; its corners (not its border median) are clear
        im = ImageOps.invert(stroke_mask()).convert("RGBA")
        im.putalpha(Image.new("L", SIZE, 255))
        ImageDraw.Draw(im).rectangle((0, 0, 14, 14), fill=(0, 0, 0, 0))
        ImageDraw.Draw(im).rectangle((SIZE[0] - 15, SIZE[1] - 15, SIZE[0], SIZE[1]), fill=(0, 0, 0, 0))
    elif build == "cut_out":  # an opaque black sheet with the digit cut out as a hole
        im = Image.merge("RGBA", [Image.new("L", SIZE, 0)] * 3 + [ImageOps.invert(stroke_mask())])
    else:
        im = build()
    path = tmp_path / name
    im.save(path)
    image, notes = inputs.load_user_image(path)
    assert float((image - reference).abs().mean()) < CLOSE, notes
    if note is None:
        assert not any("transparency" in n for n in notes), notes
    else:
        assert any(note in n for n in notes), notes


def phone_jpeg_with_malformed_exif() -> bytes:
    """A JPEG stored sideways with EXIF Orientation 6 and an XResolution that is a signed rational -72/0.

    Pillow reads the tags, but re-serialising them (as ImageOps.exif_transpose does) raises struct.error."""
    entries = [(0x0112, 3, 1, struct.pack("<HH", 6, 0)),  # Orientation, SHORT: 6 = rotate 90 degrees clockwise
               (0x011A, 10, 1, struct.pack("<I", 8 + 2 + 2 * 12 + 4))]  # XResolution, SRATIONAL at the offset below
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", *e[:3]) + e[3] for e in entries)
    tiff = b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + struct.pack("<ii", -72, 0)
    stored = ImageOps.invert(stroke_mask()).transpose(Image.Transpose.ROTATE_90)  # as the camera stored it
    return save(stored, "JPEG", exif=b"Exif\0\0" + tiff, quality=95)


def test_a_malformed_exif_rational_does_not_stop_the_orientation(tmp_path, reference):
    path = tmp_path / "phone.jpg"
    path.write_bytes(phone_jpeg_with_malformed_exif())
    with Image.open(path) as im:  # the file really is malformed: Pillow's exif_transpose raises on it
        assert im.getexif()[0x0112] == 6
        with pytest.raises(struct.error):
            ImageOps.exif_transpose(im)
    image, notes = inputs.load_user_image(path)
    assert float((image - reference).abs().mean()) < CLOSE, notes


def tiff_with_a_broken_second_page() -> bytes:
    """A valid one-page TIFF whose next-IFD pointer leads to a page with no dimensions (Pillow: TypeError)."""
    data = bytearray(save(ImageOps.invert(stroke_mask()), "TIFF"))
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    struct.pack_into("<I", data, first + 2 + 12 * count, len(data))  # next IFD: appended below
    data += struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0103, 3, 1, 1, 0) + struct.pack("<I", 0)
    return bytes(data)


def test_a_folder_of_good_and_broken_files_uses_the_good_ones_and_lists_the_rest(tmp_path, monkeypatch):
    good = {
        "1_dark_on_light.png": save(ImageOps.invert(stroke_mask()), "PNG"),
        "2_white_on_clear.png": save(rgba(255), "PNG"),
        "3_phone.jpg": phone_jpeg_with_malformed_exif(),
        "4_white_on_clear.webp": save(rgba(255), "WEBP", lossless=True),
    }
    png = save(ImageOps.invert(stroke_mask()), "PNG")
    broken = {
        "a_notes.png": (b"my notes, not a picture\n", "not an image"),
        "b_empty.png": (b"", "empty file"),
        "c_cut.png": (png[: len(png) // 2], "truncated or corrupt"),
        "d_pages.tif": (tiff_with_a_broken_second_page(), "malformed image (TypeError"),
        "e_blank.png": (save(Image.new("RGBA", SIZE, (255, 255, 255, 255)), "PNG"), "no digit"),
        "f_clear.png": (save(Image.new("RGBA", SIZE, (0, 0, 0, 0)), "PNG"), "no digit"),
    }
    raised = {  # what Pillow or its decoders have raised on malformed files, injected when the file is opened
        "g_struct.png": (struct.error("unpack requires a buffer of 8 bytes"), "struct.error: unpack requires"),
        "h_zero.png": (ZeroDivisionError("division by zero"), "ZeroDivisionError"),
        "i_bomb.png": (Image.DecompressionBombError("too many pixels"), "decompression-bomb"),
        "j_syntax.png": (SyntaxError("broken PNG file"), "truncated or corrupt"),
        "k_value.png": (ValueError("line one\nline two"), "line one"),
        "l_memory.png": (MemoryError(), "malformed image (MemoryError)"),
        "m_key.png": (KeyError("tag"), "KeyError"),
        "n_os.png": (OSError("decoder error -2"), "decoder error -2"),
    }
    for name, content in good.items():
        (tmp_path / name).write_bytes(content)
    for name, (content, _) in broken.items():
        (tmp_path / name).write_bytes(content)
    for name in raised:
        (tmp_path / name).write_bytes(png)
    (tmp_path / "o_dangling.png").symlink_to(tmp_path / "missing.png")
    (tmp_path / "p_later.png").write_bytes(png)  # fails after reading, in the MNIST-like centring
    (tmp_path / "README.md").write_text("drop images here")
    (tmp_path / "folder.png").mkdir()

    real_open, real_load = Image.open, inputs.load_user_image

    def failing_open(fp, *args, **kwargs):
        name = getattr(fp, "name", str(fp)).rsplit("/", 1)[-1]
        if name in raised:
            raise raised[name][0]
        return real_open(fp, *args, **kwargs)

    def failing_load(path):
        if str(path).endswith("p_later.png"):
            raise RuntimeError("centring failed\nat step 2")
        return real_load(path)

    monkeypatch.setattr(Image, "open", failing_open)
    monkeypatch.setattr(inputs, "load_user_image", failing_load)
    loaded, skipped = inputs.load_user_images(tmp_path)

    assert [p.rsplit("/", 1)[-1] for p, _, _ in loaded] == list(good)
    assert all(image.shape == (1, 28, 28) for _, image, _ in loaded)
    expected = {name: fragment for name, (_, fragment) in {**broken, **raised}.items()}
    expected["o_dangling.png"] = "cannot read"
    expected["p_later.png"] = "unexpected error (RuntimeError: centring failed)"
    reasons = {p.rsplit("/", 1)[-1]: reason for p, reason in skipped}
    assert sorted(reasons) == sorted(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])
        assert "\n" not in reasons[name] and not reasons[name].startswith(str(tmp_path)), reasons[name]


def test_one_line_reasons_name_the_exception_type():
    assert inputs.describe_error(struct.error("argument out of range")) == "struct.error: argument out of range"
    assert inputs.describe_error(ZeroDivisionError()) == "ZeroDivisionError"
    assert inputs.describe_error(ValueError("a\nb")) == "ValueError: a"
    with pytest.raises(DifflabError, match="not a regular file"):
        inputs.read_gray(".", [])


@pytest.mark.parametrize("mode", ["RGBa", "La", "PA"])
def test_premultiplied_and_palette_alpha_modes_use_alpha_as_the_ink(mode):
    """Modes no file format above hands over but Pillow can: premultiplied RGBa / La and palette + alpha PA."""
    im = rgba(255).convert("LA").convert("La") if mode == "La" else rgba(255).convert(mode)
    notes: list[str] = []
    gray = inputs._to_gray(im, notes)
    assert np.abs(gray - np.asarray(stroke_mask(), dtype=np.float32) / 255).max() < 1e-6
    assert any("alpha" in note and "ink" in note for note in notes), notes
