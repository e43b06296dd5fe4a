"""Request bodies of every API operation, with Rekognition's field names, ranges and defaults.

The same models validate the Rekognition wire protocol (``POST /`` + ``X-Amz-Target``) and the
native API (``POST /v1/<Operation>``), and describe the native API in OpenAPI. Patterns and
bounds are those of Rekognition's API reference; anything outside them is a 400
``InvalidParameterException`` naming the field.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facestream.similarity import DEFAULT_MATCH_THRESHOLD

#: base64 of the largest image any configuration allows (64 MiB), in characters.
_MAX_B64_CHARS = (64 * 1024 * 1024 + 2) // 3 * 4


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


CollectionIdT = Annotated[
    str, Field(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9_.\-]+$", description="collection name")
]
FaceIdT = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="face id (lowercase UUID)",
    ),
]
UserIdT = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.\-:]+$", description="user id")
]
ExternalImageIdT = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9_.\-:]+$", description="caller's image label"),
]
ClientRequestTokenT = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-zA-Z0-9\-_]+$",
        description="accepted for compatibility; requests are not deduplicated by it",
    ),
]
ThresholdT = Annotated[float, Field(ge=0.0, le=100.0, description="Similarity 0-100")]
NextTokenT = Annotated[
    str, Field(min_length=1, max_length=1024, description="token from the previous page's NextToken")
]


class QualityFilterName(StrEnum):
    NONE = "NONE"
    AUTO = "AUTO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class Attribute(StrEnum):
    DEFAULT = "DEFAULT"
    ALL = "ALL"


class S3ObjectModel(_Req):
    """Rekognition's S3 location, read here from a configured local image root."""

    Bucket: str = Field(
        min_length=3, max_length=255, pattern=r"^[0-9A-Za-z.\-_]+$", description="name of an image root"
    )
    Name: str = Field(min_length=1, max_length=1024, description="path of the image inside the root")
    Version: str | None = Field(
        None, min_length=1, max_length=1024, description="ignored (no object versions)"
    )


class ImageModel(_Req):
    """An image: base64 ``Bytes`` (at most 5 MB decoded) or an ``S3Object`` (at most 15 MB)."""

    Bytes: str | None = Field(
        None, min_length=1, max_length=_MAX_B64_CHARS, description="base64 of a JPEG/PNG/WebP/BMP/GIF/TIFF"
    )
    S3Object: S3ObjectModel | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageModel:
        if (self.Bytes is None) == (self.S3Object is None):
            raise ValueError("Image needs exactly one of Bytes and S3Object")
        return self


# ── collections ──────────────────────────────────────────────────────────────────────────


class CreateCollectionRequest(_Req):
    CollectionId: CollectionIdT
    Tags: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=200, description="accepted; not stored"
    )


class DeleteCollectionRequest(_Req):
    CollectionId: CollectionIdT


class ListCollectionsRequest(_Req):
    NextToken: NextTokenT | None = None
    MaxResults: int | None = Field(None, ge=0, le=4096, description="page size; 0 or absent: 1000")


class DescribeCollectionRequest(_Req):
    CollectionId: CollectionIdT


# ── faces ────────────────────────────────────────────────────────────────────────────────


class IndexFacesRequest(_Req):
    CollectionId: CollectionIdT
    Image: ImageModel
    ExternalImageId: ExternalImageIdT | None = None
    DetectionAttributes: list[Attribute] | None = Field(
        None,
        max_length=16,
        description="DEFAULT: five landmarks; ALL: Rekognition's 30 landmark types (dlib's 68-point model)",
    )
    MaxFaces: int | None = Field(None, ge=1, le=4096, description="index at most this many (largest) faces")
    QualityFilter: QualityFilterName = QualityFilterName.AUTO


class ListFacesRequest(_Req):
    CollectionId: CollectionIdT
    NextToken: NextTokenT | None = None
    MaxResults: int | None = Field(None, ge=0, le=4096, description="page size; 0 or absent: 1000")
    UserId: UserIdT | None = None
    FaceIds: list[FaceIdT] | None = Field(None, min_length=1, max_length=4096)


class DeleteFacesRequest(_Req):
    CollectionId: CollectionIdT
    FaceIds: list[FaceIdT] = Field(min_length=1, max_length=4096)


