"""The Ray Data gallery indexing job: every face indexed, failures logged, reruns idempotent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facestream.audit import Actor, AuditLog
from facestream.config import AnalyzerConfig, DeviceConfig
from pipelines.index_gallery import face_id_for, index_gallery, list_gallery
from tests.helpers import face

pytestmark = pytest.mark.slow

OPERATOR = Actor("test:operator", "operator")


def _gallery(root: Path) -> Path:
    ex = face("face_recognition/examples/obama.jpg").parent
    g = root / "gallery"
    (g / "sub").mkdir(parents=True)
    for name in ("obama.jpg", "biden.jpg", "lin-manuel-miranda.png"):
        shutil.copy(ex / name, g / name)
    shutil.copy(ex / "two_people.jpg", g / "sub" / "two_people.jpg")
    (g / "broken.jpg").write_text("not an image")
    (g / "notes.txt").write_text("ignored: not an image suffix")
    return g


def test_manifest_and_directory_listing(tmp_path: Path) -> None:
    g = _gallery(tmp_path)
    assert [i.external_image_id for i in list_gallery(g)] == [
        "biden",
        "broken",
        "lin-manuel-miranda",
        "obama",
        "two_people",
    ]
    m = tmp_path / "manifest.jsonl"
    m.write_text(
        json.dumps({"path": "gallery/obama.jpg", "external_image_id": "barack obama"})
        + "\n# comment\n"
        + str(g / "biden.jpg")
        + "\n"
    )
    items = list_gallery(m)
    assert [(Path(i.path).name, i.external_image_id) for i in items] == [
        ("obama.jpg", "barack_obama"),
        ("biden.jpg", "biden"),
    ]
    assert face_id_for("ab" * 32, 0) == face_id_for("ab" * 32, 0) != face_id_for("ab" * 32, 1)


def test_index_gallery_with_ray_data_is_idempotent(tmp_path: Path, ray_local: None) -> None:
    import ray

    from pipelines.gallery import ensure_collection
    from pipelines.store_actor import call, store_actor

    g = _gallery(tmp_path)
    store = store_actor(str(tmp_path / "milvus.db"))
    try:
        ensure_collection(store, "gallery", "dlib-resnet", fresh=True)
        audit = AuditLog(tmp_path / "audit.jsonl")
        failures = tmp_path / "failures.jsonl"
        kw = {
            "store": store,
            "failures_path": failures,
            "audit": audit,
            "actor": OPERATOR,
            "analyzer": AnalyzerConfig(device=DeviceConfig(device="cpu")),
            "batch_size": 2,
            "actors": 1,
        }
        first = index_gallery("gallery", g, **kw)
        assert first["images"] == 5 and first["failed_images"] == 1
        assert first["faces_indexed"] == 5  # obama, biden, lin-manuel, two people
        bad = [json.loads(x) for x in failures.read_text().splitlines()]
        assert [Path(b["path"]).name for b in bad] == ["broken.jpg"] and "not a recognised image" in bad[0][
            "error"
        ]
        assert call(store.describe_collection.remote("gallery"), 60).face_count == 5

        second = index_gallery("gallery", g, **kw)
        assert second["faces_indexed"] == 5
        assert call(store.describe_collection.remote("gallery"), 60).face_count == 5  # no duplicates
        entries = audit.query(operation="IndexFaces")
        assert len(entries) == 2
        assert sorted(entries[0]["results"]["face_ids"]) == sorted(entries[1]["results"]["face_ids"])
    finally:
        ray.kill(store)


def test_the_same_photo_under_two_names_is_indexed_once(tmp_path: Path, ray_local: None) -> None:
    """Identical bytes give identical face ids; both copies in one write batch used to make the
    store refuse the batch (a face id twice) and end the whole job."""
    import ray

    from pipelines.gallery import ensure_collection
    from pipelines.store_actor import call, store_actor

    src = face("face_recognition/examples/obama.jpg")
    g = tmp_path / "gallery"
    g.mkdir()
    shutil.copy(src, g / "a.jpg")
    shutil.copy(src, g / "copy-of-a.jpg")
    store = store_actor(str(tmp_path / "milvus.db"))
    try:
        ensure_collection(store, "dup", "dlib-resnet", fresh=True)
        out = index_gallery(
            "dup",
            g,
            store=store,
            failures_path=tmp_path / "failures.jsonl",
            audit=AuditLog(tmp_path / "audit.jsonl"),
            actor=OPERATOR,
            analyzer=AnalyzerConfig(device=DeviceConfig(device="cpu")),
            batch_size=2,
            actors=1,
        )
        assert out["images"] == 2 and out["failed_images"] == 0
        assert call(store.describe_collection.remote("dup"), 60).face_count == 1
    finally:
        ray.kill(store)
