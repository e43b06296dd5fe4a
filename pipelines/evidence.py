"""Evidence of match events: redacted frames and clips, and their export.

Every face in an exported frame or clip is blurred except the matched one, so a bystander's
face never leaves the system as evidence. :func:`redact` does the blurring (pixelate, then
Gaussian blur, on each face box padded by 20%: strong enough that MTCNN finds no face there
and the embedding no longer matches the person; ``tests/unit/test_redaction.py`` checks both
on real photos). :class:`EvidenceStore` keeps one redacted JPEG per event
(``<home>/evidence/<EventId>.jpg``, with a small SQLite index for retention and erasure).

``facestream events export EVENT_ID --frame OUT.jpg`` copies an event's stored frame;
``--clip OUT.mp4 --seconds N`` re-decodes a file source around the event's
``FrameOffsetInSeconds`` with PyAV, keeps the face most like the matched stored face and
blurs every other one, and writes H.264. Both are audited (``ExportEventMedia``, purpose
required). The command itself is :mod:`facestream.cli.events`; this module holds what it uses.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facestream.atomic import replacing, write_atomic
from facestream.errors import InvalidParameter, ResourceNotFound
from facestream.paths import StateHome
from facestream.similarity import DEFAULT_MATCH_THRESHOLD
from facestream.sqlite import connect as sqlite_connect

log = logging.getLogger(__name__)

#: fraction of a face box's width/height added on every side before blurring (hair, ears, chin)
PAD = 0.2
#: a blurred face becomes about this many blocks across before the Gaussian pass
_BLOCKS = 6
_EVENT_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class SmallFaceFinder:
    """Every face to blur in a frame, down to ``DetectorConfig.redact_min_face_px`` (12 px).

    The searchable minimum (28 px on streams) is about whom we may search, not whom we may
    show: a preview, an evidence frame or an exported clip blurs every face it can find. Runs
    MTCNN in this process on CPU (lazily loaded, a few MB), only for the frames that leave the
    system, so the stream's own detection path keeps its cost.
    """

    def __init__(self, config: Any = None) -> None:
        self._config = config
        self._detector: Any = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load the detector now (torch and MTCNN take seconds on first use): called when a
        processor opens, so the first evidence frame or preview does not stall its results."""
        with self._lock:
            self._load()

    def _load(self) -> Any:
        if self._detector is None:
            import torch

            from models.detector import MtcnnDetector

            self._detector = MtcnnDetector(self._config, torch.device("cpu"))
        return self._detector

    def boxes(self, rgb: np.ndarray) -> np.ndarray:
        """(n,4) float32 x1,y1,x2,y2 px of the faces in ``rgb`` (H,W,3) uint8."""
        with self._lock:
            boxes: np.ndarray = self._load().detect_for_redaction([rgb])[0].boxes
            return boxes


def with_small_faces(boxes: np.ndarray, found: np.ndarray) -> np.ndarray:
    """``boxes`` (n,4) followed by the ``found`` boxes that overlap none of them (so an index into
    ``boxes``, e.g. the kept face, still points at the same face)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    found = np.asarray(found, np.float32).reshape(-1, 4)
    if len(found) == 0 or len(boxes) == 0:
        return np.concatenate([boxes, found])
    a, b = found[:, None, :], boxes[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    smaller = np.maximum(np.minimum(area_a, area_b), 1e-6)
    same = (inter / smaller >= 0.5).any(axis=1)
    return np.concatenate([boxes, found[~same]])


def _padded(box: np.ndarray, w: int, h: int, pad: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    px, py = (x2 - x1) * pad, (y2 - y1) * pad
    left, top = max(0, int(np.floor(x1 - px))), max(0, int(np.floor(y1 - py)))
    right, bottom = min(w, int(np.ceil(x2 + px))), min(h, int(np.ceil(y2 + py)))
    return left, top, right, bottom


def _obscure(region: np.ndarray) -> np.ndarray:
    """Pixelate to about ``_BLOCKS`` blocks across, then blur the block edges away."""
    from PIL import Image, ImageFilter

    rh, rw = region.shape[:2]
    img = Image.fromarray(np.ascontiguousarray(region))
    small = img.resize(
        (max(1, rw * _BLOCKS // max(rw, rh)), max(1, rh * _BLOCKS // max(rw, rh))), Image.Resampling.BOX
    )
    big = small.resize((rw, rh), Image.Resampling.NEAREST)
    radius = max(2.0, max(rw, rh) / (2.0 * _BLOCKS))
    return np.asarray(big.filter(ImageFilter.GaussianBlur(radius)), dtype=np.uint8)


def redact(rgb: np.ndarray, boxes: np.ndarray, keep: int | None, *, pad: float = PAD) -> np.ndarray:
    """A copy of ``rgb`` with every face box blurred except ``boxes[keep]`` (None: blur all).

    ``rgb``: (H, W, 3) uint8; ``boxes``: (n, 4) float x1, y1, x2, y2 in pixels of ``rgb``.
    Each box is padded by ``pad`` of its size on every side. Where a padded box overlaps the
    kept face, the kept face's own (unpadded) box stays sharp.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InvalidParameter(f"redact: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if keep is not None and not 0 <= keep < len(boxes):
        raise InvalidParameter(f"redact: keep={keep} but there are {len(boxes)} face(s)")
    h, w = rgb.shape[:2]
    out = rgb.copy()
    for i, box in enumerate(boxes):
        if i == keep:
            continue
        left, top, right, bottom = _padded(box, w, h, pad)
        if right - left < 1 or bottom - top < 1:
            continue
        out[top:bottom, left:right] = _obscure(out[top:bottom, left:right])
    if keep is not None:
        left, top, right, bottom = _padded(boxes[keep], w, h, 0.0)
        out[top:bottom, left:right] = rgb[top:bottom, left:right]
    return out


