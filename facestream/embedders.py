"""The embedding models facestream knows, by name, with their vector sizes.

The kernel needs these to create a collection for a model (its Milvus dimension) without
loading the model code; :mod:`models.embedders` builds the networks and imports them from here.
"""

from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("dlib-resnet", "facenet-vggface2")
MODEL_DIMS: dict[str, int] = {"dlib-resnet": 128, "facenet-vggface2": 512}

__all__ = ["MODEL_DIMS", "MODEL_NAMES"]