class SearchFacesRequest(_Req):
    CollectionId: CollectionIdT
    FaceId: FaceIdT
    MaxFaces: int = Field(10, ge=1, le=4096)
    FaceMatchThreshold: ThresholdT = DEFAULT_MATCH_THRESHOLD


class SearchFacesByImageRequest(_Req):
    CollectionId: CollectionIdT
    Image: ImageModel
    MaxFaces: int = Field(10, ge=1, le=4096)
    FaceMatchThreshold: ThresholdT = DEFAULT_MATCH_THRESHOLD
    QualityFilter: QualityFilterName = QualityFilterName.NONE


class CompareFacesRequest(_Req):
    SourceImage: ImageModel
    TargetImage: ImageModel
    SimilarityThreshold: ThresholdT = DEFAULT_MATCH_THRESHOLD
    QualityFilter: QualityFilterName = QualityFilterName.NONE


class DetectFacesRequest(_Req):
    Image: ImageModel
    Attributes: list[Attribute] | None = Field(
        None,
        max_length=16,
        description="DEFAULT: five landmarks; ALL: Rekognition's 30 landmark types (dlib's 68-point model)",
    )


# ── users ────────────────────────────────────────────────────────────────────────────────


class CreateUserRequest(_Req):
    CollectionId: CollectionIdT
    UserId: UserIdT
    ClientRequestToken: ClientRequestTokenT | None = None


class DeleteUserRequest(_Req):
    CollectionId: CollectionIdT
    UserId: UserIdT
    ClientRequestToken: ClientRequestTokenT | None = None


class ListUsersRequest(_Req):
    CollectionId: CollectionIdT
    MaxResults: int | None = Field(None, ge=1, le=500)
    NextToken: NextTokenT | None = None


class AssociateFacesRequest(_Req):
    CollectionId: CollectionIdT
    UserId: UserIdT
    FaceIds: list[FaceIdT] = Field(min_length=1, max_length=100)
    UserMatchThreshold: ThresholdT = 75.0
    ClientRequestToken: ClientRequestTokenT | None = None


class DisassociateFacesRequest(_Req):
    CollectionId: CollectionIdT
    UserId: UserIdT
    FaceIds: list[FaceIdT] = Field(min_length=1, max_length=100)
    ClientRequestToken: ClientRequestTokenT | None = None


class SearchUsersRequest(_Req):
    CollectionId: CollectionIdT
    UserId: UserIdT | None = None
    FaceId: FaceIdT | None = None
    UserMatchThreshold: ThresholdT = DEFAULT_MATCH_THRESHOLD
    MaxUsers: int = Field(10, ge=1, le=500)


class SearchUsersByImageRequest(_Req):
    CollectionId: CollectionIdT
    Image: ImageModel
    UserMatchThreshold: ThresholdT = DEFAULT_MATCH_THRESHOLD
    MaxUsers: int = Field(10, ge=1, le=500)
    QualityFilter: QualityFilterName = QualityFilterName.NONE


# ── facestream-only: keys and the audit log (native API) ─────────────────────────────────


RoleName = Literal["admin", "indexer", "searcher", "auditor", "viewer", "reviewer"]


class CreateAccessKeyRequest(_Req):
    """A key with one role (``Role``) or several (``Roles``), optionally bound to a purpose and
    expiring. The deployment profile may refuse the combination (public-safety: admin apart
    from indexer/searcher/reviewer; searcher keys need a purpose)."""

    Role: RoleName | None = None
    Roles: list[RoleName] | None = Field(None, min_length=1, max_length=6)
    Description: str = Field("", max_length=200, pattern=r"^[ -~]*$", description="printable ASCII")
    Purpose: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x1f]*$",
        description="purpose bound to the key: audited for every request it signs",
    )
    ExpiresDays: float | None = Field(None, gt=0, le=3650, description="days until the key stops working")

    @model_validator(mode="after")
    def _one_role_field(self) -> CreateAccessKeyRequest:
        if (self.Role is None) == (self.Roles is None):
            raise ValueError("give exactly one of Role and Roles")
        return self


class ListAccessKeysRequest(_Req):
    pass


class RevokeAccessKeyRequest(_Req):
    AccessKeyId: str = Field(pattern=r"^[A-Z0-9]{16,128}$")