def encode_jpeg(rgb: np.ndarray, *, max_side_px: int | None = None, quality: int = 90) -> bytes:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb))
    if max_side_px is not None:
        img.thumbnail((max_side_px, max_side_px))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def redacted_preview(
    rgb: np.ndarray, boxes: np.ndarray, finder: SmallFaceFinder, *, max_side_px: int, quality: int = 85
) -> bytes:
    """A JPEG of ``rgb`` at most ``max_side_px`` long with every face blurred: ``boxes`` (the
    stream's faces) and every smaller face ``finder`` sees."""
    return encode_jpeg(
        redact(rgb, with_small_faces(boxes, finder.boxes(rgb)), None),
        max_side_px=max_side_px,
        quality=quality,
    )


def check_event_id(event_id: str) -> str:
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        raise InvalidParameter(f"event id {event_id!r}: expected 1-128 characters of [A-Za-z0-9_.-]")
    return event_id


class EvidenceStore:
    """One redacted JPEG per event under ``root`` (``<home>/evidence``), indexed for retention.

    The index (``root/index.sqlite3``) holds when each frame was saved and, when the caller
    says, whose match it shows (FaceId, ExternalImageId) so erasure can find it without the
    event. Thread-safe; several processes may share a root (SQLite locking, atomic renames).
    """

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self._clock = clock
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite_connect(root / "index.sqlite3", wal=True)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS frames (event_id TEXT PRIMARY KEY, saved_ts REAL NOT NULL, "
                "face_id TEXT, external_image_id TEXT)"
            )

    def path(self, event_id: str) -> Path:
        return self.root / f"{check_event_id(event_id)}.jpg"

    def save_frame(
        self,
        event_id: str,
        rgb: np.ndarray,
        boxes: np.ndarray,
        keep: int | None,
        *,
        face_id: str | None = None,
        external_image_id: str | None = None,
    ) -> Path:
        """Redact ``rgb`` (every face but ``boxes[keep]`` blurred) and keep it as the event's frame.

        A later revision of the same event replaces the frame. ``face_id``/``external_image_id``
        (the matched stored face) let erasure find the frame by person.
        """
        path = self.path(event_id)
        write_atomic(path, encode_jpeg(redact(rgb, boxes, keep)), fsync=True)
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO frames VALUES (?,?,?,?) ON CONFLICT(event_id) DO UPDATE SET "
                "saved_ts=excluded.saved_ts, face_id=COALESCE(excluded.face_id, frames.face_id), "
                "external_image_id=COALESCE(excluded.external_image_id, frames.external_image_id)",
                (event_id, float(self._clock()), face_id, external_image_id),
            )
        return path

    def get(self, event_id: str) -> bytes | None:
        path = self.path(event_id)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def event_ids_of(
        self, *, external_image_id: str | None = None, face_ids: Iterable[str] = ()
    ) -> list[str]:
        """Events whose saved frame was recorded as showing this person."""
        out: set[str] = set()
        fids = list(face_ids)
        with self._lock:
            if external_image_id is not None:
                out.update(
                    r[0]
                    for r in self._db.execute(
                        "SELECT event_id FROM frames WHERE external_image_id = ?", (external_image_id,)
                    )
                )
            for i in range(0, len(fids), 500):
                chunk = fids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                out.update(
                    r[0]
                    for r in self._db.execute(
                        f"SELECT event_id FROM frames WHERE face_id IN ({marks})",  # noqa: S608 - placeholders only
                        chunk,
                    )
                )
        return sorted(out)

    def erase(self, event_ids: Iterable[str]) -> int:
        """Delete the frames of these events; returns how many files were removed."""
        n = 0
        ids = [check_event_id(e) for e in dict.fromkeys(event_ids)]
        for eid in ids:
            try:
                self.path(eid).unlink()
                n += 1
            except FileNotFoundError:
                pass
        with self._lock, self._db:
            self._db.executemany("DELETE FROM frames WHERE event_id = ?", [(e,) for e in ids])
        return n

    def delete_older_than(self, ts_s: float) -> int:
        """Retention: delete frames saved before ``ts_s`` (epoch s; the index, else file mtime)."""
        with self._lock:
            indexed = dict(self._db.execute("SELECT event_id, saved_ts FROM frames").fetchall())
        old = []
        for p in self.root.glob("*.jpg"):
            saved = indexed.get(p.stem)
            if saved is None:
                try:
                    saved = p.stat().st_mtime
                except FileNotFoundError:
                    continue
            if saved < ts_s:
                old.append(p.stem)
        return self.erase(old)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def evidence_root(home: Path) -> Path:
    return StateHome(home).evidence


