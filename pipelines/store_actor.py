"""One owner of the vector store per Ray cluster: a Ray actor wrapping :class:`FaceStore`.

Why an actor: Milvus Lite lets exactly one process open a ``.db`` file, and stream actors
are many processes. Routing every search through one actor works for Lite and for a Milvus
server alike (a server would also allow one client per actor; the actor keeps one code
path and one connection pool). Searches are one small gRPC call per track search, not per
frame, so a single actor with a few threads is far from a bottleneck (see bench/streams.py).

The actor is named after the store URI in the fixed namespace :data:`STORE_NAMESPACE`, so
every driver, job and Serve replica of the cluster finds the same one: the HTTP API
(:class:`RemoteFaceStore`) and the stream processors it starts share one owner of the file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from pydantic import SecretStr

from facestream.errors import FacestreamError, StoreUnavailable
from facestream.store import CollectionInfo, FaceRecord, FaceStore, StoreConfig
from facestream.types import SearchHit

log = logging.getLogger(__name__)

STORE_ACTOR_PREFIX = "facestream-store"
#: Ray namespace of the store actors: fixed, so drivers, jobs and Serve replicas share them.
STORE_NAMESPACE = "facestream"
#: FaceStore methods :meth:`StoreService.invoke` forwards (its public interface, nothing private).
FORWARDED_METHODS = frozenset(
    {
        "add_faces",
        "compact",
        "count_users",
        "create_collection",
        "create_user",
        "delete_by_external_id",
        "delete_collection",
        "delete_faces",
        "delete_user",
        "describe_collection",
        "faces_older_than",
        "get_faces",
        "list_collections",
        "list_collections_page",
        "list_faces",
        "list_users",
        "require_user",
        "search",
        "set_face_user",
        "user_exists",
        "user_face_ids",
    }
)


class StoreService:
    """Actor body: the subset of :class:`FaceStore` that pipelines need, and :meth:`invoke`."""

    def __init__(
        self, uri: str, token: SecretStr | None = None, pagination_secret: SecretStr | None = None
    ) -> None:
        config = StoreConfig(uri=uri, token=token, pagination_secret=pagination_secret)
        if config.is_lite:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
        self.store = FaceStore(config)

    def invoke(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Any public :class:`FaceStore` method by name (what :class:`RemoteFaceStore` sends)."""
        if method not in FORWARDED_METHODS:
            raise StoreUnavailable(f"store method {method!r} is not forwarded to the store actor")
        return getattr(self.store, method)(*args, **kwargs)

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


def store_actor_name(uri: str) -> str:
    return f"{STORE_ACTOR_PREFIX}-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"


def store_actor(
    uri: str, *, token: SecretStr | None = None, pagination_secret: SecretStr | None = None
) -> Any:
    """The named store actor for ``uri`` (created on first use, shared afterwards).

    ``token`` and ``pagination_secret`` only matter to the call that creates the actor; later
    callers get the running actor as it is. The actor lives as long as the process that
    created it (a driver, a job, the API replica): a caller that finds it dead calls this again.
    """
    cls = ray.remote(StoreService)
    return cls.options(
        name=store_actor_name(uri),
        namespace=STORE_NAMESPACE,
        get_if_exists=True,
        num_cpus=0,
        max_concurrency=8,
        max_restarts=3,
    ).remote(uri, token, pagination_secret)


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


class RemoteFaceStore:
    """:class:`FaceStore`'s interface, every call run by the store actor of the same URI.

    What the HTTP API uses with Milvus Lite, so that it and the stream processors it starts
    share one owner of the ``.db`` file. Errors come back as themselves (``CollectionNotFound``
    and the rest); an actor that died (its creator exited) is looked up or created again once.
    """

    def __init__(
        self,
        uri: str,
        *,
        token: SecretStr | None = None,
        pagination_secret: SecretStr | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.uri = uri
        self._token = token
        self._pagination_secret = pagination_secret
        self._timeout_s = timeout_s
        self.actor = store_actor(uri, token=token, pagination_secret=pagination_secret)

    def _invoke(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(self.actor.invoke.remote(method, args, kwargs), self._timeout_s)
        except StoreUnavailable as exc:
            if "store actor died" not in exc.message:
                raise
            log.warning("store actor for %s died; looking it up again", self.uri)
            self.actor = store_actor(self.uri, token=self._token, pagination_secret=self._pagination_secret)
            return call(self.actor.invoke.remote(method, args, kwargs), self._timeout_s)

    def __getattr__(self, name: str) -> Any:
        if name not in FORWARDED_METHODS:
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._invoke(name, *args, **kwargs)

        method.__name__ = name
        return method

    def close(self) -> None:
        """Nothing to release here: the actor owns the connection and outlives this client."""
