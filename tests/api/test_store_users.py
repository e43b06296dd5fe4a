"""Users in the face store (Milvus Lite): create, associate, page, search users only, delete."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from facestream.errors import InvalidParameter, ResourceNotFound
from facestream.store import FaceRecord, MilvusFaceStore, StoreConfig
from facestream.store.milvus import UserExists


def _face(rng: np.random.Generator) -> FaceRecord:
    v = rng.normal(size=128).astype(np.float32)
    return FaceRecord(
        face_id=str(uuid.uuid4()),
        external_image_id=None,
        image_id="0" * 64,
        bounding_box=(0.1, 0.1, 0.2, 0.2),
        confidence=99.0,
        quality={"brightness": 50.0},
        created_at_ms=1,
        embedding=v / np.linalg.norm(v),
    )


def test_users_lifecycle(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with MilvusFaceStore(StoreConfig(uri=str(tmp_path / "m.db"))) as st:
        st.create_collection("c", model="dlib-resnet", dim=128)
        faces = [_face(rng) for _ in range(4)]
        st.add_faces("c", faces, model="dlib-resnet")
        for uid in ("u3", "u1", "u2"):
            st.create_user("c", uid)
        with pytest.raises(UserExists):
            st.create_user("c", "u1")
        assert st.count_users("c") == 3
        page, token = st.list_users("c", max_results=2)
        assert page == ["u1", "u2"] and token
        assert st.list_users("c", max_results=2, next_token=token) == (["u3"], None)
        with pytest.raises(InvalidParameter):
            st.list_users("c", next_token=token.replace("A", "B", 1) if "A" in token else token + "x")
        assert st.set_face_user("c", [faces[0].face_id, faces[1].face_id], "u1") == [
            faces[0].face_id,
            faces[1].face_id,
        ]
        assert st.user_face_ids("c", "u1") == sorted([faces[0].face_id, faces[1].face_id])
        listed, _ = st.list_faces("c", user_id="u1")
        assert {f.face_id for f in listed} == {faces[0].face_id, faces[1].face_id}
        hits = st.search(
            "c",
            faces[2].embedding.reshape(1, -1),
            model="dlib-resnet",
            max_faces=10,
            min_similarity=0.0,
            users_only=True,
        )[0]
        assert {h.user_id for h in hits} == {"u1"}
        # the vectors survive the rewrite that sets user_id
        again = st.get_faces("c", [faces[0].face_id], with_embeddings=True)[0]
        assert np.allclose(again.embedding, faces[0].embedding)
        assert st.delete_user("c", "u1") == sorted([faces[0].face_id, faces[1].face_id])
        assert st.user_face_ids("c", "u1") == [] and not st.user_exists("c", "u1")
        with pytest.raises(ResourceNotFound):
            st.delete_user("c", "u1")
        names, tok = st.list_collections_page(max_results=1)
        assert names == ["c"] and tok is None
        st.delete_collection("c")
        st.create_collection("c", model="dlib-resnet", dim=128)
        assert st.count_users("c") == 0  # users went with the collection
