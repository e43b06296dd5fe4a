"""What a face store does, whoever runs it: :class:`FaceStore`.

Two implementations satisfy it (checked by mypy where each is defined): the Milvus store of
this process (:class:`facestream.store.milvus.MilvusFaceStore`) and the client of the store
actor that owns a Milvus Lite file for a whole Ray cluster (``pipelines.store_actor.RemoteFaceStore``).
Everything above the store (the face operations, erasure, the API) is typed against this
protocol and works with either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from facestream.store.records import CollectionInfo, FaceRecord
from facestream.types import SearchHit


class FaceStore(Protocol):
    """Face collections with upsert, listing, deletion, users and batched cosine search.

    Errors are facestream's own (``CollectionNotFound``, ``InvalidParameter``,
    ``StoreUnavailable``...), whichever implementation raises them.
    """

    @property
    def uri(self) -> str:
        """the Milvus Lite path or server URI"""
        ...

    def close(self) -> None: ...

    # ── collections ──

    def create_collection(
        self,
        name: str,
        *,
        model: str,
        dim: int,
        retention_days: int | None = None,
        require_confirmation: bool = False,
    ) -> CollectionInfo: ...

    def list_collections(self) -> list[str]: ...

    def list_collections_page(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> tuple[list[str], str | None]: ...

    def describe_collection(self, name: str) -> CollectionInfo: ...

    def delete_collection(self, name: str) -> None: ...

    def compact(self, collection: str) -> None: ...

    # ── faces ──

    def add_faces(self, collection: str, records: Sequence[FaceRecord], *, model: str) -> list[str]: ...

    def list_faces(
        self,
        collection: str,
        *,
        max_results: int = 100,
        next_token: str | None = None,
        user_id: str | None = None,
    ) -> tuple[list[FaceRecord], str | None]: ...

    def get_faces(
        self, collection: str, face_ids: Sequence[str], *, with_embeddings: bool = False
    ) -> list[FaceRecord]: ...

    def delete_faces(self, collection: str, face_ids: Sequence[str]) -> list[str]: ...

    def delete_by_external_id(self, collection: str, external_image_id: str) -> list[str]: ...

    def faces_older_than(self, collection: str, cutoff_ms: int) -> list[str]: ...

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
    ) -> list[list[SearchHit]]: ...

    # ── users ──

    def create_user(self, collection: str, user_id: str) -> None: ...

    def user_exists(self, collection: str, user_id: str) -> bool: ...

    def require_user(self, collection: str, user_id: str) -> None: ...

    def user_face_ids(self, collection: str, user_id: str) -> list[str]: ...

    def delete_user(self, collection: str, user_id: str) -> list[str]: ...

    def list_users(
        self, collection: str, *, max_results: int = 100, next_token: str | None = None
    ) -> tuple[list[str], str | None]: ...

    def count_users(self, collection: str) -> int: ...

    def set_face_user(self, collection: str, face_ids: Sequence[str], user_id: str | None) -> list[str]: ...
