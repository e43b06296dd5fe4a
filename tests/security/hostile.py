"""Hostile inputs, made at test time from the shared test data (never committed)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims 10 gigapixels over a tiny compressed payload."""
    raw = zlib.compress(b"\0" * 1024, 9)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", raw) + _png_chunk(b"IEND", b"")
    )


def bomb_png_real(side: int = 8000) -> bytes:
    """A real, fully valid 1-bit PNG of side x side pixels (64 MP) in a few kilobytes."""
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def encoded(src: Path, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.open(src).convert("RGB").save(buf, format=fmt)
    return buf.getvalue()


def corrupt_middle(data: bytes, seed: int = 7) -> bytes:
    """Overwrite a run in the middle of the entropy-coded data with garbage."""
    out = bytearray(data)
    n = len(out)
    for i in range(n // 3, n // 3 + 4096):
        out[i] = (i * 131 + seed) % 256
    return bytes(out)


def cases(jpeg: Path, png: Path) -> dict[str, bytes]:
    """name -> bytes of every hostile image."""
    j = jpeg.read_bytes()
    p = png.read_bytes()
    w = encoded(jpeg, "WEBP")
    return {
        "truncated-jpeg": j[: len(j) // 2],
        "corrupt-jpeg": corrupt_middle(j)[: len(j) - 200],
        "header-only-jpeg": j[:600],
        "truncated-png": p[: len(p) // 2],
        "corrupt-png": corrupt_middle(p),
        "truncated-webp": w[: len(w) // 2],
        "corrupt-webp": corrupt_middle(w),
        "bomb-png-header": bomb_png_header(),
        "bomb-png-real": bomb_png_real(),
        # Text/markup in front of a real image: neither a valid image nor safe to sniff as one.
        "polyglot-html-jpeg": b"<html><script>alert(1)</script></html>\n" + j,
        "text-named-jpg": b"This is a text file, named like a photo.\n" * 20,
        "zero-pixels-gif": b"GIF89a\x00\x00\x00\x00\x00\x00\x00;",
    }
