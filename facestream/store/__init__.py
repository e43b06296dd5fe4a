"""Vector store: face collections on Milvus Lite or a Milvus server.

:class:`FaceStore` is what a store does (a protocol); :class:`MilvusFaceStore` is this process's
own Milvus client, one implementation of it (the store actor's client is the other).
"""

from facestream.store.config import StoreConfig
from facestream.store.milvus import MilvusFaceStore
from facestream.store.protocol import FaceStore as FaceStoreProtocol
from facestream.store.records import CollectionInfo, FaceRecord

# TRANSITION (until serve/service.py and bench/streams.py construct MilvusFaceStore): the old
# name still constructs the Milvus store; then FaceStore becomes the protocol.
FaceStore = MilvusFaceStore

__all__ = ["CollectionInfo", "FaceRecord", "FaceStore", "FaceStoreProtocol", "MilvusFaceStore", "StoreConfig"]
