"""Where facestream keeps its state: the default state home and the one layout under it.

The state home is ``$FACESTREAM_HOME`` when set, else the user's data directory
(``$XDG_DATA_HOME/facestream``, by default ``~/.local/share/facestream``): never the working
directory, so one operator has one store, one key file and one audit chain wherever a command
runs. Every file and folder under it is named here (:class:`StateHome`) and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: environment variable naming the state home
HOME_ENV = "FACESTREAM_HOME"


def default_home() -> Path:
    """``$FACESTREAM_HOME`` if set, else ``$XDG_DATA_HOME/facestream`` (``~/.local/share/facestream``).

    A relative ``XDG_DATA_HOME`` is ignored, as the XDG base-directory specification asks.
    """
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "facestream"


@dataclass(frozen=True)
class StateHome:
    """The files and folders under one state home ``root``."""

    root: Path

    @property
    def milvus_db(self) -> Path:
        """the embedded Milvus Lite store (unless a store URI is given)"""
        return self.root / "milvus.db"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.jsonl"

    @property
    def events_db(self) -> Path:
        """the queryable match-event store of every stream processor"""
        return self.root / "events.sqlite3"

    @property
    def keys_db(self) -> Path:
        return self.root / "keys.sqlite"

    @property
    def master_key(self) -> Path:
        return self.root / "master.key"

    @property
    def review_db(self) -> Path:
        return self.root / "review.sqlite3"

    @property
    def thumbnails(self) -> Path:
        return self.root / "thumbnails"

    @property
    def evidence(self) -> Path:
        return self.root / "evidence"

    @property
    def spool_dir(self) -> Path:
        return self.root / "spool"

    def spool(self, processor: str) -> Path:
        """the delivery spool (SQLite outbox) of one stream processor"""
        return self.spool_dir / f"{processor}.sqlite3"

    @property
    def previews(self) -> Path:
        return self.root / "previews"

    def preview(self, processor: str) -> Path:
        """the latest redacted preview frame of one stream processor"""
        return self.previews / f"{processor}.jpg"

    @property
    def outputs(self) -> Path:
        """JSON-lines outputs of stream processors (``<bucket>/<prefix><name>.jsonl``)"""
        return self.root / "outputs"

    @property
    def media(self) -> Path:
        """where the API's file sources may read from by default"""
        return self.root / "media"

    @property
    def processor_registry(self) -> Path:
        return self.root / "stream_processors.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def demo(self) -> Path:
        return self.root / "demo"

    def index_failures(self, collection: str) -> Path:
        """the images a gallery-indexing job could not index (JSON lines)"""
        return self.root / f"index_gallery_failures_{collection}.jsonl"


class StatePaths:
    """Where state lives under a ``home`` directory unless a path is given explicitly.

    Mixed into every config that has ``home``, ``store_uri``, ``audit_path`` and
    ``events_path`` fields, so the CLI, the stream jobs and the API agree on one layout.
    """

    home: Path
    store_uri: str | None
    audit_path: Path | None
    events_path: Path | None

    @property
    def state(self) -> StateHome:
        return StateHome(self.home)

    @property
    def resolved_store_uri(self) -> str:
        return self.store_uri or str(self.state.milvus_db)

    @property
    def resolved_audit_path(self) -> Path:
        return self.audit_path or self.state.audit_log

    @property
    def resolved_events_path(self) -> Path:
        return self.events_path or self.state.events_db
