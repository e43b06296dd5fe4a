"""The batched face deployment on a real local Ray Serve: same answers as the bare model,
batches really form when several callers send frames at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from facestream.config import AnalyzerConfig, DeviceConfig, EmbeddingServiceConfig
from facestream.imageio import load_image_file
from tests.helpers import face

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def handle(serve_http_port: int):  # type: ignore[no-untyped-def]
    from ray import serve

    from pipelines.face_service import deployment

    cfg = EmbeddingServiceConfig(
        analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")), max_batch_size=4, batch_wait_timeout_s=0.2
    )
    h = serve.run(deployment(cfg).bind(cfg.model_dump()), name="faces-test", route_prefix=None)
    yield h
    serve.delete("faces-test")


def test_matches_bare_model_and_batches(handle) -> None:  # type: ignore[no-untyped-def]
    from models.analyzer import FaceAnalyzer

    frames = [
        load_image_file(face("face_recognition/examples/two_people.jpg")).rgb,
        load_image_file(face("dlib/examples/faces/2007_007763.jpg")).rgb,
        load_image_file(face("face_recognition/tests/test_images/obama.jpg")).rgb,
        load_image_file(face("dlib/examples/faces/2008_002470.jpg")).rgb,
    ]
    with ThreadPoolExecutor(4) as pool:
        remote = list(pool.map(lambda f: handle.analyze.remote(f).result(timeout_s=300), frames))
    local = FaceAnalyzer(AnalyzerConfig(device=DeviceConfig(device="cpu"))).analyze(frames)
    for r, loc in zip(remote, local, strict=True):
        assert len(r) == len(loc) > 0
        assert r.model == "dlib-resnet" and r.embeddings is not None and loc.embeddings is not None
        np.testing.assert_allclose(r.boxes, loc.boxes, atol=1e-2)
        cos = np.sum(r.embeddings * loc.embeddings, axis=1)
        assert cos.min() > 0.999
    stats = handle.stats.remote().result(timeout_s=60)
    assert stats["frames"] == 4
    assert max(stats["batch_sizes"]) > 1, stats  # concurrent callers shared a batch


def test_detect_only(handle) -> None:  # type: ignore[no-untyped-def]
    frame = load_image_file(face("face_recognition/examples/two_people.jpg")).rgb
    out = handle.detect.remote(frame).result(timeout_s=300)
    assert len(out) == 2 and out.embeddings is None
