"""Mapping from a model's cosine similarity to Rekognition's 0-100 ``Similarity``.

Rekognition reports similarity as a percentage whose default operating point is 80 and whose
advice for public-safety use is 99. Cosine similarity of two L2-normalised embeddings means
different things for different models, so each model gets a monotone piecewise-linear map
through calibrated anchor points::

    cosine:      -1 ......... c50 ...... c80 ...... c99 ...... 1
    Similarity:   0 .......... 50 ....... 80 ....... 99 ..... 100

``c80`` is the cosine at the model's equal-error-rate on the unflagged pairs of
``PAIRS.tsv`` (the usual verification threshold), ``c99`` the cosine at which no impostor
pair of that set scores higher (false-match rate below 1/number of impostor pairs), and
``c50`` halfway between the impostor median and c80. ``bench/accuracy.py`` measures the
anchors again and prints them; ``facestream calibrate`` (accountability issue) computes a
threshold for a target false-match rate on the operator's own labelled pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facestream.embedders import EMBEDDER_CONFIGS
from facestream.errors import InvalidParameter


@dataclass(frozen=True)
class SimilarityAnchors:
    """Cosine values that map to Similarity 50, 80 and 99 (strictly increasing)."""

    c50: float
    c80: float
    c99: float

    def __post_init__(self) -> None:
        if not -1.0 < self.c50 < self.c80 < self.c99 < 1.0:
            raise ValueError(
                f"SimilarityAnchors must satisfy -1 < c50 < c80 < c99 < 1, got "
                f"{self.c50}, {self.c80}, {self.c99}"
            )

    @property
    def xs(self) -> np.ndarray:
        return np.array([-1.0, self.c50, self.c80, self.c99, 1.0])


#: Rekognition's default operating point (FaceMatchThreshold, SimilarityThreshold, UserMatchThreshold),
#: the ``general`` profile's default: the one definition of "80" everywhere a threshold defaults.
DEFAULT_MATCH_THRESHOLD = 80.0

_YS = np.array([0.0, 50.0, DEFAULT_MATCH_THRESHOLD, 99.0, 100.0])

#: Measured by ``python -m bench.accuracy`` on the unflagged pairs of PAIRS.tsv
#: (see README "Accuracy"). Re-measure after any change to detection or alignment. Each model's
#: anchors are its config class's ``similarity_anchors`` (facestream/embedders.py).
ANCHORS: dict[str, SimilarityAnchors] = {
    c.name: SimilarityAnchors(*c.similarity_anchors) for c in EMBEDDER_CONFIGS
}


def anchors_for(model: str) -> SimilarityAnchors:
    try:
        return ANCHORS[model]
    except KeyError:
        raise InvalidParameter(
            f"no similarity calibration for model {model!r}; known: {sorted(ANCHORS)}"
        ) from None


def cosine_to_similarity(model: str, cosine: np.ndarray | float) -> np.ndarray:
    """Cosine similarity (any shape, in [-1, 1]) -> Similarity in [0, 100], same shape."""
    a = anchors_for(model)
    c = np.clip(np.asarray(cosine, dtype=np.float64), -1.0, 1.0)
    return np.interp(c, a.xs, _YS)


def similarity_to_cosine(model: str, similarity: float) -> float:
    """Inverse of :func:`cosine_to_similarity` for a threshold in [0, 100]."""
    if not 0.0 <= similarity <= 100.0:
        raise InvalidParameter(f"similarity threshold must be in [0, 100], got {similarity}")
    a = anchors_for(model)
    return float(np.interp(similarity, _YS, a.xs))
