"""Atomic file replacement: a reader sees the old file or the new one, never half of either.

A new version is written to a hidden temporary file beside the target (same directory, so the
same file system) and moved over it with one ``os.replace``; when the writing fails the
temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(
    path: Path, *, suffix: str = ".tmp", mode: int | None = None, fsync: bool = False
) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the new version to; it replaces ``path`` when
    the block ends normally.

    ``suffix`` ends the temporary name (a writer that picks its format by extension needs it);
    ``mode``: permissions given to the new file before it replaces the old one; ``fsync``: the
    new contents reach the disk before the rename (what a crash must not lose).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}{suffix}")
    try:
        if mode is not None:  # private from the start: the final mode is given once it is complete
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None, fsync: bool = False) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one step."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with replacing(path, mode=mode, fsync=fsync) as tmp, tmp.open("wb") as f:
        f.write(raw)
