"""Configuration of stream processors, their sources, tracking and sinks (pydantic v2).

Validators validate; they never touch the network or the disk. Whether a local file lies
under an allowed media directory is checked when the source opens (that needs the disk).
Every URL and token is a :class:`SecretStr`: a camera URL often carries a password.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from facestream.config import EmbeddingServiceConfig
from facestream.paths import StatePaths, default_home
from facestream.profiles import ProfileName
from facestream.similarity import DEFAULT_MATCH_THRESHOLD

#: a POSIX environment variable name
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

#: Schemes a stream source may use, by source kind. Anything else is refused.
ALLOWED_SCHEMES: dict[str, tuple[str, ...]] = {
    "rtsp": ("rtsp", "rtsps"),
    "hls": ("http", "https"),
    "mpegts": ("tcp", "udp"),
    "kinesis-video": ("http", "https"),
}
PROCESSOR_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
COLLECTION_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,255}")
#: the longest a processor may keep unknown faces, and keep each of them
MAX_UNKNOWN_DAYS = 30


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_url(url: SecretStr, kind: str) -> SecretStr:
    raw = url.get_secret_value()
    if any(ord(c) < 32 or c.isspace() for c in raw):
        raise ValueError(f"{kind} source URL must not contain whitespace or control characters")
    scheme = urlsplit(raw).scheme.lower()
    allowed = ALLOWED_SCHEMES[kind]
    if scheme not in allowed:
        # The scheme alone is safe to show; the rest may hold a password.
        raise ValueError(f"{kind} source URL scheme {scheme!r} is not allowed; expected one of {allowed}")
    if not urlsplit(raw).hostname:
        raise ValueError(f"{kind} source URL has no host")
    return url


class _NetworkSource(_Model):
    end_of_stream: Literal["reconnect", "stop"] = Field(
        "reconnect",
        description="when the source ends: reconnect (a camera that restarted) or stop (a finite "
        "recording, e.g. an HLS VOD playlist)",
    )
    realtime: bool = Field(
        False,
        description="pace decoding by timestamps: for sources that deliver faster than real time "
        "(VOD playlists, ON_DEMAND Kinesis playback); live sources pace themselves",
    )


class RtspSource(_NetworkSource):
    kind: Literal["rtsp"] = "rtsp"
    url: SecretStr = Field(
        description="rtsp:// or rtsps:// URL; user:password@ in it is masked everywhere it is shown",
        min_length=10,
        max_length=2048,
    )
    transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTP transport: tcp (interleaved, survives NAT and loss) or udp"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return _check_url(v, "rtsp")


class HlsSource(_NetworkSource):
    kind: Literal["hls"] = "hls"
    url: SecretStr = Field(
        description="http(s):// URL of an HLS playlist (.m3u8) or a progressive stream",
        min_length=10,
        max_length=4096,
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return _check_url(v, "hls")


class MpegTsSource(_NetworkSource):
    kind: Literal["mpegts"] = "mpegts"
    url: SecretStr = Field(
        description="tcp://HOST:PORT (we connect) or udp://HOST:PORT (we listen) carrying MPEG-TS",
        min_length=9,
        max_length=1024,
    )

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        return _check_url(v, "mpegts")


class FileSource(_Model):
    kind: Literal["file"] = "file"
    path: Path = Field(description="local video file; must lie under an allowed media directory")
    loop: bool = Field(False, description="start again at the end (replay as if it were a camera)")
    realtime: bool = Field(
        False,
        description="pace decoding by timestamps and drop frames like a live camera; False decodes "
        "as fast as inference allows and waits for it instead of dropping (lossless replay)",
    )

    @field_validator("path")
    @classmethod
    def _path(cls, v: Path) -> Path:
        if any(ord(c) < 32 for c in str(v)):
            raise ValueError("file source path must not contain control characters")
        return v


class KinesisVideoSource(_NetworkSource):
    """Amazon Kinesis Video Streams, read through its HLS session URL.

    With ``hls_session_url`` unset, the URL is requested with boto3's
    ``kinesis-video-archived-media`` ``get_hls_streaming_session_url`` when the source opens
    (needs boto3 and AWS credentials in the usual places); the URL then expires after
    ``session_expires_s`` and is fetched again on reconnect.
    """

    kind: Literal["kinesis-video"] = "kinesis-video"
    stream_name: str = Field(description="Kinesis video stream name", pattern=r"^[a-zA-Z0-9_.\-]{1,256}$")
    region: str = Field("us-east-1", description="AWS region", pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")
    playback_mode: Literal["LIVE", "LIVE_REPLAY", "ON_DEMAND"] = Field(
        "LIVE", description="HLS playback mode"
    )
    session_expires_s: int = Field(3600, ge=300, le=43200, description="HLS session URL lifetime")
    hls_session_url: SecretStr | None = Field(
        None, description="an HLS session URL already obtained (it embeds a session token: a secret)"
    )

    @field_validator("hls_session_url")
    @classmethod
    def _url(cls, v: SecretStr | None) -> SecretStr | None:
        return None if v is None else _check_url(v, "kinesis-video")


SourceConfig = Annotated[
    RtspSource | HlsSource | MpegTsSource | FileSource | KinesisVideoSource, Field(discriminator="kind")
]


class ReconnectConfig(_Model):
    open_timeout_s: float = Field(10.0, gt=0.0, le=120.0, description="timeout to open a source")
    stall_timeout_s: float = Field(
        5.0, gt=0.0, le=120.0, description="no packet for this long means the source stalled"
    )
    frame_timeout_s: float = Field(
        15.0,
        gt=0.0,
        le=600.0,
        description="no decoded video frame for this long, while bytes keep arriving (garbage, a "
        "stream of other tracks, undecodable video), means the source is unusable: reconnect. "
        "With keyframes_only it must exceed the source's keyframe interval",
    )
    initial_backoff_s: float = Field(0.5, gt=0.0, le=60.0, description="first wait before reconnecting")
    max_backoff_s: float = Field(10.0, gt=0.0, le=600.0, description="cap of the exponential backoff")
    jitter_ratio: float = Field(
        0.2, ge=0.0, le=1.0, description="each wait is scaled by a random factor in [1-r, 1+r]"
    )
    max_attempts: int | None = Field(
        None, ge=1, le=1_000_000, description="consecutive failed attempts before FAILED; None: forever"
    )

    @model_validator(mode="after")
    def _order(self) -> ReconnectConfig:
        if self.initial_backoff_s > self.max_backoff_s:
            raise ValueError(
                f"initial_backoff_s {self.initial_backoff_s} > max_backoff_s {self.max_backoff_s}"
            )
        return self


class TrackerConfig(_Model):
    """How faces of consecutive analysed frames become tracks (see :mod:`pipelines.tracker`).

    Identity thresholds are on the embedder's calibrated Similarity scale (0-100, the anchors
    of :mod:`facestream.similarity`), so one setting means the same for every model. With the
    defaults: ``same_person_similarity`` 80 is the equal-error point on the shared pairs
    (cosine 0.92 for dlib-resnet, 0.45 for facenet-vggface2); ``different_person_similarity``
    50 is cosine 0.88 for dlib-resnet, 0.25 for facenet-vggface2.
    """

    iou_min: float = Field(0.25, ge=0.0, le=1.0, description="box overlap that links a face to a track")
    same_person_similarity: float = Field(
        80.0,
        ge=0.0,
        le=100.0,
        description="Similarity (calibrated, 0-100) that links a face to a track without box overlap, "
        "and that a track's newest faces must keep with the face it was searched with",
    )
    different_person_similarity: float = Field(
        50.0,
        ge=0.0,
        le=100.0,
        description="below this Similarity an overlapping face is someone else: it starts a new track",
    )
    overlap_max_missed_frames: int = Field(
        1,
        ge=0,
        le=100,
        description="overlap alone links only to tracks seen in the last 1 + this many analysed frames; "
        "after a longer absence a face needs same_person_similarity (the spot may hold someone new)",
    )
    max_speed_face_widths_per_s: float = Field(
        8.0,
        gt=0.0,
        le=1000.0,
        description="fastest plausible movement of a face between its predicted and seen position, in "
        "face widths per second of stream time; farther faces start a new track",
    )
    motion_slack_face_widths: float = Field(
        1.0, ge=0.0, le=100.0, description="displacement allowed at any elapsed time (detector jitter)"
    )
    max_size_change_per_s: float = Field(
        2.0,
        gt=0.0,
        le=1000.0,
        description="how fast a face's size may change: the larger/smaller width ratio between a track "
        "and a face may be 1.25 + this x elapsed seconds of stream time; beyond it a new track starts",
    )
    drift_frames: int = Field(
        2,
        ge=1,
        le=100,
        description="consecutive faces of a track failing the same-person test against its searched face "
        "that split them off as a new track (searched on its own)",
    )
    max_gap_s: float = Field(1.5, gt=0.0, le=60.0, description="a track unseen this long (stream time) ends")
    min_face_px: int = Field(28, ge=8, le=1024, description="smaller faces are tracked but never searched")
    research_quality_gain: float = Field(
        1.25,
        ge=1.0,
        le=10.0,
        description="search again when a face this many times better than the last searched arrives",
    )
    max_searches_per_track: int = Field(6, ge=1, le=1000, description="store searches per track at most")
    search_margin: float = Field(
        15.0,
        ge=0.0,
        le=100.0,
        description="searches return hits down to threshold minus this, so the per-track aggregate "
        "sees weak evidence too; events still need the aggregate at or above the threshold",
    )

    @model_validator(mode="after")
    def _identity_order(self) -> TrackerConfig:
        if self.different_person_similarity > self.same_person_similarity:
            raise ValueError(
                f"different_person_similarity ({self.different_person_similarity}) must not exceed "
                f"same_person_similarity ({self.same_person_similarity})"
            )
        return self


class JsonlSinkConfig(_Model):
    kind: Literal["jsonl"] = "jsonl"
    path: Path = Field(description="append match records here, one JSON object per line")


class WebhookSinkConfig(_Model):
    kind: Literal["webhook"] = "webhook"
    url: SecretStr = Field(
        description="http(s) endpoint receiving one POST per record", min_length=10, max_length=2048
    )
    bearer_token: SecretStr | None = Field(None, description="sent as 'Authorization: Bearer ...'")
    timeout_s: float = Field(5.0, gt=0.0, le=120.0, description="per request")

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        scheme = urlsplit(v.get_secret_value()).scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"webhook URL scheme {scheme!r} is not allowed; expected http or https")
        return v


class EventStoreSinkConfig(_Model):
    kind: Literal["event-store"] = "event-store"
    path: Path = Field(description="SQLite file of the queryable event store")


SinkConfig = Annotated[
    JsonlSinkConfig | WebhookSinkConfig | EventStoreSinkConfig, Field(discriminator="kind")
]


class DeliveryConfig(_Model):
    initial_backoff_s: float = Field(0.5, gt=0.0, le=60.0, description="first wait after a failed delivery")
    max_backoff_s: float = Field(30.0, gt=0.0, le=3600.0, description="cap of the delivery backoff")
    batch_records: int = Field(64, ge=1, le=10_000, description="records taken from the spool per attempt")
    drain_timeout_s: float = Field(
        5.0, ge=0.0, le=600.0, description="on stop, keep delivering this long; the rest stays spooled"
    )


class UnknownFacesConfig(_Model):
    """Keeping faces that match nothing: off by default (watchlist-only), time-limited, audited.

    When on (until ``until``), each track that ends without a match has its best embedding
    upserted to ``collection`` (default ``<collection>-unknown``, created with
    ``retention_days``), labelled ``unknown.<processor>.<track>``; each kept face is audited.
    """

    keep: bool = Field(False, description="keep unmatched faces (explicit opt-in)")
    until: datetime | None = Field(
        None, description="keeping stops at this time (UTC, ISO 8601); required when keep is on"
    )
    collection: str | None = Field(
        None, description="where unknown faces go; None: '<collection>-unknown'", min_length=1, max_length=255
    )
    retention_days: int = Field(7, ge=1, le=MAX_UNKNOWN_DAYS, description="kept faces expire after this")

    @field_validator("until")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return v if v is None or v.tzinfo else v.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _limited(self) -> UnknownFacesConfig:
        if not self.keep:
            return self
        if self.until is None:
            raise ValueError("unknown_faces.keep needs unknown_faces.until (keeping must be time-limited)")
        if self.until > datetime.now(UTC) + timedelta(days=MAX_UNKNOWN_DAYS):
            raise ValueError(f"unknown_faces.until is more than {MAX_UNKNOWN_DAYS} days ahead")
        if self.collection is not None and not COLLECTION_NAME.fullmatch(self.collection):
            raise ValueError(f"collection name {self.collection!r}: expected 1-255 of [A-Za-z0-9_.-]")
        return self

    def active(self, now: datetime | None = None) -> bool:
        return bool(self.keep and self.until is not None and (now or datetime.now(UTC)) < self.until)


class ProcessorSettings(_Model):
    """One stream processor: a source searched against one collection (CreateStreamProcessor)."""

    name: str = Field(description="unique processor name", min_length=1, max_length=128)
    source: SourceConfig
    collection: str = Field(description="face collection (watchlist) to search", min_length=1, max_length=255)
    purpose: str = Field(
        description="why this stream is searched; audited with every match", min_length=1, max_length=500
    )
    threshold: float = Field(
        DEFAULT_MATCH_THRESHOLD, ge=0.0, le=100.0, description="FaceMatchThreshold (Similarity 0-100)"
    )
    max_matches: int = Field(3, ge=1, le=100, description="matched faces per search")
    analysis_fps: float = Field(5.0, gt=0.0, le=120.0, description="frames per second sent to analysis")
    keyframes_only: bool = Field(False, description="decode key frames only (cheapest; ~1 per GOP)")
    max_in_flight: int = Field(2, ge=1, le=64, description="frames awaiting inference per stream at most")
    inference_timeout_s: float = Field(60.0, gt=0.0, le=600.0, description="per frame")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    tracking: TrackerConfig = Field(default_factory=TrackerConfig)
    sinks: tuple[SinkConfig, ...] = Field((), max_length=16, description="where match records go")
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    actor_num_cpus: float = Field(
        0.1,
        ge=0.0,
        le=16.0,
        description="CPUs the stream's actor reserves (a scheduling reservation, not a limit). "
        "Set it to what the camera measurably costs: source fps / decode fps per core from "
        "python -m bench.decode (640x360 30 fps H.264: 0.017; 1080p25 with B-frames at 5 fps "
        "analysis: 0.16) plus tracking and search (small: per track, not per frame)",
    )
    metrics_export_grace_s: float | None = Field(
        120.0,
        ge=10.0,
        le=3600.0,
        description="the processor checks that its metrics reach the node's Prometheus endpoint; "
        "not seen this long after start, it restarts once in a new process (Ray's exporter gives "
        "up for good on an agent that did not answer in a process's first 30 s); None: no check",
    )
    unknown_faces: UnknownFacesConfig = Field(default_factory=UnknownFacesConfig)
    evidence_frames: bool = Field(
        False,
        description="keep one redacted frame per event (every face blurred except the matched one)",
    )
    preview_interval_s: float | None = Field(
        None,
        ge=1.0,
        le=3600.0,
        description="write a small preview frame (all faces blurred) this often for the console; None: never",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not PROCESSOR_NAME.fullmatch(v):
            raise ValueError(f"processor name {v!r}: expected 1-128 of [A-Za-z0-9_.-]")
        return v

    @field_validator("collection")
    @classmethod
    def _collection(cls, v: str) -> str:
        if not COLLECTION_NAME.fullmatch(v):
            raise ValueError(f"collection name {v!r}: expected 1-255 of [A-Za-z0-9_.-]")
        return v

    @field_validator("purpose")
    @classmethod
    def _purpose(cls, v: str) -> str:
        if not v.strip() or any(ord(c) < 32 for c in v):
            raise ValueError("purpose must be non-blank text without control characters")
        return v.strip()


class RuntimeConfig(StatePaths, _Model):
    """Where a fleet runs: state, store, audit, the shared face deployment."""

    home: Path = Field(
        default_factory=default_home,
        description="state directory (registry, spools); default: FACESTREAM_HOME, else the user's "
        "data directory ($XDG_DATA_HOME/facestream)",
    )
    store_uri: str | None = Field(
        None, description="Milvus Lite *.db or http://HOST:PORT; None: <home>/milvus.db", max_length=4096
    )
    audit_path: Path | None = Field(None, description="audit log; None: <home>/audit.jsonl")
    events_path: Path | None = Field(
        None, description="the queryable event store; None: <home>/events.sqlite3"
    )
    media_dirs: tuple[Path, ...] = Field(
        (), max_length=64, description="directories file sources may read from; empty: the working directory"
    )
    ray_address: str | None = Field(
        None, description="Ray address; None: the job's cluster or a local Ray", max_length=512
    )
    app_name: str = Field("facestream-faces", pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="Serve app name")
    embedding: EmbeddingServiceConfig = Field(default_factory=EmbeddingServiceConfig)
    profile: ProfileName | None = Field(
        None,
        description="deployment profile (general: default threshold 80; public-safety: default and "
        "floor 99); FACESTREAM_PROFILE and --profile win over it; None: general",
    )
    actor_env_vars: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="extra environment variables of each stream processor's actor process (e.g. "
        "RAY_* or OMP_* tuning); FACESTREAM_PROCESSOR is set by facestream",
    )

    @field_validator("actor_env_vars")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(k for k in v if not _ENV_NAME.fullmatch(k) or k == "FACESTREAM_PROCESSOR")
        if bad:
            raise ValueError(f"actor_env_vars: invalid or reserved variable names {bad}")
        return v


class FleetConfig(_Model):
    """The file given to ``python -m pipelines.stream --config FILE`` (YAML or JSON)."""

    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    processors: tuple[ProcessorSettings, ...] = Field(max_length=1000, description="processors to run")
    duration_s: float | None = Field(
        None, gt=0.0, le=10_000_000.0, description="stop after this long; None: until stopped or sources end"
    )

    @model_validator(mode="after")
    def _unique(self) -> FleetConfig:
        names = [p.name for p in self.processors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"processor names must be unique; repeated: {dup}")
        return self