class QueryAuditLogRequest(_Req):
    Operation: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z]+$")
    AccessKeyId: str | None = Field(None, max_length=128, pattern=r"^[A-Za-z0-9:_.\-]+$")
    PurposeContains: str | None = Field(None, min_length=1, max_length=500)
    SinceMs: int | None = Field(None, ge=0, le=2**62)
    UntilMs: int | None = Field(None, ge=0, le=2**62)
    MaxResults: int = Field(1000, ge=1, le=10_000)


class ResolveAuditSubjectRequest(_Req):
    """Who a pseudonym in the audit log stands for (``Pseudonym``), or which pseudonym entries use
    for a person (``ExternalImageId`` or ``UserId``). Auditors only; audited; erased people
    resolve to nothing."""

    Pseudonym: str | None = Field(None, pattern=r"^psn_[0-9a-f]{32}$")
    ExternalImageId: ExternalImageIdT | None = None
    UserId: UserIdT | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ResolveAuditSubjectRequest:
        if sum(v is not None for v in (self.Pseudonym, self.ExternalImageId, self.UserId)) != 1:
            raise ValueError("give exactly one of Pseudonym, ExternalImageId and UserId")
        return self


class ErasePersonRequest(_Req):
    """Erase one person: every vector, thumbnail, match event, spooled record, JSON-lines
    record, evidence frame and review candidate (native API only; admin)."""

    ExternalImageId: ExternalImageIdT | None = None
    UserId: UserIdT | None = None
    CollectionIds: list[CollectionIdT] | Literal["all"] = Field(
        "all", description='the collections to erase from (a list, or "all")'
    )
    Purpose: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="the erasure request's reference (audited); else the purpose header",
    )

    @model_validator(mode="after")
    def _one_subject(self) -> ErasePersonRequest:
        if (self.ExternalImageId is None) == (self.UserId is None):
            raise ValueError("give exactly one of ExternalImageId and UserId")
        if isinstance(self.CollectionIds, list) and not 1 <= len(self.CollectionIds) <= 1000:
            raise ValueError('CollectionIds: a list of 1 to 1000 collections, or "all"')
        return self


# ── stream processors and match events ───────────────────────────────────────────────────

ProcessorNameT = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.\-]+$", description="processor name")
]
PurposeT = Annotated[
    str, Field(min_length=1, max_length=500, description="why the stream is searched; audited")
]


class KinesisVideoStreamModel(_Req):
    Arn: str = Field(
        min_length=1,
        max_length=4096,
        description="facestream: a source URL (rtsp(s)://, http(s):// HLS, tcp:// or udp:// MPEG-TS), a "
        "video file path or file:// URL under a media directory, or a Kinesis video stream ARN",
    )


class StreamInputModel(_Req):
    KinesisVideoStream: KinesisVideoStreamModel | None = None
    Url: str | None = Field(
        None, min_length=1, max_length=4096, description="native: the source URL or file path"
    )
    RtspTransport: Literal["tcp", "udp"] = Field("tcp", description="native: RTP transport of rtsp sources")
    Loop: bool = Field(False, description="native: file sources start again at the end")
    Realtime: bool = Field(False, description="native: file sources replay at their own pace, dropping")

    @model_validator(mode="after")
    def _one_source(self) -> StreamInputModel:
        if (self.KinesisVideoStream is None) == (self.Url is None):
            raise ValueError("Input needs exactly one of KinesisVideoStream.Arn and Url")
        return self


class S3DestinationModel(_Req):
    Bucket: str = Field(min_length=3, max_length=255, pattern=r"^[0-9A-Za-z.\-_]+$")
    KeyPrefix: str | None = Field(None, max_length=1024, pattern=r"^[0-9A-Za-z.\-_/]*$")


class KinesisDataStreamModel(_Req):
    Arn: str = Field(min_length=1, max_length=2048)


class WebhookModel(_Req):
    Url: str = Field(min_length=10, max_length=2048, description="http(s) endpoint, one POST per record")
    BearerToken: str | None = Field(None, min_length=1, max_length=4096, description="never shown again")


class StreamOutputModel(_Req):
    KinesisDataStream: KinesisDataStreamModel | None = Field(None, description="not supported here")
    S3Destination: S3DestinationModel | None = Field(
        None, description="JSON lines under <home>/outputs/<Bucket>/<KeyPrefix><Name>.jsonl"
    )
    Webhook: WebhookModel | None = Field(None, description="native: POST every record here")


