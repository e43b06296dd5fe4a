"""Vector store: face collections on Milvus Lite or a Milvus server."""

from facestream.store.config import StoreConfig
from facestream.store.milvus import FaceStore
from facestream.store.records import CollectionInfo, FaceRecord

__all__ = ["CollectionInfo", "FaceRecord", "FaceStore", "StoreConfig"]
