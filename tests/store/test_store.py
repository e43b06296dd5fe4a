"""MilvusFaceStore on both backends: Milvus Lite (a tmp .db) and the embedded Milvus server.

Every behavioural test runs on both, proving they behave identically; server runs are
marked slow. The server is shared by the session, so each test uses collection names
unique to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr, ValidationError

from facestream.errors import (
    CollectionExists,
    CollectionNotFound,
    InvalidParameter,
    ModelMismatch,
    StoreUnavailable,
)
from facestream.similarity import cosine_to_similarity, similarity_to_cosine
from facestream.store import CollectionInfo, FaceRecord, MilvusFaceStore, StoreConfig
from facestream.types import SearchHit
from tests.helpers import scaled

MODEL = "dlib-resnet"
DIM = 128


@pytest.fixture(params=["lite", pytest.param("server", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreConfig:
    if backend == "lite":
        return StoreConfig(uri=str(tmp_path / "faces.db"), timeout_s=30)
    uri = request.getfixturevalue("milvus_server_uri")
    return StoreConfig(uri=uri, timeout_s=60)


@pytest.fixture
def store(config: StoreConfig) -> Iterator[MilvusFaceStore]:
    s = MilvusFaceStore(config)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def cname(request: pytest.FixtureRequest) -> str:
    """A collection name unique to this test (the server is shared by the session)."""
    return f"c-{uuid.uuid4().hex[:12]}.test"


def unit(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_faces(
    rng: np.random.Generator, n: int, *, ext: str | None = "img-1", d: int = DIM
) -> list[FaceRecord]:
    emb = unit(rng, n, d)
    image_id = hashlib.sha256(b"image").hexdigest()
    return [
        FaceRecord(
            face_id=str(uuid.uuid4()),
            external_image_id=ext,
            image_id=image_id,
            bounding_box=(0.1, 0.2, 0.3, 0.4),
            confidence=99.5,
            quality={"brightness": 50.0, "sharpness": 80.0},
            created_at_ms=1_700_000_000_000 + i,
            embedding=emb[i],
        )
        for i in range(n)
    ]


def all_face_ids(store: MilvusFaceStore, name: str) -> list[str]:
    ids: list[str] = []
    token = None
    while True:
        page, token = store.list_faces(name, max_results=4096, next_token=token)
        ids += [f.face_id for f in page]
        if token is None:
            return ids


# ── collections ────────────────────────────────────────────────────────────────────────────


def test_create_list_describe_delete(store: MilvusFaceStore, cname: str) -> None:
    before = time.time() * 1000
    info = store.create_collection(cname, model=MODEL, dim=DIM, retention_days=30, require_confirmation=True)
    assert isinstance(info, CollectionInfo)
    assert cname in store.list_collections()
    d = store.describe_collection(cname)
    assert (d.name, d.model, d.dim, d.face_count, d.retention_days, d.require_confirmation) == (
        cname,
        MODEL,
        DIM,
        0,
        30,
        True,
    )
    assert before - 1000 <= d.created_at <= time.time() * 1000 + 1000
    with pytest.raises(CollectionExists, match=cname):
        store.create_collection(cname, model=MODEL, dim=DIM)
    other = cname + "-2"
    store.create_collection(other, model="facenet-vggface2", dim=512)
    assert store.describe_collection(other).retention_days is None
    names = store.list_collections()
    assert names == sorted(names) and {cname, other} <= set(names)
    store.delete_collection(cname)
    assert cname not in store.list_collections()
    with pytest.raises(CollectionNotFound, match=cname):
        store.describe_collection(cname)
    # a deleted name can be reused, with a different model
    store.create_collection(cname, model="facenet-vggface2", dim=512)
    assert store.describe_collection(cname).dim == 512
    store.delete_collection(cname)
    store.delete_collection(other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "no-such-model", "dim": DIM}, "no similarity calibration"),
        ({"model": MODEL, "dim": 1}, "dim"),
        ({"model": MODEL, "dim": 5000}, "dim"),
        ({"model": MODEL, "dim": True}, "dim"),
        ({"model": MODEL, "dim": DIM, "retention_days": 0}, "retention_days"),
        ({"model": MODEL, "dim": DIM, "require_confirmation": "yes"}, "require_confirmation"),
    ],
)
def test_create_collection_rejects(
    store: MilvusFaceStore, cname: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        store.create_collection(cname, **kwargs)
    assert cname not in store.list_collections()


def test_unknown_collection(store: MilvusFaceStore, cname: str) -> None:
    rng = np.random.default_rng(0)
    calls = [
        lambda: store.describe_collection(cname),
        lambda: store.delete_collection(cname),
        lambda: store.add_faces(cname, make_faces(rng, 1), model=MODEL),
        lambda: store.list_faces(cname),
        lambda: store.get_faces(cname, [str(uuid.uuid4())]),
        lambda: store.delete_faces(cname, [str(uuid.uuid4())]),
        lambda: store.delete_by_external_id(cname, "x"),
        lambda: store.faces_older_than(cname, 0),
        lambda: store.search(cname, unit(rng, 1), model=MODEL, max_faces=1, min_similarity=0),
    ]
    for call in calls:
        with pytest.raises(CollectionNotFound, match=cname):
            call()


# ── faces ──────────────────────────────────────────────────────────────────────────────────


def test_model_and_dim_mismatch(store: MilvusFaceStore, cname: str) -> None:
    rng = np.random.default_rng(1)
    store.create_collection(cname, model=MODEL, dim=DIM)
    with pytest.raises(ModelMismatch, match="facenet-vggface2"):
        store.add_faces(cname, make_faces(rng, 2), model="facenet-vggface2")
    with pytest.raises(ModelMismatch, match="dim"):
        store.add_faces(cname, make_faces(rng, 2, d=512), model=MODEL)
    with pytest.raises(ModelMismatch):
        store.search(cname, unit(rng, 1), model="facenet-vggface2", max_faces=5, min_similarity=0)
    with pytest.raises(ModelMismatch, match="dim 512"):
        store.search(cname, unit(rng, 1, 512), model=MODEL, max_faces=5, min_similarity=0)
    assert store.describe_collection(cname).face_count == 0


def test_upsert_is_idempotent_and_roundtrips(store: MilvusFaceStore, cname: str) -> None:
    rng = np.random.default_rng(2)
    store.create_collection(cname, model=MODEL, dim=DIM)
    faces = make_faces(rng, 5)
    faces[0] = dataclasses.replace(faces[0], external_image_id=None, user_id="user:1")
    assert store.add_faces(cname, faces, model=MODEL) == [f.face_id for f in faces]
    assert store.add_faces(cname, faces, model=MODEL) == [f.face_id for f in faces]
    assert store.describe_collection(cname).face_count == 5
    # rerun with changed values: still one row per face_id, latest values win
    changed = dataclasses.replace(faces[1], confidence=42.0)
    store.add_faces(cname, [changed], model=MODEL)
    assert store.describe_collection(cname).face_count == 5

    got = store.get_faces(
        cname, [faces[1].face_id, str(uuid.uuid4()), faces[0].face_id], with_embeddings=True
    )
    assert [g.face_id for g in got] == [faces[1].face_id, faces[0].face_id]
    assert got[0].confidence == pytest.approx(42.0)
    assert got[1] == faces[0]  # dataclass equality ignores the embedding
    assert got[1].external_image_id is None and got[1].user_id == "user:1"
    assert got[1].bounding_box == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert got[1].embedding is not None and got[1].embedding.dtype == np.float32
    assert faces[0].embedding is not None
    np.testing.assert_allclose(got[1].embedding, faces[0].embedding, atol=1e-6)
    assert all(g.embedding is None for g in store.get_faces(cname, [faces[0].face_id]))

    with pytest.raises(InvalidParameter, match="more than once"):
        store.add_faces(cname, [faces[2], faces[2]], model=MODEL)
    no_emb = dataclasses.replace(faces[3], embedding=None)
    with pytest.raises(InvalidParameter, match="no embedding"):
        store.add_faces(cname, [no_emb], model=MODEL)


def test_pagination(store: MilvusFaceStore, cname: str) -> None:
    rng = np.random.default_rng(3)
    store.create_collection(cname, model=MODEL, dim=DIM)
    faces = make_faces(rng, 25)
    # three writes, so the server holds them in more than one segment
    for chunk in (faces[:7], faces[7:16], faces[16:]):
        store.add_faces(cname, chunk, model=MODEL)
    pages: list[list[str]] = []
    tokens: list[str] = []
    token = None
    while True:
        page, token = store.list_faces(cname, max_results=10, next_token=token)
        pages.append([f.face_id for f in page])
        if token is None:
            break
        tokens.append(token)
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == sorted(f.face_id for f in faces)
    # the same token gives the same page again (stable)
    again, _ = store.list_faces(cname, max_results=10, next_token=tokens[0])
    assert [f.face_id for f in again] == pages[1]

    # tampered, foreign and garbage tokens
    body, sig = tokens[0].split(".")
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    other = cname + "-other"
    store.create_collection(other, model=MODEL, dim=DIM)
    store.add_faces(other, make_faces(rng, 12), model=MODEL)
    _, other_token = store.list_faces(other, max_results=5)
    assert other_token is not None
    stranger = MilvusFaceStore(store.config.model_copy(update={"pagination_secret": SecretStr("x" * 32)}))
    for bad in [
        f"{flipped}.{sig}",
        f"{body}.{sig[:-2]}AA",
        other_token,
        "",
        "abc",
        "a.b.c",
        tokens[0] + "\n",
        "é" * 10,
    ]:
        with pytest.raises(InvalidParameter, match="next_token"):
            store.list_faces(cname, max_results=10, next_token=bad)
    with pytest.raises(InvalidParameter, match="next_token"):
        stranger.list_faces(cname, max_results=10, next_token=tokens[0])
    stranger.close()
    for bad_max in [0, 4097, -1, 2.5]:
        with pytest.raises(InvalidParameter, match="max_results"):
            store.list_faces(cname, max_results=bad_max)  # type: ignore[arg-type]


def test_delete_and_retention_queries(store: MilvusFaceStore, cname: str) -> None:
    rng = np.random.default_rng(4)
    store.create_collection(cname, model=MODEL, dim=DIM)
    a = make_faces(rng, 6, ext="photo-a.jpg")
    b = make_faces(rng, 4, ext="photo-b.jpg")
    store.add_faces(cname, a + b, model=MODEL)
    unknown = str(uuid.uuid4())
    assert store.delete_faces(cname, [unknown, b[0].face_id, b[0].face_id]) == [b[0].face_id]
    assert store.delete_faces(cname, [b[0].face_id]) == []
    assert sorted(store.delete_by_external_id(cname, "photo-a.jpg")) == sorted(f.face_id for f in a)
    assert store.delete_by_external_id(cname, "photo-a.jpg") == []
    assert sorted(all_face_ids(store, cname)) == sorted(f.face_id for f in b[1:])
    assert store.describe_collection(cname).face_count == 3
    # b[i].created_at_ms = base + i
    assert store.faces_older_than(cname, 1_700_000_000_000 + 3) == sorted([b[1].face_id, b[2].face_id])
    assert store.faces_older_than(cname, 0) == []


# ── search ─────────────────────────────────────────────────────────────────────────────────


def _cos(hit: SearchHit) -> float:
    c = hit.extra["cosine"]
    assert isinstance(c, float)
    return c


def _exact_topk(stored: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    cos = q.astype(np.float64) @ stored.astype(np.float64).T
    order = np.argsort(-cos, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(cos, order, axis=1)


def test_search_matches_exact_cosine(store: MilvusFaceStore, cname: str, backend: str) -> None:
    rng = np.random.default_rng(5)
    store.create_collection(cname, model=MODEL, dim=DIM)
    faces = make_faces(rng, 300)
    store.add_faces(cname, faces, model=MODEL)
    stored = np.stack([f.embedding for f in faces if f.embedding is not None])
    ids = np.array([f.face_id for f in faces])
    # half near-duplicates of stored faces (high similarity), half random
    near = stored[:20] + 0.02 * unit(rng, 20)
    queries = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), unit(rng, 20)]).astype(
        np.float32
    )

    k = 10
    hits = store.search(cname, queries, model=MODEL, max_faces=k, min_similarity=0.0)
    order, exact_cos = _exact_topk(stored, queries, k)
    assert len(hits) == len(queries)
    recall = np.mean(
        [len({h.face_id for h in hs} & set(ids[o])) / k for hs, o in zip(hits, order, strict=True)]
    )
    assert recall == 1.0 if backend == "lite" else recall >= 0.95
    for hs, ec in zip(hits, exact_cos, strict=True):
        sims = [h.similarity for h in hs]
        assert sims == sorted(sims, reverse=True)
        assert len(hs) == k
        if backend == "lite":
            np.testing.assert_allclose([_cos(h) for h in hs], ec, atol=1e-5)
            np.testing.assert_allclose(sims, cosine_to_similarity(MODEL, ec), atol=1e-3)
    assert hits[0][0].face_id == faces[0].face_id and hits[0][0].similarity > 99
    assert hits[0][0].image_id == faces[0].image_id and hits[0][0].external_image_id == "img-1"

    # threshold: only hits at or above min_similarity, and every such exact neighbour found
    min_sim = 60.0
    thr = similarity_to_cosine(MODEL, min_sim)
    cut = store.search(cname, queries, model=MODEL, max_faces=k, min_similarity=min_sim)
    for hs, o, ec in zip(cut, order, exact_cos, strict=True):
        assert all(h.similarity >= min_sim for h in hs)
        want = {ids[j] for j, c in zip(o, ec, strict=True) if c >= thr + 1e-5}
        got = {h.face_id for h in hs}
        assert want <= got
        assert all(_cos(h) >= thr - 1e-5 for h in hs)
    assert any(cut[:20]) and not any(cut[20:])  # random 128-d vectors are far apart

    # external_image_id filter
    other = dataclasses.replace(faces[0], face_id=str(uuid.uuid4()), external_image_id="other")
    store.add_faces(cname, [other], model=MODEL)
    only = store.search(
        cname, queries[:1], model=MODEL, max_faces=5, min_similarity=0, external_image_id="other"
    )
    assert [h.external_image_id for h in only[0]] == ["other"]


@pytest.mark.parametrize(
    ("queries", "message"),
    [
        (np.zeros((2, DIM), np.float64), "float32"),
        (np.zeros((DIM,), np.float32), "float32"),
        (np.zeros((2, DIM), np.float32), "L2-normalised"),
        (np.full((1, DIM), np.nan, np.float32), "NaN"),
        (np.zeros((0, DIM), np.float32), "queries"),
    ],
)
def test_search_rejects_bad_queries(
    store: MilvusFaceStore, cname: str, queries: np.ndarray, message: str
) -> None:
    store.create_collection(cname, model=MODEL, dim=DIM)
    with pytest.raises(InvalidParameter, match=message):
        store.search(cname, queries, model=MODEL, max_faces=5, min_similarity=0)
    q = unit(np.random.default_rng(0), 1)
    bad_args: list[dict[str, Any]] = [
        {"max_faces": 0},
        {"max_faces": 5000},
        {"min_similarity": -1},
        {"min_similarity": 101.0},
    ]
    for bad in bad_args:
        kwargs: dict[str, Any] = {"max_faces": 5, "min_similarity": 0.0, **bad}
        with pytest.raises(InvalidParameter):
            store.search(cname, q, model=MODEL, **kwargs)


# ── hostile input ──────────────────────────────────────────────────────────────────────────

HOSTILE = [
    'a" or 1==1 or "',
    "a' or 1==1 or '",
    'x" || face_id != "',
    "back\\slash",
    '\\"',
    'quote"inside',
    "ünïcødé",
    "名前",
    "ctrl\x00char",
    "new\nline",
    "tab\there",
    "trailing-newline\n",
    "a" * 300,
    "",
    " ",
    "a b",
    "${x}",
    "{x}",
    "[1]",
    'face_id in ["a"]',
]


def _state(store: MilvusFaceStore, name: str) -> tuple[list[str], list[str]]:
    return store.list_collections(), all_face_ids(store, name)


def test_hostile_values_are_rejected_without_state_change(store: MilvusFaceStore, cname: str) -> None:
    """Table-driven: every hostile value x every operation -> InvalidParameter, nothing changed.

    One collection for the whole table (creating one per value costs seconds on the server).
    """
    rng = np.random.default_rng(6)
    store.create_collection(cname, model=MODEL, dim=DIM)
    faces = make_faces(rng, 3)
    store.add_faces(cname, faces, model=MODEL)
    before = _state(store, cname)
    q = unit(rng, 1)
    for bad in HOSTILE:
        calls = {
            "create_collection(name)": lambda b=bad: store.create_collection(b, model=MODEL, dim=DIM),
            "describe_collection": lambda b=bad: store.describe_collection(b),
            "delete_collection": lambda b=bad: store.delete_collection(b),
            "create_collection(model)": lambda b=bad: store.create_collection(cname + "x", model=b, dim=DIM),
            "add_faces(model)": lambda b=bad: store.add_faces(cname, faces, model=b),
            "get_faces": lambda b=bad: store.get_faces(cname, [b]),
            "delete_faces": lambda b=bad: store.delete_faces(cname, [faces[0].face_id, b]),
            "delete_by_external_id": lambda b=bad: store.delete_by_external_id(cname, b),
            "search(external_image_id)": lambda b=bad: store.search(
                cname, q, model=MODEL, max_faces=3, min_similarity=0, external_image_id=b
            ),
            "list_faces(next_token)": lambda b=bad: store.list_faces(cname, next_token=b),
        }
        for what, call in calls.items():
            try:
                call()
            except InvalidParameter:
                continue
            pytest.fail(f"{what} accepted {bad!r}")
        # one state check per value: reads cost a time tick each on the server
        assert _state(store, cname) == before, f"{bad!r} changed state"
        for field in ("face_id", "external_image_id", "image_id", "user_id"):
            with pytest.raises(InvalidParameter):
                dataclasses.replace(faces[0], **{field: bad})  # type: ignore[arg-type]


def test_quote_is_the_only_door() -> None:
    from facestream.store.validation import quote, quote_list

    assert quote("abc-1.2:3_") == '"abc-1.2:3_"'
    assert quote_list(["a", "b"]) == '["a", "b"]'
    for bad in HOSTILE[:12]:
        with pytest.raises(InvalidParameter):
            quote(bad)


# ── persistence, config, connection errors ────────────────────────────────────────────────


def test_missing_lite_store_reads_as_empty_and_is_created_only_by_a_write(tmp_path: Path) -> None:
    """Reading a store that was never written says so and creates nothing (not even its
    directory); the first collection creates both."""
    home = tmp_path / "never-used-home"
    path = home / "milvus.db"
    rng = np.random.default_rng(3)
    with MilvusFaceStore(StoreConfig(uri=str(path))) as s:
        assert s.list_collections() == []
        assert s.list_collections_page() == ([], None)
        for read in (
            lambda: s.describe_collection("watch"),
            lambda: s.list_faces("watch"),
            lambda: s.search("watch", unit(rng, 1), model=MODEL, max_faces=1, min_similarity=0),
            lambda: s.delete_collection("watch"),
        ):
            with pytest.raises(CollectionNotFound, match=r"'watch' does not exist: there is no face store "):
                read()
        assert not home.exists()
        s.create_collection("watch", model=MODEL, dim=DIM)
        assert path.exists()
        assert s.list_collections() == ["watch"]
        with pytest.raises(CollectionNotFound, match=r"'other' does not exist at "):
            s.describe_collection("other")


def test_lite_persists_across_reopen(tmp_path: Path) -> None:
    from milvus_lite.server_manager import server_manager_instance

    path = str(tmp_path / "persist.db")
    rng = np.random.default_rng(7)
    faces = make_faces(rng, 12)
    with MilvusFaceStore(StoreConfig(uri=path)) as s:
        s.create_collection("keep.me", model=MODEL, dim=DIM, retention_days=7)
        s.add_faces("keep.me", faces, model=MODEL)
        s.delete_faces("keep.me", [faces[0].face_id])
    # pymilvus keeps one in-process Lite server per path; stop it so the reopen reads disk
    server_manager_instance.release_server(path)
    with MilvusFaceStore(StoreConfig(uri=path)) as s:
        info = s.describe_collection("keep.me")
        assert (info.model, info.dim, info.face_count, info.retention_days) == (MODEL, DIM, 11, 7)
        assert sorted(all_face_ids(s, "keep.me")) == sorted(f.face_id for f in faces[1:])
        q = faces[3].embedding
        assert q is not None
        hits = s.search("keep.me", q[None, :], model=MODEL, max_faces=1, min_similarity=90)
        assert hits[0][0].face_id == faces[3].face_id
    server_manager_instance.release_server(path)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"uri": "faces.sqlite"},
        {"uri": "ftp://host:1"},
        {"uri": "http://user:pw@127.0.0.1:19530"},
        {"uri": "http://127.0.0.1:19530; rm -rf /"},
        {"uri": "x.db", "timeout_s": 0},
        {"uri": "x.db", "hnsw_m": 1000},
        {"uri": "x.db", "search_ef": 1},
        {"uri": "x.db", "consistency": "Weak"},
        {"uri": "x.db", "unknown_field": 1},
    ],
)
def test_config_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        StoreConfig(**kwargs)


def test_config_accepts() -> None:
    assert StoreConfig(uri="/tmp/a.db").is_lite
    c = StoreConfig(uri="http://127.0.0.1:19530", token=SecretStr("root:Milvus"))
    assert not c.is_lite and "Milvus" not in repr(c)


def test_unreachable_server_is_store_unavailable_without_token() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    store = MilvusFaceStore(StoreConfig(uri=uri, token=SecretStr("sekrit-token-123"), timeout_s=2))
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable) as err:
        store.list_collections()
    assert uri in err.value.message and "sekrit" not in err.value.message
    assert time.monotonic() - t0 < scaled(30)
    store.close()


@pytest.mark.slow
def test_server_hnsw_recall_on_sealed_segment(milvus_server_uri: str) -> None:
    """With 3000 flushed rows the server builds a real HNSW index (segments under 1024 rows
    are searched brute force), so this measures the index, not a scan."""
    rng = np.random.default_rng(8)
    name = f"hnsw-{uuid.uuid4().hex[:8]}"
    with MilvusFaceStore(StoreConfig(uri=milvus_server_uri, timeout_s=60)) as store:
        store.create_collection(name, model=MODEL, dim=DIM)
        faces = make_faces(rng, 3000)
        store.add_faces(name, faces, model=MODEL)
        client = store._client()
        milvus_name = store._meta_row(name)["milvus_name"]  # type: ignore[index]
        client.flush(milvus_name)
        deadline = time.monotonic() + scaled(60)
        while time.monotonic() < deadline:
            desc = client.describe_index(milvus_name, "embedding")
            if desc["index_type"] == "HNSW" and int(desc.get("indexed_rows", 0)) >= 3000:
                break
            time.sleep(0.5)
        assert desc["index_type"] == "HNSW" and int(desc["indexed_rows"]) >= 3000
        stored = np.stack([f.embedding for f in faces if f.embedding is not None])
        ids = np.array([f.face_id for f in faces])
        queries = unit(rng, 50)
        hits = store.search(name, queries, model=MODEL, max_faces=10, min_similarity=0)
        order, _ = _exact_topk(stored, queries, 10)
        recall = np.mean(
            [len({h.face_id for h in hs} & set(ids[o])) / 10 for hs, o in zip(hits, order, strict=True)]
        )
        assert recall >= 0.95
        store.delete_collection(name)
