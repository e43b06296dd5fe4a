"""bench.robustness: every degraded variant is a valid image our decoder and the peer's read,
and the pair-scoring conventions it reports (no data, no models)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bench.robustness import VARIANTS, base_image, make_variant, square_crop_box
from facestream.evaluation import kfold_accuracy, tar_at_far
from facestream.imageio import decode_image


def _base() -> Image.Image:
    """A 300x200 image with a bright off-centre block: orientation mistakes are visible."""
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[..., 2] = 60
    rgb[40:100, 180:260] = (230, 200, 180)
    return base_image(rgb)


BOX = (180.0, 40.0, 260.0, 100.0)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_is_a_valid_jpeg(name: str) -> None:
    data = make_variant(name, _base(), BOX)
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    rgb = decode_image(data, name=name).rgb
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8
    assert rgb.shape[0] >= 16 and rgb.shape[1] >= 16


@pytest.mark.parametrize(
    ("name", "mode", "size"),
    [
        ("tight", "RGB", (80, 80)),
        ("tight150", "RGB", (150, 150)),
        ("tight80", "RGB", (80, 80)),
        ("tight_grey150", "L", (150, 150)),
        ("grey", "L", (300, 200)),
        ("cmyk", "CMYK", (300, 200)),
        ("exif_rot", "RGB", (200, 300)),  # stored turned; EXIF says how to turn it back
        ("original", "RGB", (300, 200)),
    ],
)
def test_variant_mode_and_size(name: str, mode: str, size: tuple[int, int]) -> None:
    img = Image.open(io.BytesIO(make_variant(name, _base(), BOX)))
    assert (img.mode, img.size) == (mode, size)


@pytest.mark.parametrize("name", ["exif_rot", "cmyk", "original"])
def test_decoded_like_the_base(name: str) -> None:
    """Our decoder undoes the EXIF rotation and converts CMYK: the pixels match the base."""
    base = np.asarray(_base(), np.float64)
    got = decode_image(make_variant(name, _base(), BOX), name=name).rgb.astype(np.float64)
    assert got.shape == base.shape
    assert np.abs(got - base).mean() < 6.0


def test_rotation_expands_the_canvas() -> None:
    for name in ("rot+15", "rot-15"):
        w, h = Image.open(io.BytesIO(make_variant(name, _base(), BOX))).size
        assert w > 300 and h > 200


def test_base_is_downscaled_to_the_cap() -> None:
    big = base_image(np.zeros((3000, 1500, 3), np.uint8), 1024)
    assert big.size == (512, 1024)
    small = base_image(np.zeros((100, 50, 3), np.uint8), 1024)
    assert small.size == (50, 100)


@pytest.mark.parametrize(
    ("box", "want"),
    [
        ((180.0, 40.0, 260.0, 100.0), (180, 30, 260, 110)),  # square around the centre
        ((280.0, 0.0, 300.0, 10.0), (280, 0, 300, 20)),  # moved inside the image
        ((0.0, 0.0, 300.0, 250.0), (50, 0, 250, 200)),  # shrunk to fit
        (None, (0, 0, 300, 200)),  # no face box: the whole image
    ],
)
def test_square_crop_box(
    box: tuple[float, float, float, float] | None, want: tuple[int, int, int, int]
) -> None:
    assert square_crop_box(box, 300, 200) == want


def test_unknown_variant() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        make_variant("sepia", _base(), BOX)


def test_missing_pairs_count_wrong_or_different() -> None:
    # 10 genuine (0.9), 10 impostor (0.1); two genuine and two impostor pairs without a face
    scores = np.array([0.9] * 10 + [0.1] * 10)
    same = np.array([True] * 10 + [False] * 10)
    scores[[0, 1, 10, 11]] = -np.inf
    as_different, _ = kfold_accuracy(scores, same, folds=2)
    as_wrong, _ = kfold_accuracy(scores, same, folds=2, missing_wrong=True)
    assert as_different == pytest.approx(18 / 20)  # the two missing impostor pairs are right
    assert as_wrong == pytest.approx(16 / 20)
    assert tar_at_far(scores, same, 1e-3) == pytest.approx(0.8)
    # every face missing: nothing is accepted, even though the threshold is -inf
    none = np.full(20, -np.inf)
    assert tar_at_far(none, same, 1e-3) == 0.0
