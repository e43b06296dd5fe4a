"""Test data location: ``FACESTREAM_DATA_DIR`` (default ``<repo>/../shared/data``).

Under CI (``CI=true``) missing data fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return Path(os.environ.get("FACESTREAM_DATA_DIR", REPO.parent / "shared" / "data"))


def faces_dir() -> Path:
    d = data_dir() / "faces"
    if not (d / "MANIFEST.tsv").is_file():
        msg = f"test data not found at {d} (set FACESTREAM_DATA_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def face(rel: str) -> Path:
    p = faces_dir() / rel
    if not p.is_file():
        pytest.fail(f"expected test file missing: {p}")
    return p
