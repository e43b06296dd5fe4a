"""Fast MTCNN for video streams: motion gate, detect every k frames, refine in between.

The still-image path keeps full per-frame MTCNN (:class:`models.detector.MtcnnDetector`); this
module serves frames that arrive with a *stream key*. For each such frame, per-stream state
(keyed by the stream key, so a replica that has never seen the stream simply runs a full
detection) decides among:

* **reuse** — the grey thumbnail barely changed since the frame the last faces were found on
  (motion gate): the previous detections are returned as they are;
* **refine** — fewer than ``detect_every`` frames since the last full detection: only R-Net and
  O-Net run, on a few boxes around each previous face (at full resolution). A face that is
  not found again forces a full detection of the same frame;
* **full** — P-Net pyramid on a copy at most ``detect_max_side_px`` long (pyramid sized from
  ``stream.min_face_px``, the smallest face the tracker will search; scales capped at 1 in that
  copy), then R-Net/O-Net on crops of the full
  resolution frame. Equal-sized frames share one P-Net pass; R/O-Net crops of every frame of
  a call share one forward pass each.

Crops come from ``torchvision.ops.roi_align`` in one call per frame instead of one resize
per candidate (MTCNN's main CPU cost besides the nets themselves).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn.functional import interpolate
from torchvision.ops import batched_nms, roi_align

from facestream.config import DetectorConfig
from models.detector import Detections, postprocess

log = logging.getLogger(__name__)

# R-Net sees roi_align crops (an approximation of MTCNN's area resize): a slightly lower R-Net
# threshold keeps borderline faces for O-Net, which sees exact area-resized crops.
_RNET_SLACK = 0.1
_THUMB = (24, 32)  # grey thumbnail (h, w) of the motion gate
# Boxes tried around each previous face when refining: (dx, dy, scale) in units of the face side.
_JITTER = (
    (0.0, 0.0, 1.0),
    (0.0, 0.0, 1.25),
    (0.0, 0.0, 0.85),
    (-0.2, 0.0, 1.1),
    (0.2, 0.0, 1.1),
    (0.0, -0.2, 1.1),
    (0.0, 0.2, 1.1),
)


@dataclass
class StreamState:
    """What one stream's last analysed frame left behind."""

    shape: tuple[int, ...]
    thumb: np.ndarray  # thumbnail of the frame ``last`` was found on
    last: Detections
    since_full: int  # frames since the last full detection (0 = this one was full)
    seen: float = field(default_factory=time.monotonic)


