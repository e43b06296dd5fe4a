"""Face detection with facenet-pytorch's MTCNN (weights ship in its wheel: works offline).

Frames of equal size are detected in one batched pass; frames of different sizes are
grouped by size. Outputs are plain float32 arrays, never MTCNN's dtype=object arrays.

Still images get more than one MTCNN pass where one would miss or invent faces:

* **native resolution**: an image longer than ``tile_px`` is detected in overlapping tiles of
  that side (every face up to the overlap lies wholly inside one tile; faces cut by a shared
  tile edge are left to the neighbour) plus one pass on a copy ``tile_px`` long for faces
  larger than the overlap; passes are merged by NMS. Memory follows the tile, not the image.
* **tight crops**: when no face is found, or the best face touches the border, a copy with a
  border of ``retry_pad_fraction`` of the side is detected too and boxes mapped back.
* **precision**: beyond ``min_confidence``, implausible five-point geometry and (for faces
  below ``sure_confidence``) a low O-Net score on the greyscale crop drop a face
  (:mod:`models.plausibility`).

Video frames (``still=False``) keep the single-pass path (a frame longer than ``tile_px`` is
detected on a copy that long), so the stream's cost does not change.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

from facestream.config import DetectorConfig
from facestream.errors import ModelUnavailable
from models.plausibility import grey_scores, plausible_landmarks
from models.stills import (
    Raw,
    drop_cut_at_inner_edges,
    inside_fraction,
    merge,
    pad_for_retry,
    tile_grid,
    touches_border,
)

log = logging.getLogger(__name__)

#: a retry face must have at least this share of its box inside the original image
_RETRY_MIN_INSIDE = 0.5


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


def _resize(batch: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,H,W,3) uint8 -> (B,h,w,3) uint8, antialiased bilinear."""
    small = torch.nn.functional.interpolate(
        batch.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", antialias=True
    )
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


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

    def detect(
        self, frames: list[np.ndarray], *, still: bool = True, min_face_px: int | None = None
    ) -> list[Detections]:
        """One :class:`Detections` per frame, in input order.

        ``still``: full-resolution tiles and the padded retry (see the module doc); False for
        video frames. ``min_face_px``: overrides the configured smallest face.
        """
        return self._detect(frames, still=still, min_face_px=min_face_px, verify=True)

    def detect_for_redaction(self, frames: list[np.ndarray]) -> list[Detections]:
        """Faces to blur: down to ``redact_min_face_px``, without the precision checks (blurring
        a non-face costs nothing; missing a face shows a bystander)."""
        return self._detect(frames, still=True, min_face_px=self.config.redact_min_face_px, verify=False)

    def _detect(
        self, frames: list[np.ndarray], *, still: bool, min_face_px: int | None, verify: bool
    ) -> list[Detections]:
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        cfg = self.config
        min_face = min_face_px or cfg.min_face_px
        tiled = still and cfg.max_side_px is None
        raws = self._single_pass(frames, min_face, cfg.max_side_px or cfg.tile_px)
        if tiled:
            for i, f in enumerate(frames):
                if max(f.shape[:2]) > cfg.tile_px:
                    raws[i] = self._tiled(f, raws[i], min_face)
        out = []
        for f, found in zip(frames, raws, strict=True):
            ok = self._accept(f, found, verify)
            if still and cfg.retry_pad_fraction > 0 and self._needs_retry(ok, f.shape):
                ok = self._accept(f, self._retry(f, ok, min_face), verify)
            out.append(postprocess(ok.boxes, ok.points, f.shape, 0.0))
        return out

    # -- passes --------------------------------------------------------------------------------
    def _mtcnn_batch(self, batch: torch.Tensor, min_face: float) -> list[Raw]:
        """MTCNN on (B,H,W,3) uint8 of equal size -> raw faces per image (that image's pixels)."""
        from facenet_pytorch.models.utils.detect_face import detect_face

        cfg, m = self.config, self._mtcnn
        with torch.inference_mode():
            boxes_b, points_b = detect_face(
                batch,
                min_face,
                m.pnet,
                m.rnet,
                m.onet,
                list(cfg.stage_thresholds),
                cfg.pyramid_factor,
                self.device,
            )
        return [
            Raw(
                np.asarray(b, dtype=np.float32).reshape(-1, 5),
                np.asarray(p, dtype=np.float32).reshape(-1, 5, 2),
            )
            for b, p in zip(boxes_b, points_b, strict=True)
        ]

    def _single_pass(self, frames: list[np.ndarray], min_face: int, max_side: int) -> list[Raw]:
        """Each frame detected whole; a frame longer than ``max_side`` on a copy that long."""
        out: list[Raw] = [Raw.empty()] * len(frames)
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, frame in enumerate(frames):
            groups[frame.shape].append(i)
        for shape, idx in groups.items():
            batch = torch.from_numpy(np.stack([frames[i] for i in idx]))
            scale = 1.0
            longest = max(shape[0], shape[1])
            if longest > max_side:
                scale = max_side / longest
                batch = _resize(batch, (max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))))
            for i, raw in zip(idx, self._mtcnn_batch(batch, min_face), strict=True):
                out[i] = raw.shifted(0.0, 0.0, 1.0 / scale)
        return out

    def _tiled(self, frame: np.ndarray, coarse: Raw, min_face: int) -> Raw:
        """``coarse`` (the pass on a ``tile_px`` copy) plus native-resolution tiles, merged."""
        cfg = self.config
        h, w = frame.shape[:2]
        s = cfg.tile_px / max(h, w)
        # the coarse pass finds faces >= min_face / s: tiles must hold every smaller face whole
        overlap = min(cfg.tile_px // 2, math.ceil(min_face / s * 1.25) + 8)
        tiles = tile_grid(h, w, cfg.tile_px, overlap)
        parts = [coarse]
        for k in range(0, len(tiles), cfg.tile_batch):
            chunk = tiles[k : k + cfg.tile_batch]
            batch = torch.from_numpy(np.stack([frame[t.y0 : t.y0 + t.h, t.x0 : t.x0 + t.w] for t in chunk]))
            for t, raw in zip(chunk, self._mtcnn_batch(batch, min_face), strict=True):
                parts.append(drop_cut_at_inner_edges(raw, t).shifted(float(t.x0), float(t.y0)))
        merged = merge(Raw.concat(parts))
        log.debug("tiled %dx%d: %d tiles (overlap %d px), %d faces", w, h, len(tiles), overlap, len(merged))
        return merged

    def _needs_retry(self, raw: Raw, shape: tuple[int, ...]) -> bool:
        if len(raw) == 0:
            return True
        best = int(np.argmax(raw.boxes[:, 4]))
        return bool(touches_border(raw.boxes[best : best + 1], shape[0], shape[1])[0])

    def _retry(self, frame: np.ndarray, found: Raw, min_face: int) -> Raw:
        """Detect on a padded copy (at most ``tile_px`` long); its faces preferred where they overlap."""
        h, w = frame.shape[:2]
        padded, p = pad_for_retry(frame, self.config.retry_pad_fraction)
        again = self._single_pass([padded], min_face, self.config.tile_px)[0].shifted(-float(p), -float(p))
        if len(again):
            again = again.select(inside_fraction(again.boxes, h, w) >= _RETRY_MIN_INSIDE)
        both = Raw.concat([again, found])
        prio = np.concatenate([np.ones(len(again)), np.zeros(len(found))])
        return merge(both, prio)

    # -- precision -----------------------------------------------------------------------------
    def _accept(self, frame: np.ndarray, raw: Raw, verify: bool) -> Raw:
        """The faces that pass ``min_confidence`` and (``verify``) the plausibility checks."""
        cfg = self.config
        if len(raw) == 0:
            return raw
        raw = raw.select(raw.boxes[:, 4] >= cfg.min_confidence)
        if not verify or len(raw) == 0:
            return raw
        if cfg.check_landmarks:
            raw = raw.select(plausible_landmarks(raw.boxes, raw.points))
        unsure = np.flatnonzero(raw.boxes[:, 4] < cfg.sure_confidence)
        if unsure.size:
            onet = self._mtcnn.onet
            if not isinstance(onet, torch.nn.Module):  # pragma: no cover - facenet-pytorch changed
                raise ModelUnavailable("facenet-pytorch MTCNN has no O-Net module")
            grey = grey_scores(onet, frame, raw.boxes[unsure])
            keep = np.ones(len(raw), bool)
            keep[unsure] = grey >= cfg.grey_min_confidence
            raw = raw.select(keep)
        return raw


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
