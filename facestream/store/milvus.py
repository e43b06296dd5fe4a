"""Face collections on Milvus: Milvus Lite (a ``.db`` path) or a Milvus server, same behaviour.

Layout in Milvus:

- ``facestream_collections``: one row per face collection (its Rekognition-style name, the
  Milvus collection holding its faces, model, dim, created_at, retention, confirmation flag).
  Milvus needs a vector field in every collection, so it carries a dummy 2-d vector. Keeping
  this in Milvus itself (not a side file) makes Lite and server behave identically and keeps
  one source of truth.
- ``fs_<sha256(name)[:32]>``: the faces of one collection. Rekognition names allow ``.`` and
  ``-`` and 255 characters, Milvus names only letters/digits/underscore; a hash prefix fits
  every name and the metadata row maps it back.

Every filter expression is built from validated values through
:func:`facestream.store.validation.quote`; see that module for why.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from facestream.errors import (
    CollectionExists,
    CollectionNotFound,
    FacestreamError,
    InvalidParameter,
    ModelMismatch,
    StoreUnavailable,
)
from facestream.similarity import anchors_for, cosine_to_similarity
from facestream.store import validation as v
from facestream.store.config import StoreConfig
from facestream.store.protocol import FaceStore
from facestream.store.records import CollectionInfo, FaceRecord
from facestream.types import SearchHit

logger = logging.getLogger(__name__)

META_COLLECTION = "facestream_collections"
#: One row per user (Rekognition's CreateUser) of every collection; faces point at users by user_id.
USERS_COLLECTION = "facestream_users"
_META_DIM = 2
_SCHEMA_VERSION = 1
_VECTOR = "embedding"
_FACE_FIELDS = [
    "face_id",
    "external_image_id",
    "image_id",
    "user_id",
    "created_at_ms",
    "details",
]
_META_FIELDS = [
    "name",
    "milvus_name",
    "model",
    "dim",
    "created_at_ms",
    "retention_days",
    "require_confirmation",
    "schema_version",
]
MAX_DIM = 4096
MAX_RETENTION_DAYS = 36500
MAX_PAGE = 4096
MAX_QUERIES = 1024
_TOKEN_MAX_CHARS = 1024
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+=*\.[A-Za-z0-9_\-]+=*")
# Milvus caps topk / query limit at 16384; one page of an internal id scan stays well below.
_SCAN_PAGE = 4096


class UserExists(FacestreamError):
    """CreateUser for a UserId the collection already has."""

    code = "ConflictException"
    http_status = 400


def user_key(name: str, user_id: str) -> str:
    """Primary key of a user row: the collection's hash prefix, then the user id (both validated).

    Ascending key order is user-id order within one collection.
    """
    return milvus_name_for(name)[3:] + ":" + user_id


def milvus_name_for(name: str) -> str:
    """Milvus collection name holding the faces of collection ``name`` (already validated)."""
    return "fs_" + hashlib.sha256(name.encode("ascii")).hexdigest()[:32]


class MilvusFaceStore:
    """Face collections with upsert, listing, deletion and batched cosine search, on Milvus Lite
    or a Milvus server (this process's own client; it satisfies :class:`FaceStore`).

    Thread-safety: one instance may be shared by threads (pymilvus clients are), but
    collection create/delete are not atomic across processes.
    """

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._client_obj: Any = None
        self._loaded: set[str] = set()
        self._meta_ready = False
        secret = config.pagination_secret
        self._token_key = (
            secret.get_secret_value().encode("utf-8") if secret is not None else secrets.token_bytes(32)
        )

    # ── connection and error mapping ───────────────────────────────────────────────────────

    @property
    def uri(self) -> str:
        return self.config.uri

    def _scrub(self, text: str) -> str:
        token = self.config.token
        if token is not None and token.get_secret_value():
            text = text.replace(token.get_secret_value(), "***")
        return text

    @contextmanager
    def _milvus(self, what: str) -> Iterator[None]:
        """Map any Milvus/gRPC/socket failure inside the block to :class:`StoreUnavailable`."""
        try:
            yield
        except FacestreamError:
            raise
        except Exception as exc:
            # pymilvus raises MilvusException, grpc.RpcError and plain OSErrors depending on
            # where the connection broke; all mean the same thing to our callers.
            message = self._scrub(f"Milvus at {self.uri} failed to {what}: {type(exc).__name__}: {exc}")
            logger.warning("%s", message)
            # The verb only ("upsert", "search", "connect"...): bounded, never a name or id.
            _count("facestream_store_errors_total", 1, operation=what.split(" ", 1)[0])
            raise StoreUnavailable(message) from None

    def _client(self) -> Any:
        if self._client_obj is None:
            _quiet_lite_grpc_noise()
            from pymilvus import MilvusClient  # deferred: keeps import cost off CLI startup

            token = self.config.token.get_secret_value() if self.config.token is not None else ""
            if self.config.is_lite:
                # Reached on a missing file only to write (reads answer without it, see _absent).
                Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
            with self._milvus("connect"):
                self._client_obj = MilvusClient(uri=self.uri, token=token, timeout=self.config.timeout_s)
            logger.info("connected to Milvus at %s", self.uri)
        return self._client_obj

    def close(self) -> None:
        """Release the connection (idempotent). A Lite file stays open in-process until exit."""
        client, self._client_obj = self._client_obj, None
        self._loaded.clear()
        self._meta_ready = False
        if client is not None:
            with self._milvus("close the connection"):
                client.close()

    def __enter__(self) -> MilvusFaceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self) -> float:
        return self.config.timeout_s

    def _absent(self) -> bool:
        """A Milvus Lite file that does not exist (yet): it holds no collection, and reading
        it must not create it (nor its directory)."""
        return self.config.is_lite and self._client_obj is None and not Path(self.uri).exists()

    def _not_found(self, name: str) -> CollectionNotFound:
        if self._absent():
            return CollectionNotFound(
                f"collection {name!r} does not exist: there is no face store at {self.uri}"
            )
        return CollectionNotFound(f"collection {name!r} does not exist at {self.uri}")

    def _index_params(self, field: str, metric: str, *, vector: bool = True) -> Any:
        client = self._client()
        params = client.prepare_index_params()
        if self.config.is_lite or not vector:
            # Lite: FLAT is exact brute force (its HNSW needs faiss, not installed here);
            # the metadata collection's dummy vector never gets searched.
            params.add_index(field, index_type="FLAT", metric_type=metric)
        else:
            params.add_index(
                field,
                index_type="HNSW",
                metric_type=metric,
                params={"M": self.config.hnsw_m, "efConstruction": self.config.hnsw_ef_construction},
            )
        return params

    def _ensure_loaded(self, milvus_name: str) -> None:
        if milvus_name in self._loaded:
            return
        with self._milvus(f"load collection {milvus_name}"):
            self._client().load_collection(milvus_name, timeout=self._t())
        self._loaded.add(milvus_name)

    # ── metadata collection ────────────────────────────────────────────────────────────────

    def _ensure_meta(self) -> None:
        if self._meta_ready:
            return
        from pymilvus import DataType

        client = self._client()
        with self._milvus("prepare the metadata collection"):
            if not client.has_collection(META_COLLECTION, timeout=self._t()):
                schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=255)
                schema.add_field("milvus_name", DataType.VARCHAR, max_length=64)
                schema.add_field("model", DataType.VARCHAR, max_length=128)
                schema.add_field("dim", DataType.INT64)
                schema.add_field("created_at_ms", DataType.INT64)
                schema.add_field("retention_days", DataType.INT64)  # -1: keep forever
                schema.add_field("require_confirmation", DataType.BOOL)
                schema.add_field("schema_version", DataType.INT64)
                schema.add_field("meta_vec", DataType.FLOAT_VECTOR, dim=_META_DIM)
                client.create_collection(
                    META_COLLECTION,
                    schema=schema,
                    index_params=self._index_params("meta_vec", "L2", vector=False),
                    consistency_level="Strong",
                    timeout=self._t(),
                )
                logger.info("created metadata collection %s at %s", META_COLLECTION, self.uri)
        self._ensure_loaded(META_COLLECTION)
        self._meta_ready = True

    def _meta_row(self, name: str) -> dict[str, Any] | None:
        if self._absent():
            return None
        self._ensure_meta()
        with self._milvus(f"read metadata of collection {name!r}"):
            rows = self._client().query(
                META_COLLECTION,
                filter=f"name == {v.quote(name)}",
                output_fields=_META_FIELDS,
                timeout=self._t(),
            )
        return dict(rows[0]) if rows else None

    def _require(self, name: object) -> dict[str, Any]:
        name = v.check_collection_name(name)
        row = self._meta_row(name)
        if row is None:
            raise self._not_found(name)
        self._ensure_loaded(str(row["milvus_name"]))
        return row

    # ── collections ────────────────────────────────────────────────────────────────────────

    def create_collection(
        self,
        name: str,
        *,
        model: str,
        dim: int,
        retention_days: int | None = None,
        require_confirmation: bool = False,
    ) -> CollectionInfo:
        """Create an empty collection for ``dim``-dimensional embeddings of ``model``.

        Raises :class:`CollectionExists` if ``name`` is taken, :class:`InvalidParameter` for
        a bad name, an uncalibrated model, ``dim`` outside [2, 4096] or a bad retention.
        """
        from pymilvus import DataType

        name = v.check_collection_name(name)
        model = v.check_model(model)
        anchors_for(model)  # a collection nobody can score similarities for is useless
        dim = v.check_int(dim, "dim", 2, MAX_DIM)
        if retention_days is not None:
            v.check_int(retention_days, "retention_days", 1, MAX_RETENTION_DAYS)
        if type(require_confirmation) is not bool:
            raise InvalidParameter(f"require_confirmation must be a bool, got {require_confirmation!r}")
        self._ensure_meta()  # the first write to a store that does not exist yet creates it
        if self._meta_row(name) is not None:
            raise CollectionExists(f"collection {name!r} already exists at {self.uri}")

        milvus_name = milvus_name_for(name)
        created_at_ms = int(time.time() * 1000)
        client = self._client()
        with self._milvus(f"create collection {name!r}"):
            if client.has_collection(milvus_name, timeout=self._t()):
                # Left behind by a create that died before writing its metadata row: no row
                # means no one can have indexed faces into it through us.
                logger.warning("dropping orphan Milvus collection %s for %r", milvus_name, name)
                client.drop_collection(milvus_name, timeout=self._t())
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("face_id", DataType.VARCHAR, is_primary=True, max_length=36)
            # Milvus 2.3 has no NULL: "" stands for None in the two optional strings.
            schema.add_field("external_image_id", DataType.VARCHAR, max_length=255)
            schema.add_field("image_id", DataType.VARCHAR, max_length=64)
            schema.add_field("user_id", DataType.VARCHAR, max_length=128)
            schema.add_field("created_at_ms", DataType.INT64)
            schema.add_field("details", DataType.JSON)
            schema.add_field(_VECTOR, DataType.FLOAT_VECTOR, dim=dim)
            client.create_collection(
                milvus_name,
                schema=schema,
                index_params=self._index_params(_VECTOR, "COSINE"),
                consistency_level=self.config.consistency,
                timeout=self._t(),
            )
            client.upsert(
                META_COLLECTION,
                [
                    {
                        "name": name,
                        "milvus_name": milvus_name,
                        "model": model,
                        "dim": dim,
                        "created_at_ms": created_at_ms,
                        "retention_days": -1 if retention_days is None else retention_days,
                        "require_confirmation": require_confirmation,
                        "schema_version": _SCHEMA_VERSION,
                        "meta_vec": [0.0, 0.0],
                    }
                ],
                timeout=self._t(),
            )
        self._loaded.add(milvus_name)
        logger.info("created collection %r (%s, model %s, dim %s)", name, milvus_name, model, dim)
        return CollectionInfo(
            name=name,
            model=model,
            dim=dim,
            face_count=0,
            created_at=created_at_ms,
            retention_days=retention_days,
            require_confirmation=require_confirmation,
        )

    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""
        if self._absent():
            return []
        self._ensure_meta()
        return self._scan_keys(META_COLLECTION, "name", "")

    def describe_collection(self, name: str) -> CollectionInfo:
        row = self._require(name)
        return CollectionInfo(
            name=str(row["name"]),
            model=str(row["model"]),
            dim=int(row["dim"]),
            face_count=self._count(str(row["milvus_name"])),
            created_at=int(row["created_at_ms"]),
            retention_days=None if int(row["retention_days"]) < 0 else int(row["retention_days"]),
            require_confirmation=bool(row["require_confirmation"]),
        )

    def delete_collection(self, name: str) -> None:
        """Drop the collection and every face in it."""
        name = v.check_collection_name(name)
        row = self._meta_row(name)
        if row is None:
            raise self._not_found(name)
        milvus_name = str(row["milvus_name"])
        client = self._client()
        with self._milvus(f"delete collection {name!r}"):
            # Faces first: a crash in between leaves metadata pointing at nothing, which
            # delete_collection can finish, rather than faces no one can find.
            if client.has_collection(milvus_name, timeout=self._t()):
                client.drop_collection(milvus_name, timeout=self._t())
            if client.has_collection(USERS_COLLECTION, timeout=self._t()):
                self._ensure_loaded(USERS_COLLECTION)
                client.delete(USERS_COLLECTION, filter=f"collection == {v.quote(name)}", timeout=self._t())
            client.delete(META_COLLECTION, filter=f"name == {v.quote(name)}", timeout=self._t())
        self._loaded.discard(milvus_name)
        logger.info("deleted collection %r (%s)", name, milvus_name)

    def _count(self, milvus_name: str, expr: str = "") -> int:
        with self._milvus(f"count rows of {milvus_name}"):
            rows = self._client().query(
                milvus_name, filter=expr, output_fields=["count(*)"], timeout=self._t()
            )
        return int(rows[0]["count(*)"])

    def _query_page(
        self, milvus_name: str, key: str, after: str, expr: str, limit: int, fields: list[str]
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` rows with ``key > after`` (and ``expr``), in ascending ``key`` order.

        ``iterator=True`` asks both Lite and the 2.3 server for primary-key order (without it
        Lite returns rows in storage order); the client-side sort only guards that contract.
        """
        where = f"{key} > {v.quote(after)}" + (f" and ({expr})" if expr else "")
        with self._milvus(f"query {milvus_name}"):
            rows = self._client().query(
                milvus_name,
                filter=where,
                output_fields=fields,
                limit=limit,
                iterator="True",
                timeout=self._t(),
            )
        return sorted((dict(r) for r in rows), key=lambda r: str(r[key]))

    def _scan_keys(self, milvus_name: str, key: str, expr: str) -> list[str]:
        """Every primary key matching ``expr``, ascending, fetched page by page."""
        keys: list[str] = []
        after = ""
        while True:
            page = self._query_page(milvus_name, key, after, expr, _SCAN_PAGE, [key])
            keys.extend(str(r[key]) for r in page)
            if len(page) < _SCAN_PAGE:
                return keys
            after = keys[-1]

    # ── faces ──────────────────────────────────────────────────────────────────────────────

    def _check_model(self, row: dict[str, Any], model: object) -> None:
        model = v.check_model(model)
        if model != row["model"]:
            raise ModelMismatch(
                f"collection {row['name']!r} holds {row['model']} embeddings (dim {row['dim']}); got {model}"
            )

    def add_faces(self, collection: str, records: Sequence[FaceRecord], *, model: str) -> list[str]:
        """Upsert ``records`` (each with an embedding of the collection's dim) by ``face_id``.

        Indexing the same face_id twice leaves one row holding the latest values, so reruns
        are idempotent. Returns the face ids in input order.
        """
        row = self._require(collection)
        self._check_model(row, model)
        dim = int(row["dim"])
        if not isinstance(records, Sequence) or isinstance(records, str | bytes):
            raise InvalidParameter(f"records must be a sequence of FaceRecord, got {type(records).__name__}")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for rec in records:
            if not isinstance(rec, FaceRecord):
                raise InvalidParameter(f"records must be FaceRecord instances, got {type(rec).__name__}")
            if rec.embedding is None:
                raise InvalidParameter(f"face {rec.face_id} has no embedding; cannot index it")
            if rec.embedding.shape != (dim,):
                raise ModelMismatch(
                    f"face {rec.face_id}: embedding shape {rec.embedding.shape} does not match "
                    f"collection {row['name']!r} ({row['model']}, dim {dim})"
                )
            if rec.face_id in seen:
                # Which duplicate wins would be up to Milvus; make the caller decide.
                raise InvalidParameter(f"face id {rec.face_id} appears more than once in one batch")
            seen.add(rec.face_id)
            rows.append(_to_row(rec))
        milvus_name = str(row["milvus_name"])
        step = self.config.upsert_batch_rows
        with self._milvus(f"upsert faces into {row['name']!r}"):
            for i in range(0, len(rows), step):
                self._client().upsert(milvus_name, rows[i : i + step], timeout=self._t())
        logger.info("upserted %s faces into %r", len(rows), row["name"])
        _count("facestream_store_upserts_total", len(rows), collection=str(row["name"]))
        return [r["face_id"] for r in rows]

    def list_faces(
        self,
        collection: str,
        *,
        max_results: int = 100,
        next_token: str | None = None,
        user_id: str | None = None,
    ) -> tuple[list[FaceRecord], str | None]:
        """One page of faces ordered by face_id, and the token for the next page (or None).

        Tokens are opaque, signed and bound to the collection; a modified one raises
        :class:`InvalidParameter`. Faces added or removed between pages show up (or not)
        according to their face_id, never twice.
        """
        row = self._require(collection)
        max_results = v.check_int(max_results, "max_results", 1, MAX_PAGE)
        after = "" if next_token is None else self._decode_token(str(row["name"]), next_token)
        expr = "" if user_id is None else f"user_id == {v.quote(v.check_user_id(user_id))}"
        page = self._query_page(
            str(row["milvus_name"]), "face_id", after, expr, max_results + 1, _FACE_FIELDS
        )
        more = len(page) > max_results
        page = page[:max_results]
        token = self._encode_token(str(row["name"]), str(page[-1]["face_id"])) if more else None
        return [_from_row(r) for r in page], token

    def get_faces(
        self, collection: str, face_ids: Sequence[str], *, with_embeddings: bool = False
    ) -> list[FaceRecord]:
        """The faces among ``face_ids`` that exist, in the order asked (unknown ids skipped).

        ``with_embeddings=True`` fills ``embedding`` with a ``(d,)`` float32 array.
        """
        row = self._require(collection)
        ids = v.check_face_ids(face_ids)
        fields = [*_FACE_FIELDS, _VECTOR] if with_embeddings else _FACE_FIELDS
        with self._milvus(f"get faces from {row['name']!r}"):
            rows = self._client().query(
                str(row["milvus_name"]),
                filter=f"face_id in {v.quote_list(ids)}",
                output_fields=fields,
                timeout=self._t(),
            )
        by_id = {str(r["face_id"]): _from_row(dict(r)) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def delete_faces(self, collection: str, face_ids: Sequence[str]) -> list[str]:
        """Delete faces by id; returns those that existed (in the order asked)."""
        row = self._require(collection)
        ids = v.check_face_ids(face_ids)
        milvus_name = str(row["milvus_name"])
        # Milvus's delete result does not say which keys existed (Lite echoes the request,
        # the server counts), so look first.
        with self._milvus(f"delete faces from {row['name']!r}"):
            found = self._client().query(
                milvus_name,
                filter=f"face_id in {v.quote_list(ids)}",
                output_fields=["face_id"],
                timeout=self._t(),
            )
            present = {str(r["face_id"]) for r in found}
            existing = [i for i in ids if i in present]
            if existing:
                self._client().delete(
                    milvus_name, filter=f"face_id in {v.quote_list(existing)}", timeout=self._t()
                )
        logger.info("deleted %s of %s faces from %r", len(existing), len(ids), row["name"])
        return existing

    def delete_by_external_id(self, collection: str, external_image_id: str) -> list[str]:
        """Delete every face indexed with ``external_image_id``; returns their ids (sorted)."""
        row = self._require(collection)
        ext = v.check_external_image_id(external_image_id)
        ids = self._scan_keys(str(row["milvus_name"]), "face_id", f"external_image_id == {v.quote(ext)}")
        deleted: list[str] = []
        for i in range(0, len(ids), v.MAX_IDS_PER_CALL):
            deleted.extend(self.delete_faces(collection, ids[i : i + v.MAX_IDS_PER_CALL]))
        return deleted

    def compact(self, collection: str) -> None:
        """Flush and compact: rewrite the collection's segments without deleted rows.

        Erasure calls this: a Milvus delete only writes a tombstone, and the deleted rows'
        fields (ExternalImageId, vector) stay in the segment files until a compaction.
        Milvus Lite compacts at once; a server compacts in the background (not awaited).
        """
        row = self._require(collection)
        with self._milvus(f"compact {row['name']!r}"):
            self._client().flush(str(row["milvus_name"]), timeout=self._t())
            self._client().compact(str(row["milvus_name"]), timeout=self._t())

    def faces_older_than(self, collection: str, cutoff_ms: int) -> list[str]:
        """Ids of faces with ``created_at_ms < cutoff_ms`` (epoch ms), sorted: retention input."""
        row = self._require(collection)
        cutoff = v.check_int(cutoff_ms, "cutoff_ms", 0, 2**62)
        return self._scan_keys(str(row["milvus_name"]), "face_id", f"created_at_ms < {cutoff}")

    # ── search ─────────────────────────────────────────────────────────────────────────────

    def search(
        self,
        collection: str,
        queries: np.ndarray,
        *,
        model: str,
        max_faces: int,
        min_similarity: float,
        external_image_id: str | None = None,
        users_only: bool = False,
    ) -> list[list[SearchHit]]:
        """Most similar stored faces for each of ``q`` query embeddings, in one Milvus call.

        ``queries``: ``(q, d)`` float32, rows L2-normalised, ``d`` the collection's dim.
        Returns ``q`` lists of at most ``max_faces`` hits with Similarity (0-100, via
        :func:`facestream.similarity.cosine_to_similarity`) ``>= min_similarity``, highest
        first (ties by face_id). ``hit.extra["cosine"]`` is the raw cosine similarity.
        """
        row = self._require(collection)
        self._check_model(row, model)
        dim = int(row["dim"])
        max_faces = v.check_int(max_faces, "max_faces", 1, MAX_PAGE)
        min_sim = v.check_float(min_similarity, "min_similarity", 0.0, 100.0)
        q = _check_queries(queries, dim, str(row["name"]), str(row["model"]))
        expr = ""
        if external_image_id is not None:
            expr = f"external_image_id == {v.quote(v.check_external_image_id(external_image_id))}"
        if users_only:
            # Faces associated with a user: one identity made of several faces.
            expr = f'({expr}) and user_id != ""' if expr else 'user_id != ""'
        if self.config.is_lite:
            params: dict[str, Any] = {"metric_type": "COSINE"}
        else:
            # HNSW needs ef >= k to return k results at all.
            params = {"metric_type": "COSINE", "params": {"ef": max(self.config.search_ef, max_faces)}}
        with self._milvus(f"search {row['name']!r}"):
            results = self._client().search(
                str(row["milvus_name"]),
                data=q.tolist(),
                anns_field=_VECTOR,
                filter=expr,
                limit=max_faces,
                output_fields=["face_id", "external_image_id", "image_id", "user_id"],
                search_params=params,
                timeout=self._t(),
            )
        # The threshold is applied here rather than as a Milvus range search: top-k then
        # cut gives the same answer (cosine order is similarity order) and behaves the same
        # on both backends.
        out: list[list[SearchHit]] = []
        for hits in results:
            cos = np.array([float(h["distance"]) for h in hits], dtype=np.float64)
            sims = cosine_to_similarity(str(row["model"]), cos) if len(hits) else cos
            found = []
            for h, c, s in zip(hits, cos, sims, strict=True):
                if s < min_sim:
                    continue
                ent = h["entity"]
                found.append(
                    SearchHit(
                        face_id=str(ent["face_id"]),
                        similarity=float(s),
                        external_image_id=ent["external_image_id"] or None,
                        image_id=str(ent["image_id"]),
                        user_id=ent["user_id"] or None,
                        extra={"cosine": float(c)},
                    )
                )
            found.sort(key=lambda hit: (-hit.similarity, hit.face_id))
            out.append(found)
        return out

    def list_collections_page(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        """One page of collection names, ascending, and the token for the next page (or None)."""
        max_results = v.check_int(max_results, "max_results", 1, MAX_PAGE)
        after = "" if next_token is None else self._decode_token("", next_token, "collections")
        if self._absent():
            return [], None
        self._ensure_meta()
        page = self._query_page(META_COLLECTION, "name", after, "", max_results + 1, ["name"])
        names = [str(r["name"]) for r in page]
        more = len(names) > max_results
        names = names[:max_results]
        return names, (self._encode_token("", names[-1], "collections") if more else None)

    # ── users: several faces of one person, searched as one identity ───────────────────────

    def _ensure_users(self) -> None:
        if USERS_COLLECTION in self._loaded:
            return
        from pymilvus import DataType

        client = self._client()
        with self._milvus("prepare the users collection"):
            if not client.has_collection(USERS_COLLECTION, timeout=self._t()):
                schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
                schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=200)
                schema.add_field("collection", DataType.VARCHAR, max_length=255)
                schema.add_field("user_id", DataType.VARCHAR, max_length=128)
                schema.add_field("created_at_ms", DataType.INT64)
                schema.add_field("meta_vec", DataType.FLOAT_VECTOR, dim=_META_DIM)
                client.create_collection(
                    USERS_COLLECTION,
                    schema=schema,
                    index_params=self._index_params("meta_vec", "L2", vector=False),
                    consistency_level="Strong",
                    timeout=self._t(),
                )
                logger.info("created users collection %s at %s", USERS_COLLECTION, self.uri)
        self._ensure_loaded(USERS_COLLECTION)

    def _user_row(self, name: str, user_id: str) -> dict[str, Any] | None:
        self._ensure_users()
        with self._milvus(f"read user {user_id!r} of {name!r}"):
            rows = self._client().query(
                USERS_COLLECTION,
                filter=f"key == {v.quote(user_key(name, user_id))}",
                output_fields=["user_id", "created_at_ms"],
                timeout=self._t(),
            )
        return dict(rows[0]) if rows else None

    def create_user(self, collection: str, user_id: str) -> None:
        """Add an (empty) user to a collection; :class:`UserExists` if the id is taken."""
        row = self._require(collection)
        name = str(row["name"])
        user_id = v.check_user_id(user_id)
        if self._user_row(name, user_id) is not None:
            raise UserExists(f"user {user_id!r} already exists in collection {name!r}")
        with self._milvus(f"create user {user_id!r} in {name!r}"):
            self._client().upsert(
                USERS_COLLECTION,
                [
                    {
                        "key": user_key(name, user_id),
                        "collection": name,
                        "user_id": user_id,
                        "created_at_ms": int(time.time() * 1000),
                        "meta_vec": [0.0, 0.0],
                    }
                ],
                timeout=self._t(),
            )
        logger.info("created user %r in %r", user_id, name)

    def user_exists(self, collection: str, user_id: str) -> bool:
        row = self._require(collection)
        return self._user_row(str(row["name"]), v.check_user_id(user_id)) is not None

    def require_user(self, collection: str, user_id: str) -> None:
        if not self.user_exists(collection, user_id):
            from facestream.errors import ResourceNotFound

            raise ResourceNotFound(f"user {user_id!r} does not exist in collection {collection!r}")

    def user_face_ids(self, collection: str, user_id: str) -> list[str]:
        """Ids of the faces associated with ``user_id``, sorted."""
        row = self._require(collection)
        uid = v.check_user_id(user_id)
        return self._scan_keys(str(row["milvus_name"]), "face_id", f"user_id == {v.quote(uid)}")

    def delete_user(self, collection: str, user_id: str) -> list[str]:
        """Remove a user; its faces stay in the collection, no longer associated. Returns them."""
        row = self._require(collection)
        name = str(row["name"])
        self.require_user(name, user_id)
        faces = self.user_face_ids(name, user_id)
        for i in range(0, len(faces), v.MAX_IDS_PER_CALL):
            self.set_face_user(name, faces[i : i + v.MAX_IDS_PER_CALL], None)
        with self._milvus(f"delete user {user_id!r} of {name!r}"):
            self._client().delete(
                USERS_COLLECTION, filter=f"key == {v.quote(user_key(name, user_id))}", timeout=self._t()
            )
        logger.info("deleted user %r of %r (%s faces disassociated)", user_id, name, len(faces))
        return faces

    def list_users(
        self, collection: str, *, max_results: int = 100, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        """One page of user ids of a collection, ascending, and the next page's token (or None)."""
        row = self._require(collection)
        name = str(row["name"])
        self._ensure_users()
        max_results = v.check_int(max_results, "max_results", 1, MAX_PAGE)
        after_user = None if next_token is None else self._decode_token(name, next_token, "users")
        after = "" if after_user is None else user_key(name, after_user)
        expr = f"collection == {v.quote(name)}"
        page = self._query_page(USERS_COLLECTION, "key", after, expr, max_results + 1, ["key", "user_id"])
        ids = [str(r["user_id"]) for r in page]
        more = len(ids) > max_results
        ids = ids[:max_results]
        return ids, (self._encode_token(name, ids[-1], "users") if more else None)

    def count_users(self, collection: str) -> int:
        row = self._require(collection)
        self._ensure_users()
        return self._count(USERS_COLLECTION, f"collection == {v.quote(str(row['name']))}")

    def set_face_user(self, collection: str, face_ids: Sequence[str], user_id: str | None) -> list[str]:
        """Point faces at ``user_id`` (or at no user); returns the ids that exist and changed.

        Milvus has no partial update, so each row is read with its vector and written back.
        """
        row = self._require(collection)
        if user_id is not None:
            v.check_user_id(user_id)
        faces = self.get_faces(collection, face_ids, with_embeddings=True)
        changed = [dataclasses.replace(f, user_id=user_id) for f in faces if f.user_id != user_id]
        if changed:
            with self._milvus(f"update faces of {row['name']!r}"):
                self._client().upsert(
                    str(row["milvus_name"]), [_to_row(f) for f in changed], timeout=self._t()
                )
        return [f.face_id for f in changed]

    # ── pagination tokens ──────────────────────────────────────────────────────────────────

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._token_key, payload, hashlib.sha256).digest()[:16]

    def _encode_token(self, collection: str, after: str, kind: str | None = None) -> str:
        body: dict[str, str | int] = {"v": 1, "c": collection, "a": after}
        if kind is not None:
            body["k"] = kind
        payload = json.dumps(body, separators=(",", ":")).encode()
        return self._encode_token_payload(payload)

    def _encode_token_payload(self, payload: bytes) -> str:
        b64 = base64.urlsafe_b64encode
        return f"{b64(payload).decode()}.{b64(self._sign(payload)).decode()}"

    def _decode_token(self, collection: str, token: object, kind: str | None = None) -> str:
        bad = InvalidParameter(f"next_token is not a token issued for collection {collection!r}")
        if type(token) is not str or len(token) > _TOKEN_MAX_CHARS or not _TOKEN.fullmatch(token):
            raise bad
        body, sig = token.split(".")
        try:
            # validate=True: the default silently skips non-alphabet characters.
            payload = base64.b64decode(body, altchars=b"-_", validate=True)
            signature = base64.b64decode(sig, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise bad from None
        # Only the exact string we issued is accepted (no alternative encodings of it).
        if token != self._encode_token_payload(payload) or not hmac.compare_digest(
            signature, self._sign(payload)
        ):
            raise bad
        try:
            data = json.loads(payload)
        except ValueError:
            raise bad from None
        if (
            not isinstance(data, dict)
            or data.get("v") != 1
            or data.get("c") != collection
            or data.get("k") != kind
        ):
            raise bad
        if kind == "users":
            return v.check_user_id(data.get("a"))
        if kind == "collections":
            return v.check_collection_name(data.get("a"))
        return v.check_face_id(data.get("a"))


class _DropUnimplementedAllocTimestamp(logging.Filter):
    """Milvus Lite's in-process gRPC server does not implement AllocTimestamp, which pymilvus
    calls when an index is created; grpc logs that harmless refusal as an ERROR with a
    traceback. Drop exactly that record and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, NotImplementedError) and "AllocTimestamp" in _tb_text(record))


def _tb_text(record: logging.LogRecord) -> str:
    import traceback

    if not record.exc_info or record.exc_info[2] is None:
        return ""
    return "".join(traceback.format_tb(record.exc_info[2]))


def _quiet_lite_grpc_noise() -> None:
    grpc_log = logging.getLogger("grpc._server")
    if not any(isinstance(f, _DropUnimplementedAllocTimestamp) for f in grpc_log.filters):
        grpc_log.addFilter(_DropUnimplementedAllocTimestamp())


def _count(metric: str, value: float, **labels: str) -> None:
    """A counter increment that never fails a store operation."""
    if not value:
        return
    try:
        from facestream import metrics

        metrics.inc(metric, value, **labels)
    except Exception as exc:  # a metrics backend problem must not become a store error
        logger.debug("metric %s not recorded: %s", metric, exc)


def _to_row(rec: FaceRecord) -> dict[str, Any]:
    assert rec.embedding is not None  # checked by the caller
    return {
        "face_id": rec.face_id,
        "external_image_id": rec.external_image_id or "",
        "image_id": rec.image_id,
        "user_id": rec.user_id or "",
        "created_at_ms": rec.created_at_ms,
        "details": {
            "bounding_box": list(rec.bounding_box),
            "confidence": rec.confidence,
            "quality": rec.quality,
        },
        _VECTOR: rec.embedding.astype(np.float32).tolist(),
    }


def _from_row(row: dict[str, Any]) -> FaceRecord:
    details = row["details"]
    if isinstance(details, str | bytes):  # some server versions hand JSON back as text
        details = json.loads(details)
    emb = row.get(_VECTOR)
    return FaceRecord(
        face_id=str(row["face_id"]),
        external_image_id=row["external_image_id"] or None,
        image_id=str(row["image_id"]),
        bounding_box=tuple(float(x) for x in details["bounding_box"]),  # type: ignore[arg-type]
        confidence=float(details["confidence"]),
        quality={str(k): float(x) for k, x in details["quality"].items()},
        created_at_ms=int(row["created_at_ms"]),
        user_id=row["user_id"] or None,
        embedding=None if emb is None else np.asarray(emb, dtype=np.float32),
    )


def _check_queries(queries: object, dim: int, name: str, model: str) -> np.ndarray:
    if not isinstance(queries, np.ndarray) or queries.dtype != np.float32 or queries.ndim != 2:
        got = (
            f"{queries.dtype} array of shape {queries.shape}"
            if isinstance(queries, np.ndarray)
            else type(queries).__name__
        )
        raise InvalidParameter(f"queries must be a (q, d) float32 array, got {got}")
    if queries.shape[1] != dim:
        raise ModelMismatch(
            f"queries have dim {queries.shape[1]}; collection {name!r} holds {model} embeddings of dim {dim}"
        )
    if not 1 <= queries.shape[0] <= MAX_QUERIES:
        raise InvalidParameter(f"expected 1 to {MAX_QUERIES} queries, got {queries.shape[0]}")
    if not np.isfinite(queries).all():
        raise InvalidParameter("queries contain NaN or infinite values")
    norms = np.linalg.norm(queries, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-3):
        raise InvalidParameter(
            f"queries must be L2-normalised, got norms in [{norms.min():.4f}, {norms.max():.4f}]"
        )
    return queries


def _satisfies_protocol(store: MilvusFaceStore) -> FaceStore:
    """Never called: mypy checks here that :class:`MilvusFaceStore` is a :class:`FaceStore`."""
    return store
