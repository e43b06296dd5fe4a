"""Property-based fuzzing (Hypothesis, bounded) of image loading and of the API request models.

Whatever bytes or JSON arrive, the only outcomes allowed are a result or one of our clear
errors: ``InvalidImage`` / ``ImageTooLarge`` for images, ``ValidationError`` (mapped to 400
``InvalidParameterException`` with a one-line message) for request bodies. Any other
exception type is a bug. Runs in a few seconds: fixed seeds, capped examples, a deadline.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from facestream.errors import ImageTooLarge, InvalidImage
from facestream.imageio import LoadedImage, decode_image
from serve.service import OPERATIONS, validation_message
from serve.streams import stream_operations

FUZZ = settings(
    max_examples=250,
    deadline=2000,  # ms per example: a decode that hangs is a failure too
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_PIXELS = 4_000_000


def _seed_images() -> list[bytes]:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    out = []
    for fmt, kw in (
        ("JPEG", {"quality": 80}),
        ("PNG", {}),
        ("WEBP", {}),
        ("GIF", {}),
        ("BMP", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
    ):
        buf = io.BytesIO()
        (img.convert("P") if fmt == "GIF" else img).save(buf, format=fmt, **kw)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


def _decode(data: bytes) -> None:
    try:
        got = decode_image(data, max_bytes=1 << 20, max_pixels=MAX_PIXELS)
    except (InvalidImage, ImageTooLarge) as exc:
        assert exc.message and exc.http_status == 400
        return
    assert isinstance(got, LoadedImage)
    assert got.rgb.dtype == np.uint8 and got.rgb.ndim == 3 and got.rgb.shape[2] == 3
    assert got.width * got.height <= MAX_PIXELS


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_never_escape_as_other_errors(data: bytes) -> None:
    _decode(data)


@FUZZ
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=24),
    cut=st.floats(0.05, 1.0),
    tail=st.binary(max_size=64),
)
def test_mutated_real_images_never_escape_as_other_errors(
    seed: int, edits: list[tuple[float, int]], cut: float, tail: bytes
) -> None:
    """Byte flips, truncation and appended junk on valid images of every supported format."""
    data = bytearray(SEEDS[seed])
    for pos, val in edits:
        data[int(pos * (len(data) - 1))] = val
    _decode(bytes(data[: max(1, int(len(data) * cut))]) + tail)


@FUZZ
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1))
def test_forged_png_dimensions(width: int, height: int) -> None:
    """Any header-claimed size: refused from the header when too big, never decoded first."""
    from tests.security.hostile import bomb_png_header

    _decode(bomb_png_header(width, height))


def test_appended_payload_is_inert() -> None:
    """A JPEG with a ZIP appended (a JPEG/ZIP polyglot) decodes to the same pixels: the
    payload is ignored, and nothing but the embedding and the sha256 is ever kept."""
    clean = SEEDS[0]
    poly = clean + b"PK\x03\x04" + b"\0" * 26 + b"evil.sh" + b"rm -rf /\n"
    a, b = decode_image(clean), decode_image(poly)
    assert np.array_equal(a.rgb, b.rgb)
    assert a.sha256 != b.sha256  # the audit log tells them apart


# ── API request models ──────────────────────────────────────────────────────────────────

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def _operations() -> list[Any]:
    ops = [*OPERATIONS, *stream_operations()]
    try:  # human review of matches and the operator console, when installed
        from serve.console import console_operations
        from serve.review import review_operations
    except ImportError:
        return ops
    return ops + review_operations() + console_operations()


MODELS = {op.name: op.model for op in _operations()}


def _field_dicts(model: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the model's own field names (so validation goes deep), arbitrary values."""
    names = sorted(model.model_fields)
    if not names:
        return st.dictionaries(st.text(max_size=12), JSON, max_size=3)
    return st.dictionaries(st.sampled_from(names), JSON, max_size=len(names))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_request_models_reject_cleanly(name: str) -> None:
    model = MODELS[name]

    @settings(
        max_examples=60,
        deadline=1000,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=_field_dicts(model) | JSON)
    def check(body: Any) -> None:
        try:
            req = model.model_validate(body)
        except ValidationError as exc:
            msg = validation_message(exc)
            assert msg and len(msg) < 4000  # one line per field, never the whole input echoed
            return
        # Accepted: it must dump back to JSON (what the handler and audit log get).
        json.dumps(req.model_dump(mode="json"))

    check()
