"""The one interface every embedding backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import torch

from facestream.embedders import EmbedderModelConfig

if TYPE_CHECKING:
    from models.device import Placement

C = TypeVar("C", bound=EmbedderModelConfig)


@dataclass(frozen=True)
class ChipSpec:
    """Where an embedder wants five landmarks in its square input chip.

    ``landmarks`` names the landmark set the template is in: ``mtcnn5`` (MTCNN's eye centres,
    nose tip, mouth corners) or ``dlib5`` (dlib's 5-point shape predictor: eye corners and
    nose base, see models/landmarks.py). ``template`` (5, 2) float32: x, y pixel positions of
    those points in a ``size`` x ``size`` chip, in that set's order.
    """

    size: int
    template: np.ndarray
    #: (5,) relative weight of each landmark in the fit; None weighs all equally.
    weights: np.ndarray | None = None
    landmarks: Literal["mtcnn5", "dlib5"] = "mtcnn5"

    def __post_init__(self) -> None:
        if self.template.shape != (5, 2):
            raise ValueError(f"ChipSpec.template: expected shape (5, 2), got {self.template.shape}")
        if self.weights is not None and (self.weights.shape != (5,) or (self.weights < 0).any()):
            raise ValueError(f"ChipSpec.weights: expected 5 non-negative values, got {self.weights}")


class Embedder(ABC):
    """Maps aligned face chips to L2-normalised embeddings.

    Subclasses are torch modules underneath so a Serve replica can batch them on a GPU.
    """

    #: registry name, e.g. ``dlib-resnet``
    name: str
    #: embedding dimension
    dim: int
    chip: ChipSpec

    @classmethod
    @abstractmethod
    def from_config(
        cls, config: EmbedderModelConfig, placement: Placement, *, channels_last: bool
    ) -> Embedder:
        """Build the model from its config (an instance of its class in ``facestream.embedders``)."""

    @abstractmethod
    def embed(self, chips: torch.Tensor) -> torch.Tensor:
        """``chips`` (n, 3, size, size) uint8 RGB on any device -> (n, dim) float32, L2-normalised, on CPU."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...


def own_config(config: EmbedderModelConfig, kind: type[C]) -> C:
    """``config`` as the model's own config class (TypeError when the registry is miswired)."""
    if not isinstance(config, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(config).__name__}")
    return config
