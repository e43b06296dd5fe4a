"""Image -> faces: detect, measure quality, align, embed. The one path every caller uses."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np
import torch

from facestream.config import AnalyzerConfig
from facestream.types import FaceBatch
from models.align import align_faces
from models.detector import Detections, MtcnnDetector
from models.device import (
    Placement,
    Precision,
    PrecisionTiming,
    choose_placement,
    confirm_cpu_precision,
    time_precisions,
)
from models.embedders import Embedder, load_embedder
from models.fastdetect import StreamDetector
from models.landmarks import (
    ShapePredictor5,
    default_shape_predictor68_path,
    dlib_start_boxes,
    rekognition_landmarks,
)
from models.quality import brightness_sharpness, pose_from_landmarks

log = logging.getLogger(__name__)

#: chips per call of the one-time precision timing (a small embedder batch: ~0.1 s in fp32
#: here, ~3 s for the whole timing where bf16 is emulated)
PRECISION_PROBE_BATCH = 8


class FaceAnalyzer:
    """Holds the detector and (lazily) the embedder for one placement.

    ``analyze(images)`` takes RGB uint8 arrays (H, W, 3) of any sizes and returns one
    :class:`FaceBatch` per image, faces ordered by detector score.
    """

    def __init__(self, config: AnalyzerConfig | None = None) -> None:
        self.config = config or AnalyzerConfig()
        dev = self.config.device
        if dev.torch_threads is not None:
            torch.set_num_threads(dev.torch_threads)
        self.placement: Placement = choose_placement(dev.device, dev.precision)
        self.detector = MtcnnDetector(self.config.detector, self.placement.device)
        # Video frames sent with a stream key (same MTCNN weights; see models/fastdetect.py).
        self.stream_detector = StreamDetector(
            self.detector.mtcnn, self.config.detector, self.placement.device
        )
        self._embedder: Embedder | None = None
        #: the one-time fp32-vs-bf16 timing when precision ``auto`` had to decide on this CPU
        self.precision_timing: PrecisionTiming | None = None
        self._shape_predictor: ShapePredictor5 | None = None
        self._shape_predictor68: ShapePredictor5 | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            if self.placement.bf16_candidate:
                self._embedder = self._load_faster_precision()
            else:
                self._embedder = load_embedder(self.config.embed, self.placement)
        return self._embedder

    def _load_faster_precision(self) -> Embedder:
        """Precision ``auto`` on a CPU with bf16 units: load the embedder in both precisions,
        time one small batch each (:data:`PRECISION_PROBE_BATCH` chips, interleaved, medians) and
        keep the faster; the detector's placement follows (it only uses the device)."""
        fp32 = dataclasses.replace(self.placement, bf16_candidate=False)
        candidates: dict[Precision, Embedder] = {
            "fp32": load_embedder(self.config.embed, fp32),
            "bf16": load_embedder(
                self.config.embed, dataclasses.replace(fp32, autocast_dtype=torch.bfloat16)
            ),
        }
        size = candidates["fp32"].chip.size
        # Noise chips: a conv net's cost does not depend on pixel values.
        gen = torch.Generator().manual_seed(0)
        probe = torch.randint(
            0, 256, (PRECISION_PROBE_BATCH, 3, size, size), dtype=torch.uint8, generator=gen
        )
        self.precision_timing = time_precisions(
            lambda p: candidates[p].embed(probe), batch=PRECISION_PROBE_BATCH
        )
        self.placement = confirm_cpu_precision(self.placement, self.precision_timing)
        return candidates[self.placement.precision]

    @property
    def model_name(self) -> str:
        return self.config.embed.model.kind

    def detect(
        self, images: list[np.ndarray], stream_keys: Sequence[str | None] | None = None
    ) -> list[FaceBatch]:
        """Detection and quality only (no embeddings).

        ``stream_keys`` (one per image, or None): images with a key are video frames of that
        stream and go through the fast per-stream path (unless ``detector.stream.mode`` is
        "mtcnn"); images without one (still images) always get full per-frame MTCNN.
        """
        return [
            self._describe(img, det)
            for img, det in zip(images, self.detect_raw(images, stream_keys), strict=True)
        ]

    def detect_raw(
        self, images: list[np.ndarray], stream_keys: Sequence[str | None] | None = None
    ) -> list[Detections]:
        """The detector's output for each image (see :meth:`detect`)."""
        if stream_keys is None:
            return self.detector.detect(images)
        if len(stream_keys) != len(images):
            raise ValueError(f"{len(images)} images but {len(stream_keys)} stream keys")
        still = [i for i, k in enumerate(stream_keys) if k is None]
        video = [i for i, k in enumerate(stream_keys) if k is not None]
        out: list[Detections] = [Detections.empty()] * len(images)
        if still:
            for i, d in zip(still, self.detector.detect([images[i] for i in still]), strict=True):
                out[i] = d
        if video and self.config.detector.stream.mode == "mtcnn":
            # per-frame MTCNN, single pass (no still-image tiles or retries: a stream's cost)
            for i, d in zip(
                video, self.detector.detect([images[i] for i in video], still=False), strict=True
            ):
                out[i] = d
        elif video:
            keys = [str(stream_keys[i]) for i in video]
            for i, d in zip(
                video, self.stream_detector.detect([images[i] for i in video], keys), strict=True
            ):
                out[i] = d
        return out

    def analyze(
        self, images: list[np.ndarray], stream_keys: Sequence[str | None] | None = None
    ) -> list[FaceBatch]:
        """Detection, quality and embeddings for every face of every image (``stream_keys``: see detect)."""
        batches = self.detect(images, stream_keys)
        return self.embed_batches(images, batches)

    def alignment_landmarks(self, image: np.ndarray, batch: FaceBatch) -> np.ndarray:
        """(n,5,2) landmarks in the set the embedder's chip template is written in."""
        if self.embedder.chip.landmarks == "mtcnn5" or len(batch) == 0:
            return batch.landmarks
        if self._shape_predictor is None:
            self._shape_predictor = ShapePredictor5()
        return self._shape_predictor.predict(image, self.predictor_boxes(batch))

    def predictor_boxes(self, batch: FaceBatch) -> np.ndarray:
        """(n, 4) px boxes dlib's shape predictors start from (``embed.predictor_start``)."""
        if self.config.embed.predictor_start == "dlib_box":
            return dlib_start_boxes(batch.boxes, batch.landmarks)
        return batch.boxes

    def landmarks_all(self, image: np.ndarray, batch: FaceBatch) -> np.ndarray:
        """(n, 30, 2) float32 px: Rekognition's ``ALL`` landmarks (in the order of
        :data:`facestream.types.ALL_LANDMARK_TYPES`) from dlib's 68-point predictor, started
        from the same boxes as the 5-point one. The ~100 MB model is loaded on first use only."""
        if len(batch) == 0:
            return np.zeros((0, 30, 2), np.float32)
        if self._shape_predictor68 is None:
            self._shape_predictor68 = ShapePredictor5(default_shape_predictor68_path())
        points = self._shape_predictor68.predict(image, self.predictor_boxes(batch), round_to_pixel=False)
        return rekognition_landmarks(points)[1]

    def embed_batches(self, images: list[np.ndarray], batches: list[FaceBatch]) -> list[FaceBatch]:
        """Add embeddings to detection-only batches (the faces of all images embedded together)."""
        emb = self.embedder
        chips = [
            align_faces(img, self.alignment_landmarks(img, b), emb.chip)
            for img, b in zip(images, batches, strict=True)
        ]
        counts = [len(b) for b in batches]
        vectors = self.embed_chips(torch.cat(chips)) if sum(counts) else np.zeros((0, emb.dim), np.float32)
        out: list[FaceBatch] = []
        start = 0
        for b, n in zip(batches, counts, strict=True):
            out.append(_with_embeddings(b, vectors[start : start + n], emb.name))
            start += n
        return out

    def embed_chips(self, chips: torch.Tensor) -> np.ndarray:
        """(n,3,s,s) uint8 aligned chips -> (n,d) float32 L2-normalised, in configured batch sizes."""
        bs = self.config.embed.batch_size
        parts = [self.embedder.embed(chips[i : i + bs]) for i in range(0, chips.shape[0], bs)]
        vectors = torch.cat(parts)
        if self.config.embed.flip_augment:
            mirrored = torch.flip(chips, dims=[3])
            flipped = [self.embedder.embed(mirrored[i : i + bs]) for i in range(0, chips.shape[0], bs)]
            vectors = torch.nn.functional.normalize(vectors + torch.cat(flipped), dim=1)
        return vectors.numpy().astype(np.float32, copy=False)

    @staticmethod
    def _describe(img: np.ndarray, det: Detections) -> FaceBatch:
        h, w = img.shape[:2]
        if len(det) == 0:
            return FaceBatch.empty(w, h)
        bright, sharp = brightness_sharpness(img, det.boxes)
        return FaceBatch(
            image_width=w,
            image_height=h,
            boxes=det.boxes,
            landmarks=det.landmarks,
            scores=det.scores,
            brightness=bright,
            sharpness=sharp,
            pose=pose_from_landmarks(det.landmarks),
        )


def _with_embeddings(b: FaceBatch, vectors: np.ndarray, model: str) -> FaceBatch:
    return dataclasses.replace(b, embeddings=vectors, model=model)
