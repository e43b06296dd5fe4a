"""One owner of the vector store per Ray cluster: a Ray actor wrapping a :class:`MilvusFaceStore`.

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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import ray
from pydantic import SecretStr

from facestream.errors import FacestreamError, StoreUnavailable
from facestream.store import CollectionInfo, FaceRecord, MilvusFaceStore, StoreConfig
from facestream.store.protocol import FaceStore
from facestream.types import SearchHit

log = logging.getLogger(__name__)

STORE_ACTOR_PREFIX = "facestream-store"
#: Ray namespace of the store actors: fixed, so drivers, jobs and Serve replicas share them.
STORE_NAMESPACE = "facestream"


class StoreService:
    """Actor body: a :class:`MilvusFaceStore`, every :class:`FaceStore` method delegated to it.

    Callers holding the actor handle call these as ``handle.search.remote(...)``; the
    :class:`RemoteFaceStore` client wraps them back into plain method calls.
    """

    def __init__(
        self, uri: str, token: SecretStr | None = None, pagination_secret: SecretStr | None = None
    ) -> None:
        self.store = MilvusFaceStore(StoreConfig(uri=uri, token=token, pagination_secret=pagination_secret))

    @property
    def uri(self) -> str:
        return self.store.uri

    def close(self) -> None:
        self.store.close()

    def create_collection(
        self,
        name: str,
        *,
        model: str,
        dim: int,
        retention_days: int | None = None,
        require_confirmation: bool = False,
    ) -> CollectionInfo:
        return self.store.create_collection(
            name,
            model=model,
            dim=dim,
            retention_days=retention_days,
            require_confirmation=require_confirmation,
        )

    def list_collections(self) -> list[str]:
        return self.store.list_collections()

    def list_collections_page(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        return self.store.list_collections_page(max_results=max_results, next_token=next_token)

    def describe_collection(self, name: str) -> CollectionInfo:
        return self.store.describe_collection(name)

    def delete_collection(self, name: str) -> None:
        self.store.delete_collection(name)

    def compact(self, collection: str) -> None:
        self.store.compact(collection)

    def add_faces(self, collection: str, records: Sequence[FaceRecord], *, model: str) -> list[str]:
        return self.store.add_faces(collection, records, model=model)

    def list_faces(
        self,
        collection: str,
        *,
        max_results: int = 100,
        next_token: str | None = None,
        user_id: str | None = None,
    ) -> tuple[list[FaceRecord], str | None]:
        return self.store.list_faces(
            collection, max_results=max_results, next_token=next_token, user_id=user_id
        )

    def get_faces(
        self, collection: str, face_ids: Sequence[str], *, with_embeddings: bool = False
    ) -> list[FaceRecord]:
        return self.store.get_faces(collection, face_ids, with_embeddings=with_embeddings)

    def delete_faces(self, collection: str, face_ids: Sequence[str]) -> list[str]:
        return self.store.delete_faces(collection, face_ids)

    def delete_by_external_id(self, collection: str, external_image_id: str) -> list[str]:
        return self.store.delete_by_external_id(collection, external_image_id)

    def faces_older_than(self, collection: str, cutoff_ms: int) -> list[str]:
        return self.store.faces_older_than(collection, cutoff_ms)

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
        return self.store.search(
            collection,
            queries,
            model=model,
            max_faces=max_faces,
            min_similarity=min_similarity,
            external_image_id=external_image_id,
            users_only=users_only,
        )

    def create_user(self, collection: str, user_id: str) -> None:
        self.store.create_user(collection, user_id)

    def user_exists(self, collection: str, user_id: str) -> bool:
        return self.store.user_exists(collection, user_id)

    def require_user(self, collection: str, user_id: str) -> None:
        self.store.require_user(collection, user_id)

    def user_face_ids(self, collection: str, user_id: str) -> list[str]:
        return self.store.user_face_ids(collection, user_id)

    def delete_user(self, collection: str, user_id: str) -> list[str]:
        return self.store.delete_user(collection, user_id)

    def list_users(
        self, collection: str, *, max_results: int = 100, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        return self.store.list_users(collection, max_results=max_results, next_token=next_token)

    def count_users(self, collection: str) -> int:
        return self.store.count_users(collection)

    def set_face_user(self, collection: str, face_ids: Sequence[str], user_id: str | None) -> list[str]:
        return self.store.set_face_user(collection, face_ids, user_id)


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
    """A :class:`FaceStore` whose every call is run by the store actor of the same URI.

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
        self._uri = uri
        self._token = token
        self._pagination_secret = pagination_secret
        self._timeout_s = timeout_s
        self.actor = store_actor(uri, token=token, pagination_secret=pagination_secret)

    @property
    def uri(self) -> str:
        return self._uri

    def _run(self, send: Callable[[Any], Any]) -> Any:
        """``send(actor handle)`` starts one call on the actor; its result, or our own error."""
        try:
            return call(send(self.actor), self._timeout_s)
        except StoreUnavailable as exc:
            if "store actor died" not in exc.message:
                raise
            log.warning("store actor for %s died; looking it up again", self._uri)
            self.actor = store_actor(self._uri, token=self._token, pagination_secret=self._pagination_secret)
            return call(send(self.actor), self._timeout_s)

    def close(self) -> None:
        """Nothing to release here: the actor owns the connection and outlives this client."""

    def create_collection(
        self,
        name: str,
        *,
        model: str,
        dim: int,
        retention_days: int | None = None,
        require_confirmation: bool = False,
    ) -> CollectionInfo:
        return self._run(
            lambda a: a.create_collection.remote(
                name,
                model=model,
                dim=dim,
                retention_days=retention_days,
                require_confirmation=require_confirmation,
            )
        )

    def list_collections(self) -> list[str]:
        return self._run(lambda a: a.list_collections.remote())

    def list_collections_page(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        return self._run(
            lambda a: a.list_collections_page.remote(max_results=max_results, next_token=next_token)
        )

    def describe_collection(self, name: str) -> CollectionInfo:
        return self._run(lambda a: a.describe_collection.remote(name))

    def delete_collection(self, name: str) -> None:
        self._run(lambda a: a.delete_collection.remote(name))

    def compact(self, collection: str) -> None:
        self._run(lambda a: a.compact.remote(collection))

    def add_faces(self, collection: str, records: Sequence[FaceRecord], *, model: str) -> list[str]:
        return self._run(lambda a: a.add_faces.remote(collection, records, model=model))

    def list_faces(
        self,
        collection: str,
        *,
        max_results: int = 100,
        next_token: str | None = None,
        user_id: str | None = None,
    ) -> tuple[list[FaceRecord], str | None]:
        return self._run(
            lambda a: a.list_faces.remote(
                collection, max_results=max_results, next_token=next_token, user_id=user_id
            )
        )

    def get_faces(
        self, collection: str, face_ids: Sequence[str], *, with_embeddings: bool = False
    ) -> list[FaceRecord]:
        return self._run(lambda a: a.get_faces.remote(collection, face_ids, with_embeddings=with_embeddings))

    def delete_faces(self, collection: str, face_ids: Sequence[str]) -> list[str]:
        return self._run(lambda a: a.delete_faces.remote(collection, face_ids))

    def delete_by_external_id(self, collection: str, external_image_id: str) -> list[str]:
        return self._run(lambda a: a.delete_by_external_id.remote(collection, external_image_id))

    def faces_older_than(self, collection: str, cutoff_ms: int) -> list[str]:
        return self._run(lambda a: a.faces_older_than.remote(collection, cutoff_ms))

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
        return self._run(
            lambda a: a.search.remote(
                collection,
                queries,
                model=model,
                max_faces=max_faces,
                min_similarity=min_similarity,
                external_image_id=external_image_id,
                users_only=users_only,
            )
        )

    def create_user(self, collection: str, user_id: str) -> None:
        self._run(lambda a: a.create_user.remote(collection, user_id))

    def user_exists(self, collection: str, user_id: str) -> bool:
        return self._run(lambda a: a.user_exists.remote(collection, user_id))

    def require_user(self, collection: str, user_id: str) -> None:
        self._run(lambda a: a.require_user.remote(collection, user_id))

    def user_face_ids(self, collection: str, user_id: str) -> list[str]:
        return self._run(lambda a: a.user_face_ids.remote(collection, user_id))

    def delete_user(self, collection: str, user_id: str) -> list[str]:
        return self._run(lambda a: a.delete_user.remote(collection, user_id))

    def list_users(
        self, collection: str, *, max_results: int = 100, next_token: str | None = None
    ) -> tuple[list[str], str | None]:
        return self._run(
            lambda a: a.list_users.remote(collection, max_results=max_results, next_token=next_token)
        )

    def count_users(self, collection: str) -> int:
        return self._run(lambda a: a.count_users.remote(collection))

    def set_face_user(self, collection: str, face_ids: Sequence[str], user_id: str | None) -> list[str]:
        return self._run(lambda a: a.set_face_user.remote(collection, face_ids, user_id))


def _satisfy_protocol(service: StoreService, client: RemoteFaceStore) -> tuple[FaceStore, FaceStore]:
    """Never called: mypy checks here that the actor body and its client are face stores."""
    return service, client
