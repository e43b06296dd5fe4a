"""Small JPEG crops of enrolled faces: what a reviewer sees beside a match candidate.

IndexFaces keeps one crop (at most ``max_side_px`` on its longer side) per indexed face, at
``<home>/thumbnails/<collection>/<FaceId>.jpg``. DeleteFaces, DeleteCollection, retention and
erasure remove them with the vectors: a thumbnail is biometric data of the person like the
vector is. Turned off with ``FACESTREAM_THUMBNAILS=off`` (or :class:`ThumbnailConfig`).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facestream.atomic import write_atomic
from facestream.errors import InvalidParameter
from facestream.paths import StateHome

log = logging.getLogger(__name__)

_COLLECTION = re.compile(r"^[A-Za-z0-9_.\-]{1,255}$")
_FACE_ID = re.compile(r"^[A-Za-z0-9_.\-:]{1,255}$")


class ThumbnailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="keep a small crop of each indexed face for reviewers")
    max_side_px: int = Field(160, ge=32, le=512, description="longer side of a thumbnail, pixels")
    pad: float = Field(0.25, ge=0.0, le=1.0, description="margin around the face box, fraction of its size")
    jpeg_quality: int = Field(85, ge=30, le=95, description="JPEG quality 30-95")

    @classmethod
    def from_env(cls) -> ThumbnailConfig:
        """``FACESTREAM_THUMBNAILS``: off/0/false/no disables; anything else (or unset) keeps the default."""
        raw = os.environ.get("FACESTREAM_THUMBNAILS", "").strip().lower()
        return cls(enabled=raw not in {"off", "0", "false", "no"})


def _check(collection: str, face_id: str | None = None) -> None:
    if not _COLLECTION.match(collection) or collection in {".", ".."}:
        raise InvalidParameter(f"collection {collection!r}: expected 1-255 characters of [A-Za-z0-9_.-]")
    if face_id is not None and (not _FACE_ID.match(face_id) or face_id in {".", ".."}):
        raise InvalidParameter(f"face id {face_id!r}: expected 1-255 characters of [A-Za-z0-9_.:-]")


def crop_jpeg(rgb: np.ndarray, box: np.ndarray, config: ThumbnailConfig | None = None) -> bytes:
    """The face ``box`` (x1, y1, x2, y2 pixels of ``rgb``, (H, W, 3) uint8) with a margin, as a
    JPEG at most ``max_side_px`` on its longer side."""
    from PIL import Image

    cfg = config or ThumbnailConfig()
    h, w = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    px, py = (x2 - x1) * cfg.pad, (y2 - y1) * cfg.pad
    left, top = max(0, int(x1 - px)), max(0, int(y1 - py))
    right, bottom = min(w, int(x2 + px) + 1), min(h, int(y2 + py) + 1)
    if right <= left or bottom <= top:
        raise InvalidParameter(f"face box {box.tolist()} lies outside the {w}x{h} image")
    img = Image.fromarray(np.ascontiguousarray(rgb[top:bottom, left:right]))
    img.thumbnail((cfg.max_side_px, cfg.max_side_px))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=cfg.jpeg_quality)
    return buf.getvalue()


class ThumbnailStore:
    """Files under ``root`` (``<home>/thumbnails``): ``<collection>/<FaceId>.jpg``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, collection: str, face_id: str) -> Path:
        _check(collection, face_id)
        return self.root / collection / f"{face_id}.jpg"

    def put(self, collection: str, face_id: str, jpeg: bytes) -> None:
        path = self._path(collection, face_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, jpeg)

    def get(self, collection: str, face_id: str) -> bytes | None:
        try:
            return self._path(collection, face_id).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, collection: str, face_ids: Iterable[str]) -> int:
        n = 0
        for fid in dict.fromkeys(face_ids):
            try:
                self._path(collection, fid).unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n

    def delete_everywhere(self, face_ids: Iterable[str]) -> int:
        """Delete these faces' thumbnails from every collection (erasure across collections)."""
        ids = list(dict.fromkeys(face_ids))
        return sum(self.delete(c, ids) for c in self.collections())

    def delete_collection(self, collection: str) -> int:
        _check(collection)
        d = self.root / collection
        if not d.is_dir():
            return 0
        n = sum(1 for _ in d.glob("*.jpg"))
        shutil.rmtree(d)
        return n

    def collections(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _COLLECTION.match(p.name))

    def face_ids(self, collection: str) -> list[str]:
        _check(collection)
        d = self.root / collection
        return sorted(p.stem for p in d.glob("*.jpg")) if d.is_dir() else []


def thumbnail_store(home: Path, config: ThumbnailConfig | None = None) -> ThumbnailStore | None:
    """The deployment's thumbnail store, or None when thumbnails are turned off."""
    cfg = config or ThumbnailConfig.from_env()
    return ThumbnailStore(StateHome(home).thumbnails) if cfg.enabled else None
