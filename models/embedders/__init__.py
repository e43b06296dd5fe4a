"""Embedding backends behind one interface; pick one with :func:`load_embedder`.

:data:`EMBEDDERS` is the code half of the model registry: one line per model, keyed by the name
of its config class in :data:`facestream.embedders.EMBEDDER_CONFIGS`.
"""

from __future__ import annotations

from facestream.config import EmbedConfig
from facestream.embedders import MODEL_DIMS, MODEL_NAMES
from models.device import Placement
from models.embedders.base import ChipSpec, Embedder
from models.embedders.dlib_resnet import DlibResNetEmbedder
from models.embedders.facenet import FacenetEmbedder

#: The registry: each model's Embedder class by model name (one line per model).
EMBEDDERS: dict[str, type[Embedder]] = {
    DlibResNetEmbedder.name: DlibResNetEmbedder,
    FacenetEmbedder.name: FacenetEmbedder,
}


def load_embedder(config: EmbedConfig, placement: Placement) -> Embedder:
    """Build the configured backend on ``placement`` (weights verified, never downloaded)."""
    model = config.model
    cls = EMBEDDERS.get(model.kind)
    if cls is None:
        raise TypeError(f"unknown embedder config {type(model).__name__}")
    return cls.from_config(model, placement, channels_last=config.channels_last)


__all__ = ["EMBEDDERS", "MODEL_DIMS", "MODEL_NAMES", "ChipSpec", "Embedder", "load_embedder"]
