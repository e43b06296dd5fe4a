"""What the store keeps: one :class:`FaceRecord` per indexed face, one :class:`CollectionInfo`
per collection."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facestream.errors import InvalidParameter
from facestream.store import validation as v


@dataclass(frozen=True)
class FaceRecord:
    """One face as stored in a collection (Rekognition's ``Face``).

    - ``face_id``: canonical lowercase UUID string, the primary key.
    - ``external_image_id``: caller's label for the source image, ``[a-zA-Z0-9_.\\-:]{1,255}``.
    - ``image_id``: sha256 hex of the source image bytes.
    - ``bounding_box``: (left, top, width, height) as ratios of the image width/height;
      left/top may be slightly negative for faces cut by the frame edge.
    - ``confidence``: detector confidence, 0-100.
    - ``quality``: e.g. ``{"brightness": 0-100, "sharpness": 0-100}``.
    - ``created_at_ms``: when it was indexed, epoch milliseconds (retention counts from here).
    - ``embedding``: ``(d,)`` float32, L2-normalised; ``None`` when read without embeddings.
    """

    face_id: str
    external_image_id: str | None
    image_id: str
    bounding_box: tuple[float, float, float, float]
    confidence: float
    quality: dict[str, float]
    created_at_ms: int
    user_id: str | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        v.check_face_id(self.face_id)
        if self.external_image_id is not None:
            v.check_external_image_id(self.external_image_id)
        v.check(self.image_id, v.IMAGE_ID, "image id")
        if self.user_id is not None:
            v.check_user_id(self.user_id)
        if not isinstance(self.bounding_box, tuple | list) or len(self.bounding_box) != 4:
            raise InvalidParameter(
                f"bounding_box must be (left, top, width, height), got {self.bounding_box!r}"
            )
        left, top, width, height = self.bounding_box
        box = (
            v.check_float(left, "bounding_box.left", -1.0, 1.0),
            v.check_float(top, "bounding_box.top", -1.0, 1.0),
            v.check_float(width, "bounding_box.width", 0.0, 2.0),
            v.check_float(height, "bounding_box.height", 0.0, 2.0),
        )
        object.__setattr__(self, "bounding_box", box)
        object.__setattr__(self, "confidence", v.check_float(self.confidence, "confidence", 0.0, 100.0))
        if not isinstance(self.quality, dict) or len(self.quality) > 16:
            raise InvalidParameter(f"quality must be a dict of at most 16 entries, got {self.quality!r}")
        quality = {
            v.check(k, v.QUALITY_KEY, "quality key"): v.check_float(q, f"quality[{k}]", -1e6, 1e6)
            for k, q in self.quality.items()
        }
        object.__setattr__(self, "quality", quality)
        v.check_int(self.created_at_ms, "created_at_ms", 0, 2**62)
        if self.embedding is not None:
            emb = self.embedding
            if not isinstance(emb, np.ndarray) or emb.ndim != 1 or emb.dtype != np.float32:
                got = (
                    f"{emb.dtype} array of shape {emb.shape}"
                    if isinstance(emb, np.ndarray)
                    else type(emb).__name__
                )
                raise InvalidParameter(f"embedding must be a (d,) float32 array, got {got}")
            norm = float(np.linalg.norm(emb))
            if not np.isfinite(emb).all() or abs(norm - 1.0) > 1e-3:
                raise InvalidParameter(f"embedding must be finite and L2-normalised, got norm {norm:.4f}")


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's settings and size (Rekognition's DescribeCollection).

    ``created_at`` is epoch milliseconds; ``retention_days`` is ``None`` for keep-forever.
    """

    name: str
    model: str
    dim: int
    face_count: int
    created_at: int
    retention_days: int | None
    require_confirmation: bool
