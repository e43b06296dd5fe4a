"""facenet-vggface2: weights from a verified local file only; the fetch path against a local server.

The real release file is not available offline, so these tests use an InceptionResnetV1 state
dict made here (random weights, real architecture) with its own sha256 — labelled as such.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from facestream.config import EmbedConfig
from facestream.embedders import FacenetConfig
from facestream.errors import ModelUnavailable
from models.device import choose_placement
from models.embedders import facenet as fn
from models.embedders import load_embedder


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / fn.WEIGHTS_FILE
    torch.save(InceptionResnetV1(pretrained=None, classify=False).state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_weights_name_the_file_to_provide(tmp_path: Path) -> None:
    cfg = EmbedConfig(model=FacenetConfig(weights_path=tmp_path / "nope.pt"))
    with pytest.raises(ModelUnavailable, match=r"20180402-114759-vggface2\.pt.*facestream models fetch"):
        load_embedder(cfg, choose_placement("cpu", "fp32"))


def test_checksum_mismatch_is_refused(weights: tuple[Path, str]) -> None:
    path, _ = weights
    cfg = EmbedConfig(model=FacenetConfig(weights_path=path))  # pinned release sha256
    with pytest.raises(ModelUnavailable, match="does not match the pinned"):
        load_embedder(cfg, choose_placement("cpu", "fp32"))


def test_verified_local_weights_embed(weights: tuple[Path, str]) -> None:
    path, sha = weights
    emb = load_embedder(
        EmbedConfig(model=FacenetConfig(weights_path=path, weights_sha256=sha)),
        choose_placement("cpu", "fp32"),
    )
    assert emb.name == "facenet-vggface2" and emb.dim == 512 and emb.chip.size == 160
    out = emb.embed(torch.randint(0, 255, (3, 3, 160, 160), dtype=torch.uint8))
    assert out.shape == (3, 512)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-5)


@pytest.fixture
def local_server(weights: tuple[Path, str]) -> Iterator[str]:
    directory = str(weights[0].parent)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=directory, **kw)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/{fn.WEIGHTS_FILE}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


def test_fetch_downloads_once_and_verifies(
    local_server: str, weights: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sha = weights
    monkeypatch.setattr(fn, "WEIGHTS_URL", local_server)
    monkeypatch.setattr(fn, "WEIGHTS_SHA256", sha)
    got = fn.fetch_weights(tmp_path)
    assert got == tmp_path / fn.WEIGHTS_FILE and fn.sha256_file(got) == sha
    assert fn.fetch_weights(tmp_path) == got  # already there: no second download
    monkeypatch.setattr(fn, "WEIGHTS_SHA256", "0" * 64)
    got.unlink()
    with pytest.raises(ModelUnavailable, match="expected"):
        fn.fetch_weights(tmp_path)
    assert not got.exists() and not got.with_suffix(".part").exists()
