"""Geometry for still-image detection: tiles at native resolution, padded retries, merging.

Pure numpy. :class:`models.detector.MtcnnDetector` uses it to find every face of a large
photo without downscaling it (overlapping tiles plus one pass on a copy for the big faces)
and the faces of tight crops (a retry on a padded copy). Raw detections here are MTCNN's
``(n,5)`` boxes ``x1,y1,x2,y2,score`` and ``(n,5,2)`` points, unclipped, in image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: a tile face whose box comes this close (px) to an edge the tile shares with a neighbour
#: may be cut by the tile: it is left to the neighbour (or to the global pass)
_EDGE_SLACK_PX = 2.0


@dataclass(frozen=True)
class Raw:
    """MTCNN output before thresholds and clipping: ``boxes`` (n,5) with score, ``points`` (n,5,2)."""

    boxes: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> Raw:
        return Raw(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32))

    @staticmethod
    def concat(parts: list[Raw]) -> Raw:
        if not parts:
            return Raw.empty()
        return Raw(
            np.concatenate([p.boxes for p in parts]).astype(np.float32),
            np.concatenate([p.points for p in parts]).astype(np.float32),
        )

    def select(self, keep: np.ndarray) -> Raw:
        return Raw(self.boxes[keep], self.points[keep])

    def shifted(self, dx: float, dy: float, scale: float = 1.0) -> Raw:
        """Coordinates mapped by ``p * scale + (dx, dy)`` (scores kept)."""
        b = self.boxes.copy()
        b[:, [0, 2]] = b[:, [0, 2]] * scale + dx
        b[:, [1, 3]] = b[:, [1, 3]] * scale + dy
        p = self.points * scale + np.array([dx, dy], np.float32)
        return Raw(b.astype(np.float32), p.astype(np.float32))


@dataclass(frozen=True)
class Tile:
    """A window ``[y0:y0+h, x0:x0+w]`` of the image; ``inner`` edges are shared with a neighbour
    (left, top, right, bottom)."""

    x0: int
    y0: int
    w: int
    h: int
    inner: tuple[bool, bool, bool, bool]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Window starts covering ``[0, length)`` with windows of ``tile`` overlapping by >= ``overlap``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (n - 1)
    return [round(i * step) for i in range(n)]


def _side(length: int, tile: int, overlap: int) -> int:
    """The smallest tile side (<= ``tile``) that covers ``length`` with as few tiles as ``tile``
    would: the overlap stays what is needed, not whatever is left over."""
    if length <= tile:
        return length
    n = math.ceil((length - overlap) / (tile - overlap))
    return min(tile, math.ceil((length + (n - 1) * overlap) / n) + 1)  # +1: starts are rounded


def tile_grid(height: int, width: int, tile_px: int, overlap_px: int) -> list[Tile]:
    """Equal-sized tiles (so they batch) covering the image, neighbours overlapping >= ``overlap_px``.

    Every face no larger than ``overlap_px`` lies wholly inside at least one tile.
    """
    if overlap_px >= tile_px:
        raise ValueError(f"overlap {overlap_px} px must be smaller than the tile {tile_px} px")
    th, tw = _side(height, tile_px, overlap_px), _side(width, tile_px, overlap_px)
    ys, xs = _starts(height, th, overlap_px), _starts(width, tw, overlap_px)
    out = []
    for y in ys:
        for x in xs:
            inner = (x > 0, y > 0, x + tw < width, y + th < height)
            out.append(Tile(x, y, tw, th, inner))
    return out


def drop_cut_at_inner_edges(raw: Raw, tile: Tile) -> Raw:
    """Faces of one tile (tile coordinates) that no shared edge of the tile could have cut."""
    if len(raw) == 0:
        return raw
    b = raw.boxes
    s = _EDGE_SLACK_PX
    left, top, right, bottom = tile.inner
    ok = np.ones(len(raw), bool)
    if left:
        ok &= b[:, 0] > s
    if top:
        ok &= b[:, 1] > s
    if right:
        ok &= b[:, 2] < tile.w - s
    if bottom:
        ok &= b[:, 3] < tile.h - s
    return raw.select(ok)


def _iou_and_min(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU and intersection over the smaller area of (n,4) boxes ``a`` vs (m,4) boxes ``b``."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    small = np.minimum(area_a[:, None], area_b[None, :])
    return inter / np.maximum(union, 1e-6), inter / np.maximum(small, 1e-6)


def merge(raw: Raw, priority: np.ndarray | None = None, iou: float = 0.4, contained: float = 0.7) -> Raw:
    """Greedy NMS across passes: a face overlapping a kept one (IoU >= ``iou``, or mostly inside
    it or around it: intersection over the smaller >= ``contained``) is the same face.

    Kept first: higher ``priority`` (e.g. a pass whose view of the face is better), then score.
    """
    n = len(raw)
    if n <= 1:
        return raw
    prio = np.zeros(n) if priority is None else priority.astype(np.float64)
    order = np.lexsort((-raw.boxes[:, 4], -prio))
    iou_m, min_m = _iou_and_min(raw.boxes[:, :4], raw.boxes[:, :4])
    dup = (iou_m >= iou) | (min_m >= contained)
    alive = np.ones(n, bool)
    keep = []
    for i in order:
        if not alive[i]:
            continue
        keep.append(i)
        alive &= ~dup[i]
    return raw.select(np.array(keep, dtype=np.int64))


def pad_for_retry(rgb: np.ndarray, fraction: float) -> tuple[np.ndarray, int]:
    """``rgb`` on a canvas of its mean colour with a border of ``fraction`` of its longer side
    on every side, and that border (px): a face cut by the frame gets the context MTCNN needs."""
    h, w = rgb.shape[:2]
    p = max(1, round(fraction * max(h, w)))
    out = np.empty((h + 2 * p, w + 2 * p, 3), np.uint8)
    out[:] = rgb.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    out[p : p + h, p : p + w] = rgb
    return out, p


def touches_border(boxes: np.ndarray, height: int, width: int, slack_px: float = 1.0) -> np.ndarray:
    """(n,) bool: which (unclipped) boxes reach the image edge."""
    return (
        (boxes[:, 0] <= slack_px)
        | (boxes[:, 1] <= slack_px)
        | (boxes[:, 2] >= width - slack_px)
        | (boxes[:, 3] >= height - slack_px)
    )


def inside_fraction(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n,) share of each box's area inside the image."""
    x1, y1 = np.clip(boxes[:, 0], 0, width), np.clip(boxes[:, 1], 0, height)
    x2, y2 = np.clip(boxes[:, 2], 0, width), np.clip(boxes[:, 3], 0, height)
    inner = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 1e-6, None) * np.clip(boxes[:, 3] - boxes[:, 1], 1e-6, None)
    return inner / area
