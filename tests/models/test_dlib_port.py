"""The torch port of dlib's face-recognition ResNet against dlib itself, plus its weights cache.

Photos are read in place from the shared data directory (``$FACESTREAM_DATA_DIR``, default
``<repo>/../shared/data``) and never copied. Without them the equivalence tests skip, or fail
when ``CI=true``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from facestream.errors import InvalidParameter, ModelUnavailable
from models import dlib_dat
from models.device import Placement
from models.dlib_dat import (
    default_dat_path,
    expected_shapes,
    load_dlib_resnet_weights,
    parse_dlib_resnet_dat,
)
from models.embedders.dlib_resnet import DlibResNet, DlibResNetEmbedder

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("FACESTREAM_DATA_DIR", REPO.parent / "shared" / "data"))
FACES = DATA_DIR / "faces"

#: one face (the largest) from each photo: different photos, different people
PHOTOS = (
    "face_recognition/tests/test_images/obama.jpg",
    "face_recognition/examples/biden.jpg",
    "deepface/tests/unit/dataset/img1.jpg",
    "deepface/tests/unit/dataset/img2.jpg",
    "deepface/tests/unit/dataset/img3.jpg",
    "deepface/tests/unit/dataset/img4.jpg",
    "deepface/tests/unit/dataset/img5.jpg",
    "dlib/examples/faces/2007_007763.jpg",
    "dlib/examples/faces/2008_001009.jpg",
    "dlib/examples/faces/2008_001322.jpg",
    "dlib/examples/faces/2008_002079.jpg",
    "dlib/examples/faces/2008_002470.jpg",
    "dlib/examples/faces/bald_guys.jpg",
)
MIN_FACES = 10


def _require_data() -> None:
    missing = [p for p in PHOTOS if not (FACES / p).is_file()]
    if len(PHOTOS) - len(missing) >= MIN_FACES:
        return
    msg = f"face photos not found under {FACES} (set FACESTREAM_DATA_DIR); missing {missing}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def dlib_chips() -> np.ndarray:
    """(n, 150, 150, 3) uint8 RGB chips aligned by dlib itself, n >= MIN_FACES, one per photo."""
    _require_data()
    dlib = pytest.importorskip("dlib")
    from PIL import Image

    models_dir = default_dat_path().parent
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models_dir / "shape_predictor_5_face_landmarks.dat"))
    chips = []
    for rel in PHOTOS:
        path = FACES / rel
        if not path.is_file():
            continue
        img = np.asarray(Image.open(path).convert("RGB"))
        dets = detector(img, 1)
        if not dets:
            logger.warning("no face found in %s", rel)
            continue
        det = max(dets, key=lambda r: r.area())
        chips.append(dlib.get_face_chip(img, predictor(img, det), size=150, padding=0.25))
    assert len(chips) >= MIN_FACES, f"only {len(chips)} faces found in {len(PHOTOS)} photos"
    return np.stack(chips)


@pytest.fixture(scope="module")
def dlib_descriptors(dlib_chips: np.ndarray) -> np.ndarray:
    """(n, 128) float64: dlib's compute_face_descriptor on each already-aligned chip."""
    import dlib

    model = dlib.face_recognition_model_v1(str(default_dat_path()))
    return np.stack([np.asarray(model.compute_face_descriptor(chip)) for chip in dlib_chips])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights-cache")


@pytest.fixture(scope="module")
def embedder(cache_dir: Path) -> DlibResNetEmbedder:
    return DlibResNetEmbedder(cache_dir=cache_dir)


