"""facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (512-d, 99.65% LFW).

Its weights are not in the wheel. They come from a local file pinned by sha256, or are
fetched once by ``facestream models fetch facenet-vggface2`` where a network exists. A
serving replica never downloads: a missing file is a clear error naming what to provide.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from facestream.embedders import EmbedderModelConfig, FacenetConfig
from facestream.errors import ModelUnavailable
from models.device import Placement
from models.embedders.base import ChipSpec, Embedder, own_config

log = logging.getLogger(__name__)

WEIGHTS_FILE = "20180402-114759-vggface2.pt"
WEIGHTS_URL = f"https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/{WEIGHTS_FILE}"
#: sha256 of the release file (the same pin public projects use for it; checked on fetch).
WEIGHTS_SHA256 = "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b"

#: facenet-pytorch feeds the network MTCNN's square box crop resized to 160 px (margin 0).
#: These are the median MTCNN landmark positions inside such crops, measured on the faces of
#: ../shared/data (scripts/derive_chip_templates.py), so a similarity warp reproduces the crop
#: the network was trained on while also removing roll.
FACENET_CHIP_TEMPLATE_160 = np.array(
    [[42.3, 65.3], [117.7, 65.3], [80.0, 96.9], [45.5, 120.9], [114.5, 120.9]], dtype=np.float32
)


def cache_dir() -> Path:
    return Path(os.environ.get("FACESTREAM_CACHE_DIR", Path.home() / ".cache" / "facestream")) / "weights"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(path: Path | None, expected_sha256: str | None) -> Path:
    """Find and verify the weights file; never downloads."""
    want = expected_sha256 or WEIGHTS_SHA256
    p = path if path is not None else cache_dir() / WEIGHTS_FILE
    if not p.is_file():
        raise ModelUnavailable(
            f"facenet-vggface2 weights not found at {p}. Provide {WEIGHTS_FILE} (sha256 {want}) "
            f"with --weights / FacenetConfig.weights_path, or run `facestream models fetch "
            f"facenet-vggface2` on a machine with network access (downloads {WEIGHTS_URL})."
        )
    got = sha256_file(p)
    if got != want:
        raise ModelUnavailable(f"facenet-vggface2 weights {p}: sha256 {got} does not match the pinned {want}")
    return p


def fetch_weights(dest_dir: Path | None = None) -> Path:
    """Download the release file once (for machines with network access) and verify it."""
    import requests

    dest = (dest_dir or cache_dir()) / WEIGHTS_FILE
    if dest.is_file() and sha256_file(dest) == WEIGHTS_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        with requests.get(WEIGHTS_URL, stream=True, timeout=60) as r:
            r.raise_for_status()
            with tmp.open("wb") as f:
                for chunk in r.iter_content(1 << 20):
                    f.write(chunk)
    except requests.RequestException as exc:
        raise ModelUnavailable(f"could not download {WEIGHTS_URL}: {exc}") from None
    got = sha256_file(tmp)
    if got != WEIGHTS_SHA256:
        tmp.unlink(missing_ok=True)
        raise ModelUnavailable(f"downloaded {WEIGHTS_URL} has sha256 {got}, expected {WEIGHTS_SHA256}")
    tmp.replace(dest)
    return dest


class FacenetEmbedder(Embedder):
    name = FacenetConfig.name
    dim = 512
    chip = ChipSpec(size=160, template=FACENET_CHIP_TEMPLATE_160)

    @classmethod
    def from_config(
        cls, config: EmbedderModelConfig, placement: Placement, *, channels_last: bool
    ) -> FacenetEmbedder:
        model = own_config(config, FacenetConfig)
        return cls(
            placement,
            weights_path=model.weights_path,
            weights_sha256=model.weights_sha256,
            channels_last=channels_last,
        )

    def __init__(
        self,
        placement: Placement,
        weights_path: Path | None = None,
        weights_sha256: str | None = None,
        channels_last: bool = True,
    ) -> None:
        from facenet_pytorch import InceptionResnetV1

        path = resolve_weights(weights_path, weights_sha256)
        net = InceptionResnetV1(pretrained=None, classify=False)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            # The release file carries the VGGFace2 classifier head; we only embed.
            state = {k: v for k, v in state.items() if not k.startswith("logits.")}
            net.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise ModelUnavailable(f"facenet-vggface2 weights {path} could not be loaded: {exc}") from None
        self._placement = placement
        self._channels_last = channels_last
        net = net.eval().to(placement.device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self._net = net

    @property
    def device(self) -> torch.device:
        return self._placement.device

    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        if chips.ndim != 4 or chips.shape[1:] != (3, 160, 160):
            raise ValueError(f"chips: expected (n, 3, 160, 160) uint8, got {tuple(chips.shape)}")
        x = (chips.to(self.device, non_blocking=True).float() - 127.5) / 128.0
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = self._placement.autocast_dtype
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            out = self._net(x)
        return torch.nn.functional.normalize(out.float(), dim=1).cpu()
