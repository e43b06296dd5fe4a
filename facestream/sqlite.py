"""One way to open the SQLite files facestream keeps (event store, spools, review, evidence
index, API keys): a timeout for a busy file, the journal mode and durability each store asks
for, and connections that may be shared by the threads of one store (each store holds a lock).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

#: how long a connection waits for another writer's lock before failing, seconds
BUSY_TIMEOUT_S = 10.0


def connect(
    path: Path | str,
    *,
    timeout_s: float = BUSY_TIMEOUT_S,
    wal: bool = False,
    synchronous: Literal["FULL", "NORMAL"] | None = None,
    shared: bool = True,
    autocommit: bool = False,
) -> sqlite3.Connection:
    """Open ``path`` (created if absent; its directory must exist).

    ``wal``: write-ahead journal (readers do not block the writer); ``synchronous``: the
    ``PRAGMA synchronous`` level, None for SQLite's default; ``shared``: the connection may be
    used from threads other than its creator's (the caller serialises them);
    ``autocommit``: no implicit transactions (``isolation_level=None``).
    """
    db = sqlite3.connect(
        str(path),
        timeout=timeout_s,
        check_same_thread=not shared,
        isolation_level=None if autocommit else "DEFERRED",
    )
    try:
        with db:
            if wal:
                db.execute("PRAGMA journal_mode=WAL")
            if synchronous is not None:
                db.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        db.close()
        raise
    return db
