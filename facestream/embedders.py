"""The embedding models facestream knows: each model's config class, and the registry of them.

A model is a config class here (its name in the ``kind`` tag, its vector size, its similarity
calibration, its fields) plus its code in :mod:`models.embedders`, registered there by the same
name. Adding a model: its config class and one line in :data:`EMBEDDER_CONFIGS` here, its
module and one line in ``models.embedders.EMBEDDERS``. Everything else (the ``model`` field of
:class:`~facestream.config.EmbedConfig`, :data:`MODEL_DIMS`, the ``--model`` choices and
``FACESTREAM_MODEL`` in :mod:`facestream.settings`, the similarity anchors) is derived from
the registry.

The kernel needs this without the model code (a collection's Milvus dimension, settings), so
nothing here imports torch or :mod:`models`.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from facestream.errors import InvalidParameter


class EmbedderModelConfig(BaseModel):
    """The config of one embedding model; subclasses fix ``kind`` to the model's name.

    Class attributes: ``name`` (set from the ``kind`` default), ``dim`` (embedding size, the
    Milvus vector dimension) and ``similarity_anchors`` (the cosines that map to Similarity 50,
    80 and 99, see :mod:`facestream.similarity`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]
    dim: ClassVar[int]
    similarity_anchors: ClassVar[tuple[float, float, float]]

    kind: str
    weights_path: Path | None = Field(None, description="local weights file; None: the model's default")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.model_fields["kind"].default
        if not isinstance(kind, str) or not kind:
            raise TypeError(f"{cls.__name__}: an embedder config needs a default `kind` (the model name)")
        cls.name = kind


class DlibResNetConfig(EmbedderModelConfig):
    dim = 128
    #: measured by ``python -m bench.accuracy`` on the unflagged pairs of PAIRS.tsv
    similarity_anchors = (0.88, 0.92, 0.95)

    kind: Literal["dlib-resnet"] = "dlib-resnet"
    weights_path: Path | None = Field(
        None,
        description="dlib_face_recognition_resnet_model_v1.dat; None: the face_recognition_models copy",
    )


class FacenetConfig(EmbedderModelConfig):
    dim = 512
    #: measured by ``python -m bench.accuracy`` on the unflagged pairs of PAIRS.tsv
    similarity_anchors = (0.25, 0.45, 0.70)

    kind: Literal["facenet-vggface2"] = "facenet-vggface2"
    weights_path: Path | None = Field(
        None,
        description="local 20180402-114759-vggface2.pt; None looks in the facestream cache "
        "(filled by `facestream models fetch facenet-vggface2` where a network exists)",
    )
    weights_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="expected sha256 of the weights file; None uses the pinned release checksum",
    )


#: The registry: one line per model (its code is registered in ``models.embedders.EMBEDDERS``).
EMBEDDER_CONFIGS: tuple[type[EmbedderModelConfig], ...] = (
    DlibResNetConfig,
    FacenetConfig,
)

DEFAULT_MODEL = DlibResNetConfig.name

CONFIGS_BY_NAME: dict[str, type[EmbedderModelConfig]] = {c.name: c for c in EMBEDDER_CONFIGS}
MODEL_NAMES: tuple[str, ...] = tuple(CONFIGS_BY_NAME)
MODEL_DIMS: dict[str, int] = {c.name: c.dim for c in EMBEDDER_CONFIGS}

if TYPE_CHECKING:
    EmbedderConfig = EmbedderModelConfig
else:
    #: the ``model`` field of EmbedConfig: any registered config, told apart by ``kind``
    EmbedderConfig = Annotated[functools.reduce(operator.or_, EMBEDDER_CONFIGS), Field(discriminator="kind")]


def embedder_config(name: str, weights_path: Path | None = None) -> EmbedderModelConfig:
    """The default config of the model called ``name`` (with ``weights_path`` if given)."""
    cls = CONFIGS_BY_NAME.get(name)
    if cls is None:
        raise InvalidParameter(f"model {name!r}: expected {' or '.join(MODEL_NAMES)}")
    return cls.model_validate({"weights_path": weights_path})


__all__ = [
    "CONFIGS_BY_NAME",
    "DEFAULT_MODEL",
    "EMBEDDER_CONFIGS",
    "MODEL_DIMS",
    "MODEL_NAMES",
    "DlibResNetConfig",
    "EmbedderConfig",
    "EmbedderModelConfig",
    "FacenetConfig",
    "embedder_config",
]
