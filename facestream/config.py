"""Configuration models shared by every part (pydantic v2, ``extra="forbid"``).

Validators validate; they never touch the network or the disk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Each embedding model's config lives in the model registry (facestream/embedders.py).
from facestream.embedders import DlibResNetConfig, EmbedderConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Model):
    device: str = Field(
        "auto", description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N", max_length=16
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto",
        description="auto: bf16/fp16 on GPU; on CPU bf16 only where the CPU has AMX or "
        "AVX512-BF16 and a one-time timing at load finds it faster than fp32, else fp32",
    )
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="torch intra-op threads; None keeps torch's default"
    )


class StreamDetectConfig(_Model):
    """Detection on video streams (frames sent with a stream key); still images always get full MTCNN."""

    mode: Literal["fast", "mtcnn"] = Field(
        "fast", description="fast: motion gate + detect every k frames + refine; mtcnn: per-frame MTCNN"
    )
    detect_every: int = Field(
        5,
        ge=1,
        le=1000,
        description="full detection at least every k frames of a stream; in between "
        "R/O-Net refine the previous faces (a lost face forces a full detection)",
    )
    min_face_px: int = Field(
        28,
        ge=8,
        le=1024,
        description="smallest face side the stream path looks for; sizes its P-Net pyramid. "
        "Default: the stream tracker's searchable minimum (pipelines TrackerConfig.min_face_px): "
        "smaller faces are never searched, so finding them costs pyramid levels for nothing",
    )
    detect_max_side_px: int = Field(
        640,
        ge=64,
        le=16384,
        description="P-Net runs on a copy at most this long; R/O-Net refine at "
        "full resolution. Pyramid scales are capped at 1 in that copy",
    )
    motion_threshold: float = Field(
        1.0,
        ge=0.0,
        le=255.0,
        description="mean grey change (0-255, small thumbnail) below which a frame "
        "is unchanged and the previous faces are reused; 0 disables the gate",
    )
    scene_cut_threshold: float = Field(
        20.0, gt=0.0, le=255.0, description="mean grey change above which the scene changed: full detection"
    )
    state_ttl_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="per-stream state older than this is dropped"
    )
    max_streams: int = Field(
        4096, ge=1, le=1_000_000, description="per-stream states kept (least recent dropped)"
    )


class DetectorConfig(_Model):
    kind: Literal["mtcnn"] = "mtcnn"
    min_face_px: int = Field(
        20, ge=8, le=1024, description="smallest face side to find, in pixels; sizes the image pyramid"
    )
    stage_thresholds: tuple[float, float, float] = Field(
        (0.6, 0.7, 0.7), description="MTCNN P/R/O-net score thresholds, each in (0, 1)"
    )
    pyramid_factor: float = Field(0.709, gt=0.3, lt=0.95, description="image pyramid scale step")
    max_side_px: int | None = Field(
        None,
        ge=64,
        le=16384,
        description="if set, frames whose longer side exceeds this are detected on a downscaled "
        "copy only (faces smaller than min_face_px in the copy are missed). None (default): still "
        "images are detected at native resolution in tiles (tile_px)",
    )
    tile_px: int = Field(
        1280,
        ge=256,
        le=8192,
        description="still images longer than this are detected in overlapping tiles of this side "
        "at native resolution (faces of any size down to min_face_px), plus one pass on a copy "
        "this long for faces larger than the overlap; memory is bounded by the tile, not the image",
    )
    tile_batch: int = Field(4, ge=1, le=64, description="tiles per MTCNN forward pass (bounds memory)")
    retry_pad_fraction: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="when a still has no face, or its best face touches the border (a tight "
        "crop), detect again on a copy with a border of this share of the longer side; 0: never",
    )
    min_confidence: float = Field(
        0.90, ge=0.0, le=1.0, description="final face probability below which a face is dropped"
    )
    sure_confidence: float = Field(
        0.95,
        ge=0.0,
        le=1.0,
        description="faces scoring below this must also score grey_min_confidence on a greyscale "
        "copy of their crop (cuts false faces on coloured or dark background patches)",
    )
    grey_min_confidence: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="O-Net probability on the greyscale crop an unsure face needs (calibrated on "
        "the shared photos: background false faces re-score 0.07-0.21 in grey, real unsure faces "
        "of crowds 0.37 and up; 0.3 is the middle of that gap)",
    )
    check_landmarks: bool = Field(
        True,
        description="drop faces whose five points are implausible (outside the box, eye distance "
        "vs box width, mouth above the eyes, pose beyond what a head can show)",
    )
    redact_min_face_px: int = Field(
        12,
        ge=8,
        le=1024,
        description="smallest face side found for redaction (previews, evidence frames, clips): "
        "separate from the searchable minimum, so small bystander faces are blurred too",
    )
    stream: StreamDetectConfig = Field(
        default_factory=StreamDetectConfig, description="video-stream fast path (frames with a stream key)"
    )

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> DetectorConfig:
        if not all(0.0 < t < 1.0 for t in self.stage_thresholds):
            raise ValueError(f"stage_thresholds must each be in (0, 1), got {self.stage_thresholds}")
        return self


class EmbedConfig(_Model):
    model: EmbedderConfig = Field(default_factory=DlibResNetConfig, description="embedding backend")
    batch_size: int = Field(32, ge=1, le=1024, description="faces per forward pass")
    channels_last: bool = Field(True, description="channels-last memory format (faster convs on CPU)")
    flip_augment: bool = Field(
        False,
        description="also embed the mirrored chip and average (test-time augmentation): "
        "2x embedding cost for a small accuracy gain (see README, Accuracy)",
    )
    predictor_start: Literal["detector_box", "dlib_box"] = Field(
        "dlib_box",
        description="box dlib's shape predictors (5-point alignment, 68-point landmarks) start from: "
        "the box dlib's detector would have drawn, mapped from MTCNN's box and five points "
        "(models/dlib_box_map.py, fitted by python -m bench.alignment_fit; higher TAR@FAR=1e-3 on every "
        "bench.robustness variant), or the detector's own box",
    )


class AnalyzerConfig(_Model):
    """Everything that turns an image into faces with embeddings."""

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    embed: EmbedConfig = Field(default_factory=EmbedConfig)


class EmbeddingServiceConfig(_Model):
    """The Ray Serve deployment that detects and embeds frames from every stream and request."""

    analyzer: AnalyzerConfig = Field(default_factory=AnalyzerConfig)
    max_batch_size: int = Field(8, ge=1, le=256, description="frames per batched call")
    batch_wait_timeout_s: float = Field(
        0.02, ge=0.0, le=5.0, description="how long a batch waits to fill before it runs"
    )
    num_gpus: float = Field(
        0.0, ge=0.0, le=8.0, description="GPUs per replica; fractional shares a GPU between replicas"
    )
    num_cpus: float = Field(1.0, gt=0.0, le=64.0, description="CPUs per replica")
    min_replicas: int = Field(1, ge=0, le=1000, description="autoscaling lower bound")
    max_replicas: int = Field(1, ge=1, le=1000, description="autoscaling upper bound")
    target_ongoing_requests: float = Field(
        4.0, gt=0.0, le=1000.0, description="autoscaling target of in-flight requests per replica"
    )
    max_ongoing_requests: int = Field(32, ge=1, le=10_000, description="back-pressure per replica")
    stream_affinity: bool = Field(
        True,
        description="frames of one stream go to one home replica (rendezvous hashing of the "
        "stream key, bounded load; pipelines/face_router.py) so its fast-path state stays "
        "there; False: Serve's default load-balanced routing for every frame",
    )
    affinity_load_factor: float = Field(
        1.5,
        ge=1.0,
        le=100.0,
        description="a stream's home is passed over for its next replica while the home's queue "
        "exceeds this times the mean queue (and affinity_min_queue)",
    )
    affinity_min_queue: int = Field(
        8, ge=1, le=10_000, description="queue length below which a home replica is never passed over"
    )
    affinity_rehome_s: float = Field(
        30.0,
        gt=0.0,
        le=86_400.0,
        description="how often (jittered 0.5-1.5x) a stream reconsiders which of its two hash "
        "choices is less loaded (a new stream first after a fifth of it); it moves only when "
        "that evens them out",
    )

    @model_validator(mode="after")
    def _replica_bounds(self) -> EmbeddingServiceConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self
