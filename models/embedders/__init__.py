"""Embedding backends behind one interface; pick one with :func:`load_embedder`."""

from __future__ import annotations

from facestream.config import DlibResNetConfig, EmbedConfig, FacenetConfig
from facestream.embedders import MODEL_DIMS, MODEL_NAMES
from models.device import Placement
from models.embedders.base import ChipSpec, Embedder


def load_embedder(config: EmbedConfig, placement: Placement) -> Embedder:
    """Build the configured backend on ``placement`` (weights verified, never downloaded)."""
    model = config.model
    if isinstance(model, DlibResNetConfig):
        from models.embedders.dlib_resnet import DlibResNetEmbedder

        return DlibResNetEmbedder(
            placement=placement, weights_path=model.weights_path, channels_last=config.channels_last
        )
    if isinstance(model, FacenetConfig):
        from models.embedders.facenet import FacenetEmbedder

        return FacenetEmbedder(
            placement,
            weights_path=model.weights_path,
            weights_sha256=model.weights_sha256,
            channels_last=config.channels_last,
        )
    raise TypeError(f"unknown embedder config {type(model).__name__}")


__all__ = ["MODEL_DIMS", "MODEL_NAMES", "ChipSpec", "Embedder", "load_embedder"]
