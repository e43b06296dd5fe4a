"""Bad and unusual images: every case gets a clear error or a correct RGB array."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facestream.errors import FileNotFound, ImageTooLarge, InvalidImage
from facestream.imageio import decode_image, load_image_file


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    return Image.fromarray(np.stack([x, x[::-1], np.full_like(x, 128)], axis=2))


GOOD = [
    ("jpeg", lambda: _encode(_gradient(), "JPEG")),
    ("png", lambda: _encode(_gradient(), "PNG")),
    ("webp", lambda: _encode(_gradient(), "WEBP")),
    ("bmp", lambda: _encode(_gradient(), "BMP")),
    ("gif", lambda: _encode(_gradient().convert("P"), "GIF")),
    ("tiff", lambda: _encode(_gradient(), "TIFF")),
    ("grey", lambda: _encode(_gradient().convert("L"), "PNG")),
    ("rgba", lambda: _encode(_gradient().convert("RGBA"), "PNG")),
    ("cmyk", lambda: _encode(_gradient().convert("CMYK"), "JPEG")),
    (
        "16bit",
        lambda: _encode(Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)), "PNG"),
    ),
]


@pytest.mark.parametrize(("name", "make"), GOOD, ids=[g[0] for g in GOOD])
def test_supported_formats_decode_to_rgb(name: str, make: object) -> None:
    img = decode_image(make())  # type: ignore[operator]
    assert img.rgb.shape == (48, 64, 3)
    assert img.rgb.dtype == np.uint8
    assert img.rgb.flags.c_contiguous
    assert len(img.sha256) == 64


def test_sixteen_bit_keeps_its_range() -> None:
    arr = (np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)
    img = decode_image(_encode(Image.fromarray(arr), "PNG"))
    assert img.rgb.max() == 255 and img.rgb.min() == 0


def test_transparent_png_composites_on_white() -> None:
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert decode_image(_encode(rgba, "PNG")).rgb.min() == 255


def test_exif_orientation_is_applied() -> None:
    img = _gradient(64, 48)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _encode(img, "JPEG", exif=exif.tobytes())
    assert decode_image(data).rgb.shape == (64, 48, 3)


def _truncated_jpeg() -> bytes:
    data = _encode(_gradient(256, 256), "JPEG", quality=95)
    return data[: len(data) // 2]


def _bomb_png() -> bytes:
    # 12k x 12k 1-bit image: a few kB on disk, 144 megapixels decoded.
    return _encode(Image.new("1", (12_000, 12_000)), "PNG")


BAD: list[tuple[str, object, type[Exception], str]] = [
    ("empty", lambda: b"", InvalidImage, "empty"),
    ("text", lambda: b"hello, I am not an image\n" * 10, InvalidImage, "not a recognised image"),
    ("truncated-jpeg", _truncated_jpeg, InvalidImage, "truncated"),
    ("corrupt-png", lambda: _encode(_gradient(), "PNG")[:60] + b"\x00" * 200, InvalidImage, "corrupt"),
    ("bomb", _bomb_png, ImageTooLarge, "decompression bomb"),
    (
        "over-pixel-limit",
        lambda: _encode(Image.new("1", (8000, 6500)), "PNG"),
        ImageTooLarge,
        "over the limit",
    ),
    ("tiny", lambda: _encode(Image.new("RGB", (1, 1)), "PNG"), InvalidImage, "too small"),
    ("too-many-bytes", lambda: b"\xff\xd8" + b"\x00" * (5 * 1024 * 1024 + 1), ImageTooLarge, "bytes is over"),
    (
        "svg",
        lambda: b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        InvalidImage,
        "not a recognised image",
    ),
]


@pytest.mark.parametrize(("name", "make", "exc", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_images_are_refused_clearly(name: str, make: object, exc: type[Exception], words: str) -> None:
    with pytest.raises(exc, match=words) as info:
        decode_image(make(), name=f"{name}.jpg")  # type: ignore[operator]
    assert f"{name}.jpg" in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFound):
        load_image_file(tmp_path / "nope.jpg")
    with pytest.raises(InvalidImage, match="not a regular file"):
        load_image_file(tmp_path)
