"""Configuration of the vector store (validated, no I/O)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_SERVER_URI = re.compile(r"(https?|tcp)://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9_]+)?/?")


class StoreConfig(BaseModel):
    """Where the faces live and how Milvus indexes and reads them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(
        description=(
            "A filesystem path ending in '.db' (embedded Milvus Lite, data in that directory) or "
            "'http://HOST:PORT' of a Milvus server. Credentials go in 'token', not in the URI."
        ),
        min_length=4,
        max_length=1024,
    )
    token: SecretStr | None = Field(
        default=None,
        description="Milvus server token ('user:password' or an API key); never logged.",
    )
    timeout_s: float = Field(
        default=30.0, gt=0.0, le=600.0, description="Timeout of each Milvus call, seconds."
    )
    # Defaults from `python -m bench.search` (1M clustered 128-d vectors, see README, Benchmarks):
    # M=16, efConstruction=128, ef=128 gave recall@10 0.999 against exact search (ef=64: 0.994;
    # M=8: 0.954 at ef=128), at a few ms per batched search.
    hnsw_m: int = Field(default=16, ge=4, le=64, description="Server only: HNSW graph degree M.")
    hnsw_ef_construction: int = Field(
        default=128, ge=8, le=1024, description="Server only: HNSW efConstruction."
    )
    search_ef: int = Field(
        default=128,
        ge=16,
        le=4096,
        description="Server only: HNSW ef at search time (raised to max_faces when that is larger).",
    )
    consistency: Literal["Strong", "Bounded", "Session", "Eventually"] = Field(
        default="Strong",
        description=(
            "Milvus consistency level of new collections. 'Strong' makes every read see every "
            "earlier write (deletes included), which deletion of a person relies on."
        ),
    )
    pagination_secret: SecretStr | None = Field(
        default=None,
        description=(
            "HMAC key signing ListFaces pagination tokens. Set the same value on every replica "
            "that serves one API; unset, a random key per process (tokens die with it)."
        ),
    )
    upsert_batch_rows: int = Field(
        default=1000, ge=1, le=10000, description="Rows per Milvus upsert request."
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, uri: str) -> str:
        if uri.endswith(".db"):
            if any(ord(c) < 32 for c in uri):
                raise ValueError("a Milvus Lite path must not contain control characters")
            return uri
        if "@" in uri:
            raise ValueError("credentials in the URI are not allowed; put them in 'token'")
        if not _SERVER_URI.fullmatch(uri):
            raise ValueError(f"uri {uri!r} is neither a path ending in '.db' nor 'http(s)://HOST:PORT[/DB]'")
        return uri

    @property
    def is_lite(self) -> bool:
        """True for an embedded Milvus Lite file, False for a Milvus server."""
        return self.uri.endswith(".db")