def _as_tensor(chips: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(chips).permute(0, 3, 1, 2).contiguous()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ------------------------------------------------------------------------------------------------
# equivalence with dlib


@pytest.mark.slow
def test_raw_descriptor_matches_dlib(
    embedder: DlibResNetEmbedder, dlib_chips: np.ndarray, dlib_descriptors: np.ndarray
) -> None:
    ours = embedder.raw_descriptor(_as_tensor(dlib_chips)).numpy().astype(np.float64)
    assert ours.shape == dlib_descriptors.shape == (len(dlib_chips), 128)
    cos = _cosine(ours, dlib_descriptors)
    l2 = np.linalg.norm(ours - dlib_descriptors, axis=1)
    logger.info("cosine min %.9f median %.9f; max L2 %.3g", cos.min(), np.median(cos), l2.max())
    assert (cos >= 0.999).all(), cos
    # dlib's descriptors have norm ~1.4 and same-person distances < 0.6: 1e-3 is far below noise
    assert l2.max() < 1e-3, l2


@pytest.mark.slow
def test_embed_is_unit_norm_dlib_direction(
    embedder: DlibResNetEmbedder, dlib_chips: np.ndarray, dlib_descriptors: np.ndarray
) -> None:
    emb = embedder.embed(_as_tensor(dlib_chips))
    assert emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert emb.shape == (len(dlib_chips), embedder.dim)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    ref = dlib_descriptors / np.linalg.norm(dlib_descriptors, axis=1, keepdims=True)
    np.testing.assert_allclose(emb.numpy(), ref, atol=1e-4)


@pytest.mark.slow
def test_batch_and_memory_format_do_not_change_results(
    embedder: DlibResNetEmbedder, dlib_chips: np.ndarray, cache_dir: Path
) -> None:
    chips = _as_tensor(dlib_chips)
    batched = embedder.raw_descriptor(chips)
    one_by_one = torch.cat([embedder.raw_descriptor(chips[i : i + 1]) for i in range(len(chips))])
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=0)
    plain = DlibResNetEmbedder(cache_dir=cache_dir, channels_last=False).raw_descriptor(chips)
    torch.testing.assert_close(batched, plain, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_bfloat16_autocast_stays_close(dlib_chips: np.ndarray, cache_dir: Path) -> None:
    fp32 = DlibResNetEmbedder(cache_dir=cache_dir).embed(_as_tensor(dlib_chips)).numpy()
    bf16 = DlibResNetEmbedder(cache_dir=cache_dir, dtype=torch.bfloat16).embed(_as_tensor(dlib_chips))
    assert bf16.dtype == torch.float32
    assert (_cosine(fp32, bf16.numpy()) >= 0.99).all()


# ------------------------------------------------------------------------------------------------
# interface


def test_embedder_interface(embedder: DlibResNetEmbedder) -> None:
    assert embedder.name == "dlib-resnet"
    assert embedder.dim == 128
    assert embedder.chip.size == 150
    assert embedder.chip.template.shape == (5, 2)
    assert embedder.device == torch.device("cpu")
    tpl = embedder.chip.template
    # dlib 5-point order: image-right eye (outer, inner), image-left eye (outer, inner), nose.
    assert embedder.chip.landmarks == "dlib5"
    assert tpl[0, 0] > tpl[1, 0] > tpl[3, 0] > tpl[2, 0]
    assert tpl[4, 1] > tpl[:4, 1].max()
    assert tpl[0, 1] < tpl[2, 1] < tpl[3, 1]  # eyes above nose above mouth
    assert embedder.embed(torch.zeros((0, 3, 150, 150), dtype=torch.uint8)).shape == (0, 128)


@pytest.mark.parametrize(
    "chips",
    [
        torch.zeros((1, 3, 150, 150), dtype=torch.float32),
        torch.zeros((1, 150, 150, 3), dtype=torch.uint8),
        torch.zeros((3, 150, 150), dtype=torch.uint8),
        torch.zeros((1, 3, 112, 112), dtype=torch.uint8),
    ],
)
def test_embed_rejects_wrong_input(embedder: DlibResNetEmbedder, chips: torch.Tensor) -> None:
    with pytest.raises(InvalidParameter, match=r"uint8 \(n, 3, 150, 150\)"):
        embedder.embed(chips)


def test_accepts_a_placement(cache_dir: Path) -> None:
    emb = DlibResNetEmbedder(placement=Placement(torch.device("cpu"), torch.bfloat16), cache_dir=cache_dir)
    assert emb.device == torch.device("cpu") and emb.dtype == torch.bfloat16
    with pytest.raises(InvalidParameter, match="placement"):
        DlibResNetEmbedder("cpu", placement=Placement(torch.device("cpu"), None), cache_dir=cache_dir)


def test_rejects_unsupported_dtype(cache_dir: Path) -> None:
    with pytest.raises(InvalidParameter, match="dtype"):
        DlibResNetEmbedder(cache_dir=cache_dir, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# the reader and the cache


def test_parse_matches_architecture() -> None:
    tensors = parse_dlib_resnet_dat(default_dat_path())
    want = expected_shapes()
    assert list(tensors) == list(want)
    assert {k: v.shape for k, v in tensors.items()} == want
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in tensors.values())
    np.testing.assert_allclose(tensors["input.avg_rgb"], [122.782, 117.001, 104.298], atol=1e-4)
    assert sum(v.size for v in tensors.values()) == 5_614_595
    DlibResNet.from_dlib_tensors({k: torch.from_numpy(v) for k, v in tensors.items()})


def test_cache_hit_keyed_by_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dat = default_dat_path()
    sha = hashlib.sha256(dat.read_bytes()).hexdigest()
    first = load_dlib_resnet_weights(cache_dir=tmp_path)
    assert not first.from_cache
    assert first.sha256 == sha
    assert first.cache_path is not None and first.cache_path.is_file()
    assert sha in first.cache_path.name and first.cache_path.parent == tmp_path

    def no_parse(path: object) -> None:
        raise AssertionError("cache hit expected; the .dat was parsed again")

    monkeypatch.setattr(dlib_dat, "parse_dlib_resnet_dat", no_parse)
    second = load_dlib_resnet_weights(cache_dir=tmp_path)
    assert second.from_cache and second.cache_path == first.cache_path
    assert second.tensors.keys() == first.tensors.keys()
    for k, v in first.tensors.items():
        assert torch.equal(v, second.tensors[k]), k


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESTREAM_CACHE_DIR", str(tmp_path))
    loaded = load_dlib_resnet_weights()
    assert loaded.cache_path is not None and loaded.cache_path.parent == tmp_path / "weights"


def test_corrupt_cache_is_rebuilt(tmp_path: Path) -> None:
    first = load_dlib_resnet_weights(cache_dir=tmp_path)
    assert first.cache_path is not None
    first.cache_path.write_bytes(b"not a torch file")
    rebuilt = load_dlib_resnet_weights(cache_dir=tmp_path)
    assert not rebuilt.from_cache
    again = load_dlib_resnet_weights(cache_dir=tmp_path)
    assert again.from_cache


@pytest.fixture
def dat_bytes() -> Iterator[bytes]:
    yield default_dat_path().read_bytes()


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:-3], "truncated"),
        (lambda b: b + b"\x00", "trailing bytes"),
        (lambda b: b.replace(b"loss_metric_2", b"loss_metric_X", 1), "loss_metric_2"),
        (lambda b: b.replace(b"con_4", b"con_9", 1), "con_4"),
        (lambda b: b"", "truncated"),
    ],
    ids=["half", "short", "trailing", "loss-tag", "con-tag", "empty"],
)
def test_corrupt_dat_names_the_file(tmp_path: Path, dat_bytes: bytes, mangle: object, match: str) -> None:
    bad = tmp_path / "broken_model.dat"
    bad.write_bytes(mangle(dat_bytes))  # type: ignore[operator]
    with pytest.raises(ModelUnavailable, match=match) as info:
        load_dlib_resnet_weights(bad, cache_dir=tmp_path / "cache")
    assert str(bad) in info.value.message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_missing_dat_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.dat"
    with pytest.raises(ModelUnavailable, match="not found") as info:
        load_dlib_resnet_weights(missing, cache_dir=tmp_path)
    assert str(missing) in info.value.message
