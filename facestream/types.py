"""Domain types that cross process boundaries (Ray actors, Serve replicas, the store).

Every batch is validated on construction so a wrong shape fails where it was made, with a
message saying what was expected and what arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: MTCNN's five landmarks, in its order. Rekognition names for the same points.
LANDMARK_TYPES: tuple[str, ...] = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
#: Rekognition's landmarks with ``Attributes=["ALL"]`` (derived from dlib's 68 points, see
#: models/landmarks.py), in the order analyzers return them; "left" / "right" as in the image.
ALL_LANDMARK_TYPES: tuple[str, ...] = (
    *LANDMARK_TYPES,
    "leftEyeBrowLeft",
    "leftEyeBrowRight",
    "leftEyeBrowUp",
    "rightEyeBrowLeft",
    "rightEyeBrowRight",
    "rightEyeBrowUp",
    "leftEyeLeft",
    "leftEyeRight",
    "leftEyeUp",
    "leftEyeDown",
    "rightEyeLeft",
    "rightEyeRight",
    "rightEyeUp",
    "rightEyeDown",
    "noseLeft",
    "noseRight",
    "mouthUp",
    "mouthDown",
    "leftPupil",
    "rightPupil",
    "upperJawlineLeft",
    "midJawlineLeft",
    "chinBottom",
    "midJawlineRight",
    "upperJawlineRight",
)


def _check(arr: np.ndarray, name: str, shape: tuple[int | None, ...]) -> None:
    if arr.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(arr.shape, shape, strict=True)
    ):
        pretty = tuple("n" if s is None else s for s in shape)
        raise ValueError(f"FaceBatch.{name}: expected shape {pretty}, got {arr.shape}")


@dataclass(frozen=True)
class FaceBatch:
    """The faces found in one image or frame.

    Shapes (n faces, d embedding dims), all float32, pixel coordinates of the source image:
      - ``boxes`` (n, 4): x1, y1, x2, y2
      - ``landmarks`` (n, 5, 2): x, y of :data:`LANDMARK_TYPES`
      - ``scores`` (n,): detector probability in [0, 1]
      - ``brightness`` (n,), ``sharpness`` (n,): 0-100, see :mod:`models.quality`
      - ``pose`` (n, 3): yaw, pitch, roll in degrees
      - ``embeddings`` (n, d) L2-normalised, or ``None`` when only detection ran
    """

    image_width: int
    image_height: int
    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    brightness: np.ndarray
    sharpness: np.ndarray
    pose: np.ndarray
    embeddings: np.ndarray | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        n = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
        _check(self.boxes, "boxes", (None, 4))
        _check(self.landmarks, "landmarks", (n, 5, 2))
        for name in ("scores", "brightness", "sharpness"):
            _check(getattr(self, name), name, (n,))
        _check(self.pose, "pose", (n, 3))
        if self.image_width <= 0 or self.image_height <= 0:
            raise ValueError(
                f"FaceBatch: image size must be positive, got {self.image_width}x{self.image_height}"
            )
        if self.embeddings is not None:
            _check(self.embeddings, "embeddings", (n, None))
            if n:
                norms = np.linalg.norm(self.embeddings, axis=1)
                if not np.allclose(norms, 1.0, atol=1e-3):
                    raise ValueError(
                        "FaceBatch.embeddings: expected L2-normalised rows, "
                        f"got norms in [{norms.min():.4f}, {norms.max():.4f}]"
                    )
            if self.model is None:
                raise ValueError("FaceBatch: embeddings given without the model that made them")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def sizes_px(self) -> np.ndarray:
        """(n,) the shorter side of each box in pixels."""
        wh = self.boxes[:, 2:] - self.boxes[:, :2]
        return np.minimum(wh[:, 0], wh[:, 1])

    def select(self, index: np.ndarray | list[int]) -> FaceBatch:
        """A new batch holding only the faces at ``index`` (in that order)."""
        idx = np.asarray(index, dtype=np.int64)
        return FaceBatch(
            image_width=self.image_width,
            image_height=self.image_height,
            boxes=self.boxes[idx],
            landmarks=self.landmarks[idx],
            scores=self.scores[idx],
            brightness=self.brightness[idx],
            sharpness=self.sharpness[idx],
            pose=self.pose[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            model=self.model,
        )

    def largest_first(self) -> FaceBatch:
        """Faces ordered by box area, largest first (Rekognition's choice of 'the' face)."""
        wh = self.boxes[:, 2:] - self.boxes[:, :2]
        return self.select(np.argsort(-(wh[:, 0] * wh[:, 1]), kind="stable"))

    @staticmethod
    def empty(width: int, height: int) -> FaceBatch:
        z = np.zeros
        return FaceBatch(
            image_width=width,
            image_height=height,
            boxes=z((0, 4), np.float32),
            landmarks=z((0, 5, 2), np.float32),
            scores=z((0,), np.float32),
            brightness=z((0,), np.float32),
            sharpness=z((0,), np.float32),
            pose=z((0, 3), np.float32),
        )


@dataclass(frozen=True)
class SearchHit:
    """One stored face returned by a search, similarity on Rekognition's 0-100 scale."""

    face_id: str
    similarity: float
    external_image_id: str | None
    image_id: str
    user_id: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
