"""Face detection with facenet-pytorch's MTCNN (weights ship in its wheel: works offline).

Frames of equal size are detected in one batched pass; frames of different sizes are
grouped by size. Outputs are plain float32 arrays, never MTCNN's dtype=object arrays.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from facestream.config import DetectorConfig
from facestream.errors import ModelUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detections:
    """Faces of one image: ``boxes`` (n,4) x1,y1,x2,y2 px; ``scores`` (n,); ``landmarks`` (n,5,2) px."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
        )


def _load_mtcnn(device: torch.device) -> torch.nn.Module:
    try:
        from facenet_pytorch import MTCNN
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelUnavailable(
            "facenet-pytorch is not installed; run scripts/setup.sh (it installs facenet-pytorch==2.6.0 "
            f"with --no-deps): {exc}"
        ) from None
    mtcnn = MTCNN(keep_all=True, device=device)
    mtcnn.eval()
    return mtcnn


class MtcnnDetector:
    """Batched MTCNN. ``detect(frames)`` takes RGB uint8 arrays (H, W, 3), any mix of sizes."""

    def __init__(self, config: DetectorConfig | None = None, device: torch.device | None = None) -> None:
        self.config = config or DetectorConfig()
        self.device = device or torch.device("cpu")
        self._mtcnn = _load_mtcnn(self.device)

    @property
    def mtcnn(self) -> torch.nn.Module:
        """The loaded facenet-pytorch MTCNN module (its P/R/O-Nets are shared with the stream path)."""
        return self._mtcnn

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        """One :class:`Detections` per frame, in input order."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        out: list[Detections | None] = [None] * len(frames)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
            groups[frame.shape].append(i)
        cfg = self.config
        m = self._mtcnn
        for shape, idx in groups.items():
            batch = torch.from_numpy(np.stack([frames[i] for i in idx]))
            scale = 1.0
            longest = max(shape[0], shape[1])
            if cfg.max_side_px is not None and longest > cfg.max_side_px:
                scale = cfg.max_side_px / longest
                size = (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale)))
                small = torch.nn.functional.interpolate(
                    batch.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", antialias=True
                )
                batch = small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
            with torch.inference_mode():
                boxes_b, points_b = detect_face(
                    batch,
                    cfg.min_face_px,
                    m.pnet,
                    m.rnet,
                    m.onet,
                    list(cfg.stage_thresholds),
                    cfg.pyramid_factor,
                    self.device,
                )
            for j, i in enumerate(idx):
                out[i] = self._postprocess(boxes_b[j], points_b[j], frames[i].shape, 1.0 / scale)
        return [d if d is not None else Detections.empty() for d in out]

    def _postprocess(
        self, boxes: np.ndarray, points: np.ndarray, shape: tuple[int, ...], upscale: float
    ) -> Detections:
        return postprocess(boxes, points, shape, self.config.min_confidence, upscale)


def postprocess(
    boxes: np.ndarray, points: np.ndarray, shape: tuple[int, ...], min_conf: float, upscale: float = 1.0
) -> Detections:
    """MTCNN's raw (n,5) boxes with score and (n,5,2) points -> :class:`Detections`: scaled by
    ``upscale``, faces below ``min_conf`` dropped, clipped to the frame, ordered by score."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 5).copy()
    points = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2) * upscale
    boxes[:, :4] *= upscale
    keep = boxes[:, 4] >= min_conf
    boxes, points = boxes[keep], points[keep]
    h, w = shape[0], shape[1]
    xyxy = boxes[:, :4].copy()
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, w)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, h)
    # Boxes that fall almost wholly outside the frame after clipping are not faces we can use.
    ok = ((xyxy[:, 2] - xyxy[:, 0]) >= 4) & ((xyxy[:, 3] - xyxy[:, 1]) >= 4)
    order = np.argsort(-boxes[ok, 4], kind="stable")
    return Detections(
        boxes=np.ascontiguousarray(xyxy[ok][order]),
        scores=np.ascontiguousarray(boxes[ok, 4][order]),
        landmarks=np.ascontiguousarray(points[ok][order]),
    )
