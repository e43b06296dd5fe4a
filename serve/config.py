"""Configuration of the HTTP API (pydantic v2, ``extra="forbid"``; validators do no I/O).

Limits default to Amazon Rekognition's: 5 MB of raw image bytes in a request, 15 MB for an
image read from a storage source, at most 100 faces per image.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from facestream.config import EmbeddingServiceConfig
from facestream.paths import StatePaths, default_home
from facestream.profiles import ProfileName
from facestream.rekognition import ArnConfig

_BUCKET = re.compile(r"[0-9A-Za-z.\-_]{3,255}")
_HOST = re.compile(r"[0-9A-Za-z.\-_]{1,253}|\[?[0-9A-Fa-f:]{2,45}\]?")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiLimits(_Model):
    max_image_bytes: int = Field(
        5 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024, description="raw image bytes in a request (Bytes)"
    )
    max_source_image_bytes: int = Field(
        15 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="image read from a storage source (S3Object mapped to a local image root)",
    )
    max_pixels: int = Field(
        40_000_000, ge=4096, le=400_000_000, description="width x height, checked before decoding"
    )
    max_faces_per_image: int = Field(
        100, ge=1, le=4096, description="faces kept per image by DetectFaces/IndexFaces (Rekognition: 100)"
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=4096,
        le=512 * 1024 * 1024,
        description="whole request body; base64 makes 5 MB of image about 6.7 MB of JSON",
    )
    analysis_timeout_s: float = Field(
        120.0, gt=0.0, le=3600.0, description="wait for the face analysis deployment, per image"
    )
    request_timeout_s: float = Field(
        180.0, gt=0.0, le=3600.0, description="Serve HTTP proxy timeout of one request"
    )
    max_in_flight_requests: int = Field(
        8,
        ge=1,
        le=4096,
        description="load shedding: requests one API replica works on at once (healthz not counted)",
    )
    max_queued_requests: int = Field(
        32,
        ge=0,
        le=65_536,
        description="load shedding: requests waiting for a slot; one more is answered 429 at once",
    )
    queue_wait_s: float = Field(
        30.0,
        gt=0.0,
        le=600.0,
        description="load shedding: a queued request that got no slot within this is answered 503",
    )
    retry_after_s: int = Field(
        1, ge=1, le=3600, description="Retry-After header (seconds) of a 429/503 load-shedding answer"
    )


class AuthConfig(_Model):
    keys_path: Path | None = Field(None, description="sqlite file of access keys; None: <home>/keys.sqlite")
    master_key: SecretStr | None = Field(
        None,
        description="Fernet key (urlsafe base64 of 32 bytes) encrypting access-key secrets at rest; "
        "None: FACESTREAM_MASTER_KEY, else <home>/master.key (created 0600 on first use)",
    )
    max_clock_skew_s: int = Field(
        300, ge=1, le=3600, description="SigV4: X-Amz-Date must be within this many seconds of now"
    )
    require_purpose_header: str = Field(
        "X-Facestream-Purpose",
        pattern=r"^[A-Za-z0-9\-]{1,64}$",
        description="header carrying the purpose (case id or reason) of searches",
    )


class ApiConfig(StatePaths, _Model):
    """Everything the API deployment needs; passed to each replica as a dict."""

    home: Path = Field(
        default_factory=default_home,
        description="state directory (keys, audit log, store); default: FACESTREAM_HOME, else the "
        "user's data directory ($XDG_DATA_HOME/facestream)",
    )
    store_uri: str | None = Field(
        None,
        min_length=4,
        max_length=1024,
        description="Milvus Lite *.db path or http://HOST:PORT; None: <home>/milvus.db",
    )
    store_token: SecretStr | None = Field(None, description="Milvus server token; never logged")
    pagination_secret: SecretStr | None = Field(
        None, description="HMAC key for NextToken; set it when several API replicas share a store"
    )
    audit_path: Path | None = Field(None, description="audit log; None: <home>/audit.jsonl")
    profile: ProfileName | None = Field(
        None,
        description="deployment profile (general: default threshold 80; public-safety: default and "
        "floor 99); FACESTREAM_PROFILE and --profile win over it; None: general",
    )
    store_access: Literal["auto", "actor", "direct"] = Field(
        "auto",
        description="how the API reaches the store: 'actor' through the shared store actor of the "
        "URI (the one owner of a Milvus Lite .db, shared with stream processors), 'direct' with its "
        "own client (Milvus server only), 'auto': actor for Lite, direct for a server",
    )
    events_path: Path | None = Field(
        None, description="event store (SQLite) of every stream processor; None: <home>/events.sqlite3"
    )
    media_dirs: tuple[Path, ...] = Field(
        (),
        max_length=64,
        description="directories file sources of stream processors may read; empty: "
        "FACESTREAM_MEDIA_DIRS, else <home>/media",
    )
    arn: ArnConfig = Field(
        default_factory=ArnConfig,
        description="how ARNs are spelled: arn:<partition>:rekognition:<region>:<account>:collection/<id> "
        "(and :streamprocessor/<name>)",
    )
    image_roots: dict[str, Path] = Field(
        default_factory=dict,
        description="S3Object.Bucket name -> local directory its Name is read from (no S3 here)",
        max_length=64,
    )
    webhook_hosts: tuple[str, ...] = Field(
        (),
        max_length=256,
        description="hosts (exact names or IP addresses) webhook sinks may POST to, besides loopback "
        "(127.0.0.1, ::1, localhost), which is always allowed; anything else is refused with 400",
    )
    limits: ApiLimits = Field(default_factory=ApiLimits)
    auth: AuthConfig = Field(default_factory=AuthConfig)

    @field_validator("image_roots")
    @classmethod
    def _bucket_names(cls, roots: dict[str, Path]) -> dict[str, Path]:
        for name in roots:
            if not _BUCKET.fullmatch(name):
                raise ValueError(f"image root name {name!r} must match {_BUCKET.pattern}")
        return roots

    @field_validator("webhook_hosts")
    @classmethod
    def _webhook_hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for h in hosts:
            if not _HOST.fullmatch(h):
                raise ValueError(f"webhook host {h!r} must be a host name or IP address (no scheme/port)")
        return tuple(h.lower() for h in hosts)

    @property
    def uses_store_actor(self) -> bool:
        if self.store_access == "auto":
            return self.resolved_store_uri.endswith(".db")
        return self.store_access == "actor"

    @property
    def resolved_keys_path(self) -> Path:
        return self.auth.keys_path or self.state.keys_db


class ApiDeploymentConfig(_Model):
    num_replicas: int = Field(
        1, ge=1, le=64, description="API replicas; keep 1 with Milvus Lite (one process per .db file)"
    )
    num_cpus: float = Field(0.5, gt=0.0, le=64.0, description="CPUs reserved per API replica")
    max_ongoing_requests: int = Field(
        64, ge=1, le=10_000, description="requests one replica works on at once (rest wait in the proxy)"
    )


class ApiAppArgs(_Model):
    """Arguments of :func:`serve.app.build_app` (``args:`` in cluster/serve.yaml)."""

    api: ApiConfig = Field(default_factory=ApiConfig)
    deployment: ApiDeploymentConfig = Field(default_factory=ApiDeploymentConfig)
    embedding: EmbeddingServiceConfig = Field(default_factory=EmbeddingServiceConfig)
    embedding_deployment_name: str = Field(
        "FaceAnalysis", pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="name stream jobs look it up by"
    )

    @model_validator(mode="after")
    def _lite_single_replica(self) -> ApiAppArgs:
        if self.api.resolved_store_uri.endswith(".db") and self.deployment.num_replicas > 1:
            raise ValueError(
                f"num_replicas {self.deployment.num_replicas} with Milvus Lite: only one process may "
                "open a .db file; use a Milvus server URI to scale the API"
            )
        lim = self.api.limits
        if self.deployment.max_ongoing_requests < lim.max_in_flight_requests + lim.max_queued_requests:
            raise ValueError(
                f"deployment.max_ongoing_requests {self.deployment.max_ongoing_requests} is below "
                f"limits.max_in_flight_requests + max_queued_requests "
                f"({lim.max_in_flight_requests} + {lim.max_queued_requests}): requests beyond it would "
                "wait in the Serve proxy, where load shedding cannot answer them"
            )
        if self.api.store_access == "direct" and self.api.resolved_store_uri.endswith(".db"):
            raise ValueError(
                "store_access 'direct' with Milvus Lite: stream processors need the store actor to be "
                "the one process that opens the .db file; use 'auto' or 'actor'"
            )
        return self
