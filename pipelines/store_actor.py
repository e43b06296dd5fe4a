"""One owner of the vector store per Ray cluster: a Ray actor wrapping :class:`FaceStore`.

Why an actor: Milvus Lite lets exactly one process open a ``.db`` file, and stream actors
are many processes. Routing every search through one actor works for Lite and for a Milvus
server alike (a server would also allow one client per actor; the actor keeps one code
path and one connection pool). Searches are one small gRPC call per track search, not per
frame, so a single actor with a few threads is far from a bottleneck (see bench/streams.py).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray

from facestream.errors import FacestreamError, StoreUnavailable
from facestream.store import CollectionInfo, FaceRecord, FaceStore, StoreConfig
from facestream.types import SearchHit

log = logging.getLogger(__name__)

STORE_ACTOR_PREFIX = "facestream-store"


class StoreService:
    """Actor body: the subset of :class:`FaceStore` that pipelines need."""

    def __init__(self, uri: str) -> None:
        config = StoreConfig(uri=uri)
        if config.is_lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.store = FaceStore(config)

    def describe_collection(self, name: str) -> CollectionInfo:
        return self.store.describe_collection(name)

    def create_collection(self, name: str, *, model: str, dim: int) -> CollectionInfo:
        return self.store.create_collection(name, model=model, dim=dim)

    def delete_collection(self, name: str) -> None:
        self.store.delete_collection(name)

    def list_collections(self) -> list[str]:
        return self.store.list_collections()

    def add_faces(self, collection: str, records: Sequence[FaceRecord], *, model: str) -> list[str]:
        return self.store.add_faces(collection, records, model=model)

    def search(
        self, collection: str, queries: np.ndarray, *, model: str, max_faces: int, min_similarity: float
    ) -> list[list[SearchHit]]:
        return self.store.search(
            collection, queries, model=model, max_faces=max_faces, min_similarity=min_similarity
        )

    def close(self) -> None:
        self.store.close()


def store_actor(uri: str) -> Any:
    """The named store actor for ``uri`` (created on first use, shared afterwards)."""
    name = f"{STORE_ACTOR_PREFIX}-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"
    cls = ray.remote(StoreService)
    return cls.options(name=name, get_if_exists=True, num_cpus=0, max_concurrency=4, max_restarts=3).remote(
        uri
    )


def call(ref: Any, timeout_s: float) -> Any:
    """``ray.get`` with a timeout; our own errors come back as themselves, not wrapped."""
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise StoreUnavailable(f"store actor did not answer within {timeout_s}s") from None
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, FacestreamError):
            raise cause from None
        raise StoreUnavailable(f"store actor failed: {type(cause or exc).__name__}") from None
    except ray.exceptions.RayActorError as exc:
        raise StoreUnavailable(f"store actor died: {type(exc).__name__}") from None
