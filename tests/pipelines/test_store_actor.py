"""The store actor's client (RemoteFaceStore) is a FaceStore: every protocol method runs in the
actor of its URI and answers what the Milvus store answers, errors included (local Ray, a real
Milvus Lite file owned by the actor)."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from facestream.errors import CollectionNotFound, InvalidParameter
from facestream.store import FaceStore
from tests.store.test_store import DIM, MODEL, make_faces


def _walk(store: FaceStore, tmp: Path) -> None:
    rng = np.random.default_rng(11)
    assert store.list_collections() == [] and store.list_collections_page() == ([], None)
    with pytest.raises(CollectionNotFound, match="'watch' does not exist: there is no face store"):
        store.describe_collection("watch")
    assert not tmp.exists()  # reading a store that does not exist creates nothing

    info = store.create_collection("watch", model=MODEL, dim=DIM, retention_days=3, require_confirmation=True)
    assert (info.name, info.retention_days, info.require_confirmation) == ("watch", 3, True)
    faces = make_faces(rng, 4, ext="img-a")
    assert store.add_faces("watch", faces, model=MODEL) == [f.face_id for f in faces]
    assert store.describe_collection("watch").face_count == 4
    page, token = store.list_faces("watch", max_results=3)
    assert len(page) == 3 and token is not None
    rest, token = store.list_faces("watch", max_results=3, next_token=token)
    assert len(rest) == 1 and token is None
    got = store.get_faces("watch", [faces[1].face_id], with_embeddings=True)
    assert got[0].embedding is not None and np.allclose(got[0].embedding, faces[1].embedding)
    q = faces[2].embedding
    assert q is not None
    hits = store.search("watch", q[None, :], model=MODEL, max_faces=1, min_similarity=90)
    assert hits[0][0].face_id == faces[2].face_id

    store.create_user("watch", "u1")
    assert store.user_exists("watch", "u1") and not store.user_exists("watch", "u2")
    store.require_user("watch", "u1")
    assert store.set_face_user("watch", [faces[0].face_id], "u1") == [faces[0].face_id]
    assert store.user_face_ids("watch", "u1") == [faces[0].face_id]
    assert store.list_users("watch") == (["u1"], None) and store.count_users("watch") == 1
    q0 = faces[0].embedding
    assert q0 is not None
    user_hits = store.search(
        "watch", q0[None, :], model=MODEL, max_faces=5, min_similarity=90, users_only=True
    )
    assert [h.face_id for h in user_hits[0]] == [faces[0].face_id]
    assert store.delete_user("watch", "u1") == [faces[0].face_id]
    assert store.count_users("watch") == 0

    assert store.faces_older_than("watch", 0) == []
    assert store.delete_faces("watch", [faces[3].face_id, str(uuid.uuid4())]) == [faces[3].face_id]
    assert sorted(store.delete_by_external_id("watch", "img-a")) == sorted(f.face_id for f in faces[:3])
    store.compact("watch")
    with pytest.raises(InvalidParameter):
        store.create_collection("bad name!", model=MODEL, dim=DIM)
    store.delete_collection("watch")
    assert store.list_collections() == []
    store.close()


@pytest.mark.usefixtures("ray_local")
def test_remote_store_answers_like_the_milvus_store(tmp_path: Path) -> None:
    from pipelines.store_actor import RemoteFaceStore

    home = tmp_path / "home"
    remote = RemoteFaceStore(str(home / "milvus.db"), timeout_s=120)
    _walk(remote, home)
    assert remote.uri == str(home / "milvus.db")


def test_milvus_store_walk(tmp_path: Path) -> None:
    """The same walk on this process's own MilvusFaceStore (the reference answers)."""
    from facestream.store import MilvusFaceStore, StoreConfig

    home = tmp_path / "home"
    _walk(MilvusFaceStore(StoreConfig(uri=str(home / "milvus.db"))), home)
