"""Identification on deepface's labelled set: enrol one photo per identity, search with the
rest (real models, real Milvus Lite). Reports the top-1 identification rate."""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from pathlib import Path

import pytest

from facestream.audit import Actor, AuditLog
from facestream.imageio import load_image_file
from facestream.operations import FaceOperations
from facestream.store import MilvusFaceStore, StoreConfig
from models.analyzer import FaceAnalyzer
from tests.helpers import faces_dir

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)


def _deepface_identities() -> dict[str, list[str]]:
    by_id: dict[str, list[str]] = defaultdict(list)
    with (faces_dir() / "MANIFEST.tsv").open(newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            path = row["local_path"]
            if re.fullmatch(r"deepface/tests/unit/dataset/img\d+\.jpg", path) and ";" not in row["identity"]:
                by_id[row["identity"]].append(path)
    for paths in by_id.values():
        paths.sort(key=lambda p: int(re.findall(r"\d+", Path(p).stem)[0]))
    return {k: v for k, v in by_id.items() if len(v) >= 2}


def test_top1_identification_on_deepface_set(tmp_path: Path) -> None:
    identities = _deepface_identities()
    assert len(identities) >= 10
    store = MilvusFaceStore(StoreConfig(uri=str(tmp_path / "ident.db")))
    ops = FaceOperations(FaceAnalyzer(), store, AuditLog(tmp_path / "audit.jsonl"))
    store.create_collection("gallery", model="dlib-resnet", dim=128)
    actor = Actor("test", "admin")
    ext = {name: re.sub(r"[^A-Za-z0-9_.\-:]", "_", name) for name in identities}
    for name, paths in identities.items():
        out = ops.index_faces(
            "gallery",
            load_image_file(faces_dir() / paths[0]),
            actor=actor,
            external_image_id=ext[name],
            max_faces=1,
        )
        assert len(out["FaceRecords"]) == 1, paths[0]
    correct = total = 0
    misses = []
    for name, paths in identities.items():
        for p in paths[1:]:
            res = ops.search_faces_by_image(
                "gallery",
                load_image_file(faces_dir() / p),
                actor=actor,
                purpose="identification benchmark",
                threshold=0.0,
                max_faces=1,
            )
            top = res["FaceMatches"][0]["Face"]["ExternalImageId"] if res["FaceMatches"] else None
            total += 1
            if top == ext[name]:
                correct += 1
            else:
                misses.append((p, top))
    rate = correct / total
    log.warning("deepface top-1 identification: %d/%d = %.3f; misses %s", correct, total, rate, misses)
    store.close()
    assert rate >= 0.9, (rate, misses)