@dataclass
class DetectStats:
    """Counts of what the fast path did (for tests, benchmarks and logs)."""

    full: int = 0
    refined: int = 0
    reused: int = 0
    lost: int = 0  # refinements that fell back to a full detection
    state_misses: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def thumbnail(frame: np.ndarray) -> np.ndarray:
    """(24, 32) float32 grey thumbnail: block means of a strided subsample (about 1 ms at 1080p)."""
    h, w = frame.shape[:2]
    th, tw = _THUMB
    sy, sx = max(1, h // (th * 4)), max(1, w // (tw * 4))
    sub = frame[::sy, ::sx].astype(np.float32)
    grey = sub[..., 0] * 0.299 + sub[..., 1] * 0.587 + sub[..., 2] * 0.114
    t = torch.from_numpy(np.ascontiguousarray(grey))[None, None]
    return interpolate(t, size=_THUMB, mode="area")[0, 0].numpy()


def pyramid_scales(
    height: int, width: int, min_face_px: float, factor: float, cap: float = 1.0
) -> list[float]:
    """MTCNN's pyramid for faces >= ``min_face_px``: 12/min_face, then times ``factor`` while the
    shorter side stays >= 12 px. Scales above ``cap`` are dropped (no upsampling past it)."""
    scale = 12.0 / min_face_px
    minl = min(height, width) * scale
    scales: list[float] = []
    while minl >= 12:
        if scale <= cap + 1e-9:
            scales.append(scale)
        scale *= factor
        minl *= factor
    if not scales and min(height, width) * cap >= 12 and 12.0 / min_face_px > cap:
        scales.append(cap)  # every configured scale upsampled: run the capped one
    return scales


class FastMtcnn:
    """MTCNN's three stages, vectorised: shared by full detection and refinement."""

    def __init__(self, mtcnn: torch.nn.Module, config: DetectorConfig, device: torch.device) -> None:
        # Channels-last copies: CPU max-pooling and convs are ~3x faster in NHWC; same outputs (1e-6).
        self.pnet, self.rnet, self.onet = (
            _channels_last(net) for net in (mtcnn.pnet, mtcnn.rnet, mtcnn.onet)
        )
        self.config = config
        self.device = device

    # -- stage 1 -------------------------------------------------------------------------------
    def propose(self, imgs: torch.Tensor) -> list[torch.Tensor]:
        """P-Net proposals for a batch (B,3,H,W) float of equal-sized frames: (n,4) full-res boxes each."""
        from facenet_pytorch.models.utils.detect_face import generateBoundingBox

        cfg = self.config
        b, _, h, w = imgs.shape
        s = min(1.0, cfg.stream.detect_max_side_px / max(h, w))
        small = imgs
        if s < 1.0:
            small = interpolate(imgs, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
        sh, sw = small.shape[2:]
        boxes_l, inds_l = [], []
        for scale in pyramid_scales(sh, sw, cfg.stream.min_face_px * s, cfg.pyramid_factor):
            im = interpolate(small, size=(int(sh * scale + 1), int(sw * scale + 1)), mode="area")
            reg, probs = self.pnet(_norm(im))
            # scale * s maps P-Net's grid straight to full-resolution pixels
            bx, ix = generateBoundingBox(reg, probs[:, 1], scale * s, cfg.stage_thresholds[0])
            pick = batched_nms(bx[:, :4], bx[:, 4], ix, 0.5)
            boxes_l.append(bx[pick])
            inds_l.append(ix[pick])
        if not boxes_l:
            return [torch.zeros((0, 4)) for _ in range(b)]
        boxes, inds = torch.cat(boxes_l), torch.cat(inds_l)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds = boxes[pick], inds[pick]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        out = torch.stack(
            [
                boxes[:, 0] + boxes[:, 5] * regw,
                boxes[:, 1] + boxes[:, 6] * regh,
                boxes[:, 2] + boxes[:, 7] * regw,
                boxes[:, 3] + boxes[:, 8] * regh,
            ],
            dim=1,
        )
        return [_square(out[inds == i]) for i in range(b)]

    # -- stages 2 and 3 ------------------------------------------------------------------------
    def refine(
        self, imgs: list[torch.Tensor], boxes: list[torch.Tensor]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """R-Net then O-Net on candidate boxes (n,4) of each image (1,3,H,W) float.

        Returns per image (boxes (m,5) with score, landmarks (m,5,2)) in full-res pixels.
        """
        from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg

        t = self.config.stage_thresholds
        inds = torch.cat([torch.full((len(bx),), i, dtype=torch.long) for i, bx in enumerate(boxes)])
        cand = torch.cat(boxes) if boxes else torch.zeros((0, 4))
        empty = [(np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)) for _ in imgs]
        if cand.shape[0] == 0:
            return empty
        # R-Net
        crops, keep = _crops(imgs, cand, inds, 24)
        cand, inds = cand[keep], inds[keep]
        if cand.shape[0] == 0:
            return empty
        reg, prob = self.rnet(_norm(crops))
        score = prob[:, 1]
        ok = score > t[1] - _RNET_SLACK
        cand = torch.cat([cand[ok], score[ok, None]], dim=1)
        inds, reg = inds[ok], reg[ok]
        pick = batched_nms(cand[:, :4], cand[:, 4], inds, 0.7)
        cand, inds, reg = cand[pick], inds[pick], reg[pick]
        cand = _square(bbreg(cand, reg)[:, :4])
        if cand.shape[0] == 0:
            return empty
        # O-Net
        crops, keep = _crops(imgs, cand, inds, 48, exact=True)
        cand, inds = cand[keep], inds[keep]
        if cand.shape[0] == 0:
            return empty
        reg, pts, prob = self.onet(_norm(crops))
        score = prob[:, 1]
        ok = score > t[2]
        cand = torch.cat([cand[ok], score[ok, None]], dim=1)
        inds, reg, pts = inds[ok], reg[ok], pts[ok]
        wi = cand[:, 2] - cand[:, 0] + 1
        hi = cand[:, 3] - cand[:, 1] + 1
        px = wi[:, None] * pts[:, :5] + cand[:, 0:1] - 1
        py = hi[:, None] * pts[:, 5:10] + cand[:, 1:2] - 1
        points = torch.stack([px, py], dim=2)
        cand = bbreg(cand, reg)
        pick = batched_nms_numpy(cand[:, :4], cand[:, 4], inds, 0.7, "Min")
        cand, inds, points = cand[pick], inds[pick], points[pick]
        out = []
        for i in range(len(imgs)):
            sel = inds == i
            out.append((cand[sel].numpy().astype(np.float32), points[sel].numpy().astype(np.float32)))
        return out


def _channels_last(net: object) -> torch.nn.Module:
    assert isinstance(net, torch.nn.Module)
    return copy.deepcopy(net).to(memory_format=torch.channels_last).eval()


def _norm(x: torch.Tensor) -> torch.Tensor:
    return ((x - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """MTCNN's ``rerec``: the square of side max(w, h) around each box's centre (new tensor)."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def _crops(
    imgs: list[torch.Tensor], boxes: torch.Tensor, inds: torch.Tensor, size: int, *, exact: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Area-like resampled crops (n,3,size,size) of MTCNN's clipped pixel boxes, and which boxes had one.

    MTCNN crops rows y-1..ey-1 / columns x-1..ex-1 of the truncated box clipped to the frame;
    ``roi_align`` (2x2 bilinear samples per output pixel) approximates that area resampling in
    one call per frame.
    """
    b = boxes.trunc()
    parts, keeps = [], []
    order = []
    for i, img in enumerate(imgs):
        sel = torch.nonzero(inds == i).flatten()
        if sel.numel() == 0:
            continue
        h, w = img.shape[2], img.shape[3]
        bb = b[sel]
        x = bb[:, 0].clamp(min=1) - 1
        y = bb[:, 1].clamp(min=1) - 1
        ex = bb[:, 2].clamp(max=w)
        ey = bb[:, 3].clamp(max=h)
        ok = (ex > x) & (ey > y)
        sel, x, y, ex, ey = sel[ok], x[ok], y[ok], ex[ok], ey[ok]
        if sel.numel() == 0:
            continue
        rois = torch.stack([torch.zeros_like(x), x, y, ex, ey], dim=1)
        if exact:  # MTCNN's own resize, one crop at a time (for the few O-Net candidates)
            parts.append(
                torch.cat(
                    [
                        interpolate(
                            img[:, :, int(y0) : int(y1), int(x0) : int(x1)], size=(size, size), mode="area"
                        )
                        for x0, y0, x1, y1 in rois[:, 1:].tolist()
                    ]
                )
            )
        else:
            parts.append(
                roi_align(img, rois, (size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
            )
        keeps.append(sel)
        order.append(i)
    if not parts:
        return torch.zeros((0, 3, size, size)), torch.zeros((0,), dtype=torch.long)
    # Candidates are grouped by image already (inds is sorted); keep returns them in that order.
    return torch.cat(parts), torch.cat(keeps)


def _candidates_around(det: Detections) -> torch.Tensor:
    """Square boxes around each previous face (the jitter set) for R-Net to score and regress."""
    if len(det) == 0:
        return torch.zeros((0, 4))
    b = torch.from_numpy(det.boxes.astype(np.float32))
    cx = (b[:, 0] + b[:, 2]) / 2
    cy = (b[:, 1] + b[:, 3]) / 2
    side = torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    out = []
    for dx, dy, sc in _JITTER:
        half = side * sc / 2
        x0, y0 = cx + dx * side, cy + dy * side
        out.append(torch.stack([x0 - half, y0 - half, x0 + half, y0 + half], dim=1))
    return torch.cat(out)


class StreamDetector:
    """Per-stream fast detection on top of a loaded facenet-pytorch MTCNN module.

    ``detect(frames, keys)`` takes RGB uint8 frames and one stream key per frame. Thread-safe
    (one lock: the state and the nets are shared by the replica's batch threads).
    """

    def __init__(self, mtcnn: torch.nn.Module, config: DetectorConfig, device: torch.device) -> None:
        self.config = config
        self.core = FastMtcnn(mtcnn, config, device)
        self.device = device
        self._states: OrderedDict[str, StreamState] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = DetectStats()

    def forget(self, key: str) -> None:
        """Drop a stream's state (its next frame gets a full detection)."""
        with self._lock:
            self._states.pop(key, None)

    def detect(self, frames: list[np.ndarray], keys: list[str]) -> list[Detections]:
        if len(frames) != len(keys):
            raise ValueError(f"{len(frames)} frames but {len(keys)} stream keys")
        with self._lock, torch.inference_mode():
            out: list[Detections | None] = [None] * len(frames)
            # Frames of one stream in one call are handled in order: round r takes each stream's r-th.
            rounds: dict[int, list[int]] = defaultdict(list)
            seen: dict[str, int] = defaultdict(int)
            for i, k in enumerate(keys):
                rounds[seen[k]].append(i)
                seen[k] += 1
            for r in sorted(rounds):
                idx = rounds[r]
                for i, det in zip(
                    idx, self._round([frames[i] for i in idx], [keys[i] for i in idx]), strict=True
                ):
                    out[i] = det
            return [d if d is not None else Detections.empty() for d in out]

    def _round(self, frames: list[np.ndarray], keys: list[str]) -> list[Detections]:
        cfg = self.config.stream
        now = time.monotonic()
        self._expire(now)
        out: list[Detections | None] = [None] * len(frames)
        thumbs = [thumbnail(f) for f in frames]
        full: list[int] = []
        refine: list[int] = []
        carry: dict[int, Detections] = {}  # previous faces also tried in a full detection
        for i, (frame, key) in enumerate(zip(frames, keys, strict=True)):
            st = self._states.get(key)
            if st is None or st.shape != frame.shape:
                self.stats.state_misses += 1
                full.append(i)
                continue
            change = float(np.abs(thumbs[i] - st.thumb).mean())
            due = st.since_full + 1 >= cfg.detect_every
            if change >= cfg.scene_cut_threshold:
                full.append(i)
            elif due:
                full.append(i)
                carry[i] = st.last
            elif change < cfg.motion_threshold:
                out[i] = st.last
                self.stats.reused += 1
                st.since_full += 1
                st.seen = now
                self._states.move_to_end(key)
            elif len(st.last) == 0:
                full.append(i)  # nothing to refine: look for faces
            else:
                refine.append(i)
        imgs = {i: _to_tensor(frames[i]) for i in full + refine}
        if refine:
            prev = [self._states[keys[i]].last for i in refine]
            res = self.core.refine([imgs[i] for i in refine], [_candidates_around(p) for p in prev])
            # Hysteresis: a face already found at min_confidence stays found while O-Net still
            # accepts it (stage threshold), so a borderline face does not flip the stream back
            # to full detections. Lost means a face big enough to search is not found again.
            keep_conf = min(self.config.min_confidence, self.config.stage_thresholds[2])
            for i, p, (boxes, pts) in zip(refine, prev, res, strict=True):
                det = postprocess(boxes, pts, frames[i].shape, keep_conf)
                if not _all_found(_at_least(p, cfg.min_face_px), det):
                    self.stats.lost += 1
                    full.append(i)
                    carry[i] = p
                    continue
                self.stats.refined += 1
                out[i] = det
                self._remember(keys[i], frames[i].shape, thumbs[i], det, full=False, now=now)
        if full:
            for i, det in zip(
                full,
                self._full([frames[i] for i in full], [imgs[i] for i in full], [carry.get(i) for i in full]),
                strict=True,
            ):
                self.stats.full += 1
                out[i] = det
                self._remember(keys[i], frames[i].shape, thumbs[i], det, full=True, now=now)
        return [d if d is not None else Detections.empty() for d in out]

    def _full(
        self, frames: list[np.ndarray], imgs: list[torch.Tensor], carry: list[Detections | None]
    ) -> list[Detections]:
        """P-Net proposals (plus boxes around the stream's previous faces, as a tracker would) -> R/O-Net."""
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, f in enumerate(frames):
            groups[f.shape].append(i)
        proposals: list[torch.Tensor] = [torch.zeros((0, 4))] * len(frames)
        for idx in groups.values():
            for i, p in zip(idx, self.core.propose(torch.cat([imgs[i] for i in idx])), strict=True):
                prev = carry[i]
                proposals[i] = p if prev is None else torch.cat([p, _candidates_around(prev)])
        res = self.core.refine(imgs, proposals)
        return [
            postprocess(b, p, f.shape, self.config.min_confidence)
            for f, (b, p) in zip(frames, res, strict=True)
        ]

    def _remember(
        self, key: str, shape: tuple[int, ...], thumb: np.ndarray, det: Detections, *, full: bool, now: float
    ) -> None:
        st = self._states.get(key)
        if st is None:
            st = StreamState(shape=shape, thumb=thumb, last=det, since_full=0, seen=now)
            self._states[key] = st
        st.shape, st.thumb, st.last, st.seen = shape, thumb, det, now
        st.since_full = 0 if full else st.since_full + 1
        self._states.move_to_end(key)
        while len(self._states) > self.config.stream.max_streams:
            self._states.popitem(last=False)

    def _expire(self, now: float) -> None:
        ttl = self.config.stream.state_ttl_s
        while self._states:
            key, st = next(iter(self._states.items()))
            if now - st.seen <= ttl:
                break
            del self._states[key]


def _at_least(det: Detections, min_side_px: float) -> Detections:
    """The faces whose shorter side is at least ``min_side_px``."""
    if len(det) == 0:
        return det
    wh = det.boxes[:, 2:4] - det.boxes[:, 0:2]
    keep = np.minimum(wh[:, 0], wh[:, 1]) >= min_side_px
    return Detections(boxes=det.boxes[keep], scores=det.scores[keep], landmarks=det.landmarks[keep])


def _all_found(prev: Detections, now: Detections, min_iou: float = 0.3) -> bool:
    """Whether every previous face overlaps a refined face (IoU >= ``min_iou``)."""
    if len(prev) == 0:
        return True
    if len(now) == 0:
        return False
    a, b = prev.boxes[:, None, :], now.boxes[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / np.maximum(area_a + area_b - inter, 1e-6)
    return bool((iou.max(axis=1) >= min_iou).all())


def _to_tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
