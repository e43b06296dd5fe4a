"""Vector store: face collections on Milvus Lite or a Milvus server.

:class:`FaceStore` is what a store does (a protocol); :class:`MilvusFaceStore` is this process's
own Milvus client, one implementation of it (the store actor's client,
``pipelines.store_actor.RemoteFaceStore``, is the other).
"""

from facestream.store.config import StoreConfig
from facestream.store.milvus import MilvusFaceStore
from facestream.store.protocol import FaceStore
from facestream.store.records import CollectionInfo, FaceRecord

__all__ = ["CollectionInfo", "FaceRecord", "FaceStore", "MilvusFaceStore", "StoreConfig"]
