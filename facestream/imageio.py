"""Safe image decoding: byte and pixel limits before decoding, EXIF orientation, any mode to RGB.

Everything an outside caller hands us (a CLI path, an API body) goes through
:func:`decode_image`; nothing else in facestream opens images from untrusted bytes.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facestream.errors import FileNotFound, ImageTooLarge, InvalidImage

log = logging.getLogger(__name__)

#: Rekognition's limit for raw image bytes in a request.
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
#: Rekognition's limit for an image read from a path / object store.
DEFAULT_MAX_FILE_BYTES = 15 * 1024 * 1024
#: 40 megapixels: larger than any camera frame we analyse, far below a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000
#: Rekognition refuses images smaller than 80 px on a side; we accept down to this.
MIN_SIDE_PX = 16

_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image: ``rgb`` (H, W, 3) uint8, C-contiguous; ``sha256`` of the source bytes."""

    rgb: np.ndarray
    sha256: str
    source_format: str

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def decode_image(
    data: bytes,
    *,
    name: str = "<bytes>",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Decode untrusted bytes into RGB, refusing what is too big, broken or not an image.

    The pixel limit is checked from the header, before the pixel data is decoded, so a
    decompression bomb costs nothing. Truncated files are refused rather than padded grey.
    """
    if len(data) == 0:
        raise InvalidImage(f"{name}: empty (0 bytes); expected a JPEG, PNG, WebP, BMP, GIF or TIFF image")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_FORMATS)
            width, height = img.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"{name}: {width}x{height} = {width * height} pixels is over the limit of "
                    f"{max_pixels} pixels"
                )
            if min(width, height) < MIN_SIDE_PX:
                raise InvalidImage(
                    f"{name}: {width}x{height} is too small; each side must be >= {MIN_SIDE_PX} px"
                )
            fmt = str(img.format)
            img.load()
            rgb = _to_rgb(ImageOps.exif_transpose(img), name)
    except (ImageTooLarge, InvalidImage):
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLarge(f"{name}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise InvalidImage(f"{name}: not a recognised image; expected one of {', '.join(_FORMATS)}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # PIL reports truncated/corrupt data as OSError ("image file is truncated", ...).
        raise InvalidImage(f"{name}: corrupt or truncated image data ({exc})") from None
    return LoadedImage(rgb=rgb, sha256=hashlib.sha256(data).hexdigest(), source_format=fmt)


def _to_rgb(img: Image.Image, name: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit greyscale: scale the actual range to 8 bits instead of clipping at 255.
        arr = np.asarray(img, dtype=np.float64)
        hi = float(arr.max()) or 1.0
        grey = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode == "F":
        raise InvalidImage(f"{name}: floating-point images are not supported")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite on white: transparent regions should not read as black faces.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def load_image_file(
    path: str | Path,
    *,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Read and decode an image file; a missing path or a directory is a clear error."""
    p = Path(path)
    if not p.exists():
        raise FileNotFound(f"{path}: no such file")
    if not p.is_file():
        raise InvalidImage(f"{path}: not a regular file")
    size = p.stat().st_size
    if size > max_bytes:
        raise ImageTooLarge(f"{path}: {size} bytes is over the limit of {max_bytes} bytes")
    return decode_image(p.read_bytes(), name=str(path), max_bytes=max_bytes, max_pixels=max_pixels)