class FaceSearchSettingsModel(_Req):
    CollectionId: CollectionIdT
    FaceMatchThreshold: ThresholdT | None = Field(None, description="default: the profile's default (80)")


class StreamSettingsModel(_Req):
    FaceSearch: FaceSearchSettingsModel | None = None
    ConnectedHome: dict[str, object] | None = Field(None, description="label detection: not supported")


class CreateStreamProcessorRequest(_Req):
    Input: StreamInputModel
    Output: StreamOutputModel = Field(default_factory=StreamOutputModel)
    Name: ProcessorNameT
    Settings: StreamSettingsModel
    RoleArn: str | None = Field(None, max_length=2048, description="accepted, ignored (no IAM)")
    Tags: dict[Annotated[str, Field(max_length=128)], Annotated[str, Field(max_length=256)]] | None = Field(
        None, max_length=200, description="accepted; not stored"
    )
    NotificationChannel: dict[str, object] | None = Field(None, description="not supported (no SNS)")
    KmsKeyId: str | None = Field(None, max_length=2048, description="accepted, ignored")
    RegionsOfInterest: list[dict[str, object]] | None = Field(
        None, max_length=10, description="not supported"
    )
    DataSharingPreference: dict[str, object] | None = Field(None, description="accepted; nothing is shared")
    Purpose: PurposeT | None = Field(None, description="native: purpose (else the purpose header)")
    AnalysisFps: float = Field(5.0, gt=0.0, le=120.0, description="native: frames per second analysed")
    MaxMatches: int = Field(3, ge=1, le=100, description="native: matched faces per search")
    PreviewIntervalSeconds: float | None = Field(
        None,
        ge=1.0,
        le=3600.0,
        description="native: keep a small preview frame (every face blurred) for the console this often; "
        "None: keep no frames",
    )
    EvidenceFrames: bool = Field(
        False, description="native: keep one redacted frame per match event (for ExportEventMedia)"
    )


class StreamStartSelectorModel(_Req):
    KVSStreamStartSelector: dict[str, object] | None = None


class StreamStopSelectorModel(_Req):
    MaxDurationInSeconds: int | None = Field(None, ge=1, le=120)


class StartStreamProcessorRequest(_Req):
    Name: ProcessorNameT
    StartSelector: StreamStartSelectorModel | None = Field(None, description="not supported")
    StopSelector: StreamStopSelectorModel | None = Field(None, description="not supported")
    Purpose: PurposeT | None = Field(None, description="native: purpose (else the purpose header)")


class StreamProcessorNameRequest(_Req):
    Name: ProcessorNameT


class ListStreamProcessorsRequest(_Req):
    NextToken: str | None = Field(None, min_length=1, max_length=255)
    MaxResults: int | None = Field(None, ge=1, le=1000, description="page size; absent: 1000")


class FaceSearchForUpdateModel(_Req):
    CollectionId: CollectionIdT | None = None
    FaceMatchThreshold: ThresholdT | None = None


class StreamSettingsForUpdateModel(_Req):
    ConnectedHomeForUpdate: dict[str, object] | None = Field(None, description="not supported")
    FaceSearchForUpdate: FaceSearchForUpdateModel | None = Field(None, description="native")


class UpdateStreamProcessorRequest(_Req):
    Name: ProcessorNameT
    SettingsForUpdate: StreamSettingsForUpdateModel | None = None
    RegionsOfInterestForUpdate: list[dict[str, object]] | None = Field(None, max_length=10)
    DataSharingPreferenceForUpdate: dict[str, object] | None = None
    ParametersToDelete: list[str] | None = Field(None, max_length=10)


class QueryMatchEventsRequest(_Req):
    StreamProcessorName: ProcessorNameT | None = None
    CollectionId: CollectionIdT | None = None
    ExternalImageId: ExternalImageIdT | None = None
    FaceId: FaceIdT | None = None
    StartTimestamp: float | None = Field(None, ge=0, le=2**40, description="epoch seconds (ServerTimestamp)")
    EndTimestamp: float | None = Field(None, ge=0, le=2**40, description="epoch seconds, inclusive")
    MinSimilarity: ThresholdT | None = None
    MaxResults: int = Field(100, ge=1, le=1000)
    NextToken: NextTokenT | None = None