# --- export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipReport:
    frames: int
    faces: int
    kept: int
    fps: float
    start_s: float
    end_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "Frames": self.frames,
            "FacesSeen": self.faces,
            "FramesWithMatchedFace": self.kept,
            "Fps": round(self.fps, 3),
            "StartOffsetInSeconds": round(self.start_s, 3),
            "EndOffsetInSeconds": round(self.end_s, 3),
        }


def export_clip(
    analyzer: Any,
    source: Path,
    out: Path,
    *,
    offset_s: float,
    seconds: float,
    reference: np.ndarray | None,
    model: str,
    keep_min_similarity: float = DEFAULT_MATCH_THRESHOLD,
    max_side_px: int | None = None,
) -> ClipReport:
    """Write ``seconds`` of ``source`` centred on ``offset_s`` as H.264 with faces redacted.

    In each frame the face most like ``reference`` (an L2-normalised embedding of the matched
    stored face) stays sharp if its similarity is at least ``keep_min_similarity``; every other
    face is blurred, down to ``redact_min_face_px`` (:class:`SmallFaceFinder`). Without a
    reference every face is blurred.
    """
    import av

    from facestream.similarity import cosine_to_similarity

    if not 0 < seconds <= 600:
        raise InvalidParameter(f"--seconds must be in (0, 600], got {seconds}")
    frames = faces = kept = 0
    fps = 0.0
    small = SmallFaceFinder(getattr(getattr(analyzer, "config", None), "detector", None))
    inp = av.open(str(source))
    outc: Any = None
    try:
        if inp.duration and offset_s * 1_000_000 > inp.duration:
            # A looping file source: offsets of later loops add up (pipelines/source.py).
            offset_s %= inp.duration / 1_000_000
        start = max(0.0, offset_s - seconds / 2.0)
        end = start + seconds
        vs = inp.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or 25
        fps = float(rate)
        tb = float(vs.time_base) if vs.time_base is not None else 1.0 / fps
        if start > 0:
            inp.seek(int(start / tb), stream=vs, backward=True, any_frame=False)
        with replacing(out, suffix=".tmp.mp4") as tmp:  # a failed export leaves no partial clip
            outc = av.open(str(tmp), "w")
            ost: Any = None
            for frame in inp.decode(vs):
                t = float(frame.time) if frame.time is not None else start + frames / fps
                if t < start - 1e-6:
                    continue
                if t >= end:
                    break
                rgb = frame.to_ndarray(format="rgb24")
                if max_side_px is not None and max(rgb.shape[:2]) > max_side_px:
                    from PIL import Image

                    img = Image.fromarray(rgb)
                    img.thumbnail((max_side_px, max_side_px))
                    rgb = np.asarray(img)
                h, w = rgb.shape[:2]
                rgb = rgb[: h - h % 2, : w - w % 2]  # yuv420p needs even sides
                batch = analyzer.analyze([rgb])[0]
                keep: int | None = None
                if len(batch) and reference is not None and batch.embeddings is not None:
                    sims = cosine_to_similarity(model, batch.embeddings @ reference)
                    best = int(np.argmax(sims))
                    if float(sims[best]) >= keep_min_similarity:
                        keep = best
                faces += len(batch)
                kept += keep is not None
                red = redact(rgb, with_small_faces(batch.boxes, small.boxes(rgb)), keep)
                if ost is None:
                    ost = outc.add_stream("libx264", rate=rate)
                    ost.width, ost.height = red.shape[1], red.shape[0]
                    ost.pix_fmt = "yuv420p"
                for pkt in ost.encode(av.VideoFrame.from_ndarray(red, format="rgb24")):
                    outc.mux(pkt)
                frames += 1
            if ost is None:
                raise InvalidParameter(f"no frames between {start:.2f}s and {end:.2f}s in the source")
            for pkt in ost.encode():
                outc.mux(pkt)
            outc.close()
            outc = None
    finally:
        inp.close()
        if outc is not None:
            outc.close()
    return ClipReport(frames=frames, faces=faces, kept=kept, fps=fps, start_s=start, end_s=end)


def find_event(home: Path, events_path: Path, event_id: str) -> dict[str, Any]:
    """The event's latest record: the event store first, then the review candidates."""
    from pipelines.sinks import EventStore

    if events_path.exists():
        es = EventStore(events_path)
        try:
            rec = es.get(event_id)
        finally:
            es.close()
        if rec is not None:
            return rec
    review = StateHome(home).review_db
    if review.exists():
        from pipelines.review import ReviewStore

        rs = ReviewStore(review)
        try:
            return dict(rs.get(event_id).record)
        except ResourceNotFound:
            pass
        finally:
            rs.close()
    raise ResourceNotFound(f"match event {event_id!r} does not exist")
