"""The API's one dispatch table: authentication, roles, validation, images, then the operation.

Both faces of the API (the Rekognition wire protocol and the native ``/v1`` REST API) end in
:meth:`ApiService.call`, so they share every check, every answer and every audit entry.
This module has no HTTP in it; :mod:`serve.http` maps requests and errors onto it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from facestream.audit import Actor, AuditLog, audit_context
from facestream.errors import FacestreamError, ImageTooLarge, InvalidParameter, PermissionDenied
from facestream.imageio import LoadedImage, decode_image, load_image_file
from facestream.operations import Analyzer, FaceOperations
from facestream.quality import QualityFilter
from facestream.store import FaceStore, MilvusFaceStore, StoreConfig
from serve import models as m
from serve.config import ApiConfig
from serve.errors import InvalidPaginationToken, InvalidS3Object, MissingAuthentication, UnrecognizedClient
from serve.keys import KeyInfo, KeyStore, Role, load_master_key, sorted_roles
from serve.sigv4 import SignedRequest, verify

log = logging.getLogger(__name__)

SIGV4_SERVICE = "rekognition"
ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Principal:
    """Who signed a request: the key, every role it holds and the purpose bound to it."""

    access_key_id: str
    roles: frozenset[Role]
    purpose: str | None = None

    @property
    def role(self) -> Role:
        """The key's first role in canonical order (admin, indexer, searcher, ...)."""
        return sorted_roles(self.roles)[0]

    @property
    def actor(self) -> Actor:
        ordered = sorted_roles(self.roles)
        return Actor(key_id=self.access_key_id, role=ordered[0].value, roles=tuple(r.value for r in ordered))


Handler = Callable[["ApiService", Any, Principal, str | None], dict[str, Any]]


@dataclass(frozen=True)
class Operation:
    name: str
    model: type[BaseModel]
    roles: frozenset[Role]
    handler: Handler
    needs_purpose: bool = False
    summary: str = ""
    #: served on the Rekognition wire protocol too (False: native API only)
    rekognition: bool = True


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles)


#: Idempotent reads that are neither audited nor searches. SigV4 signs the time to the second,
#: so an unmodified SDK sends byte-identical requests when it retries or calls the same read
#: twice in one second; for these the signature may repeat within the skew window. Every other
#: operation (writes, searches, anything audited) accepts a signature once.
REPEATABLE_READS = frozenset(
    {
        "ListCollections",
        "DescribeCollection",
        "ListFaces",
        "ListUsers",
        "DescribeStreamProcessor",
        "ListStreamProcessors",
    }
)

VIEW = ALL_ROLES
ADMIN = _roles(Role.ADMIN)
INDEX = _roles(Role.INDEXER)
SEARCH = _roles(Role.SEARCHER)
AUDIT = _roles(Role.AUDITOR)


def _qf(value: m.QualityFilterName) -> QualityFilter:
    return QualityFilter(value.value)


class ApiService:
    """State of one API replica: the store, the audit log, the key store, the operations."""

    def __init__(
        self,
        config: ApiConfig,
        analyzer: Analyzer,
        *,
        extra_operations: list[Operation] | None = None,
        store: FaceStore | None = None,
    ):
        self.config = config
        self.limits = config.limits
        from facestream.profiles import adopt_configured

        adopt_configured(config.profile)  # the environment, if set, wins
        home = config.home
        master = config.auth.master_key.get_secret_value() if config.auth.master_key else None
        self.keys = KeyStore(config.resolved_keys_path, load_master_key(home, master, create=True))
        # ``store``: the store actor's client when the API shares the store with stream processors.
        self.store: FaceStore = store or MilvusFaceStore(
            StoreConfig(
                uri=config.resolved_store_uri,
                token=config.store_token,
                pagination_secret=config.pagination_secret,
            )
        )
        #: stream processors and match events (set by :func:`serve.streams.attach`), if installed
        self.streams: Any = None
        self.audit = AuditLog(config.resolved_audit_path)
        self.ops = FaceOperations(analyzer, self.store, self.audit)
        self.ops.arn = config.arn
        self.ops.attach_thumbnails(home)  # IndexFaces keeps, DeleteFaces removes enrolled thumbnails
        self.operations: dict[str, Operation] = {op.name: op for op in OPERATIONS}
        for op in extra_operations or []:
            self.operations[op.name] = op

    def close(self) -> None:
        self.store.close()

    # ── authentication and authorisation ────────────────────────────────────────────────

    def authenticate_sigv4(self, req: SignedRequest, *, once: bool = True) -> Principal:
        """The signer of a wire request. ``once``: its signature is accepted only once (replay
        protection); False for :data:`REPEATABLE_READS`, whose identical re-sends are normal."""
        infos: dict[str, KeyInfo] = {}

        def lookup(key_id: str) -> str | None:
            found = self.keys.active_secret(key_id)
            if found is None:
                return None
            infos[key_id] = found[0]
            return found[1]

        skew = self.config.auth.max_clock_skew_s
        v = verify(
            req,
            service=SIGV4_SERVICE,
            lookup_secret=lookup,
            # Remembered for twice the skew: a date up to +skew ahead stays valid that long.
            remember=(lambda sig: self.keys.remember_signature(sig, 2 * skew * 1000))
            if once
            else (lambda _: True),
            max_skew_s=skew,
        )
        return self._principal(infos[v.access_key_id])

    def authenticate_bearer(self, authorization: str | None) -> Principal:
        if not authorization:
            raise MissingAuthentication(
                "missing Authorization header; expected 'Bearer <AccessKeyId>:<SecretAccessKey>'"
            )
        scheme, _, token = authorization.partition(" ")
        key_id, sep, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not sep or not key_id or not secret or len(token) > 512:
            raise MissingAuthentication(
                "Authorization header must be 'Bearer <AccessKeyId>:<SecretAccessKey>'"
            )
        info = self.keys.verify_bearer(key_id, secret)
        if info is None:
            raise UnrecognizedClient("the access key is unknown or revoked, or the secret is wrong")
        return self._principal(info)

    def _principal(self, info: KeyInfo) -> Principal:
        """The principal of a verified key: refused if it expired or if the deployment profile
        in force does not allow its roles/purpose (a key made under another profile)."""
        from facestream.profiles import resolve_profile

        if info.expired:
            raise UnrecognizedClient(f"the access key {info.access_key_id} has expired")
        principal = Principal(info.access_key_id, info.roles, info.purpose)
        try:
            resolve_profile().check_key({r.value for r in info.roles}, info.purpose)
        except InvalidParameter as exc:
            self.audit.append(actor=principal.actor, operation="AccessDenied", inputs={"reason": "profile"})
            raise PermissionDenied(f"key {info.access_key_id} refused: {exc.message}") from None
        return principal

    def authorize(self, principal: Principal, op: Operation) -> None:
        if not principal.roles & op.roles:
            allowed = ", ".join(sorted(r.value for r in op.roles))
            held = ", ".join(r.value for r in sorted_roles(principal.roles))
            self.audit.append(actor=principal.actor, operation="AccessDenied", inputs={"operation": op.name})
            raise PermissionDenied(
                f"the roles ({held}) of key {principal.access_key_id} may not call "
                f"{op.name}; allowed roles: {allowed}"
            )

    # ── dispatch ────────────────────────────────────────────────────────────────────────

    def operation(self, name: str) -> Operation | None:
        return self.operations.get(name)

    def call(
        self, op: Operation, params: object, principal: Principal, purpose: str | None
    ) -> dict[str, Any]:
        """Authorise, validate ``params`` (a JSON object) and run ``op``."""
        self.authorize(principal, op)
        if not isinstance(params, dict):
            raise InvalidParameter(f"{op.name}: the request body must be a JSON object")
        try:
            req = op.model.model_validate(params)
        except ValidationError as exc:
            raise InvalidParameter(f"{op.name}: {validation_message(exc)}") from None
        header = purpose
        if principal.purpose is not None:
            # A purpose-bound key: its purpose is the one audited; a header sent with it is
            # recorded beside it, not instead of it.
            purpose = principal.purpose
            if header is not None:
                from facestream.operations import check_purpose

                header = check_purpose(header)
        if op.needs_purpose:
            from facestream.operations import check_purpose

            purpose = check_purpose(purpose)
        with audit_context(purpose=principal.purpose, purpose_header=header if principal.purpose else None):
            return op.handler(self, req, principal, purpose)

    # ── images ──────────────────────────────────────────────────────────────────────────

    def image(self, img: m.ImageModel, what: str = "Image") -> LoadedImage:
        lim = self.limits
        if img.Bytes is not None:
            if len(img.Bytes) > (lim.max_image_bytes + 2) // 3 * 4 + 4:
                raise ImageTooLarge(
                    f"{what}.Bytes: over the limit of {lim.max_image_bytes} bytes of image data"
                )
            try:
                data = base64.b64decode(img.Bytes, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidParameter(f"{what}.Bytes is not valid base64") from None
            return decode_image(
                data, name=f"{what}.Bytes", max_bytes=lim.max_image_bytes, max_pixels=lim.max_pixels
            )
        assert img.S3Object is not None  # the model requires one of the two
        return self._image_from_root(img.S3Object, what)

    def _image_from_root(self, obj: m.S3ObjectModel, what: str) -> LoadedImage:
        root = self.config.image_roots.get(obj.Bucket)
        if root is None:
            raise InvalidS3Object(
                f"{what}.S3Object.Bucket {obj.Bucket!r} is not a configured image root "
                f"(configured: {', '.join(sorted(self.config.image_roots)) or 'none'})"
            )
        base = root.resolve()
        path = (base / obj.Name).resolve()
        if not path.is_relative_to(base) or obj.Name.startswith("/") or "\0" in obj.Name:
            raise InvalidS3Object(f"{what}.S3Object.Name {obj.Name!r} is outside image root {obj.Bucket!r}")
        if not path.is_file():
            raise InvalidS3Object(f"{what}.S3Object {obj.Bucket}/{obj.Name} does not exist")
        return load_image_file(
            Path(path), max_bytes=self.limits.max_source_image_bytes, max_pixels=self.limits.max_pixels
        )

    def max_faces(self, requested: int | None) -> int:
        """Faces kept per image: the request's MaxFaces capped at the configured limit (100)."""
        cap = self.limits.max_faces_per_image
        return cap if requested is None else min(requested, cap)


def validation_message(exc: ValidationError) -> str:
    """Pydantic errors as one line naming each bad field (never echoing huge inputs)."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _page_token(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except InvalidParameter as exc:
        if "next_token" in exc.message:
            raise InvalidPaginationToken(exc.message.replace("next_token", "NextToken")) from None
        raise


# ── handlers ─────────────────────────────────────────────────────────────────────────────


def _create_collection(
    s: ApiService, r: m.CreateCollectionRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return s.ops.create_collection(r.CollectionId, actor=p.actor)


def _delete_collection(
    s: ApiService, r: m.DeleteCollectionRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return s.ops.delete_collection(r.CollectionId, actor=p.actor)


def _list_collections(
    s: ApiService, r: m.ListCollectionsRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return _page_token(lambda: s.ops.list_collections(max_results=r.MaxResults, next_token=r.NextToken))


def _describe_collection(
    s: ApiService, r: m.DescribeCollectionRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return s.ops.describe_collection(r.CollectionId)


def _index_faces(s: ApiService, r: m.IndexFacesRequest, p: Principal, _: str | None) -> dict[str, Any]:
    s.store.describe_collection(r.CollectionId)  # unknown collection: refuse before analysing
    return s.ops.index_faces(
        r.CollectionId,
        s.image(r.Image),
        actor=p.actor,
        external_image_id=r.ExternalImageId,
        max_faces=s.max_faces(r.MaxFaces),
        quality_filter=_qf(r.QualityFilter),
        detection_attributes=r.DetectionAttributes,
    )


def _list_faces(s: ApiService, r: m.ListFacesRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return _page_token(
        lambda: s.ops.list_faces(
            r.CollectionId,
            max_results=r.MaxResults,
            next_token=r.NextToken,
            user_id=r.UserId,
            face_ids=r.FaceIds,
        )
    )


def _delete_faces(s: ApiService, r: m.DeleteFacesRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return s.ops.delete_faces(r.CollectionId, r.FaceIds, actor=p.actor)


def _search_faces(
    s: ApiService, r: m.SearchFacesRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    return s.ops.search_faces(
        r.CollectionId,
        r.FaceId,
        actor=p.actor,
        purpose=purpose,
        threshold=r.FaceMatchThreshold,
        max_faces=r.MaxFaces,
    )


def _search_faces_by_image(
    s: ApiService, r: m.SearchFacesByImageRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    s.store.describe_collection(r.CollectionId)
    return s.ops.search_faces_by_image(
        r.CollectionId,
        s.image(r.Image),
        actor=p.actor,
        purpose=purpose,
        threshold=r.FaceMatchThreshold,
        max_faces=r.MaxFaces,
        quality_filter=_qf(r.QualityFilter),
    )


def _compare_faces(
    s: ApiService, r: m.CompareFacesRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    src, tgt = s.image(r.SourceImage, "SourceImage"), s.image(r.TargetImage, "TargetImage")
    out = s.ops.compare_faces(src, tgt, threshold=r.SimilarityThreshold)
    s.audit.append(
        actor=p.actor,
        operation="CompareFaces",
        purpose=purpose,
        inputs={"source_sha256": src.sha256, "target_sha256": tgt.sha256, "threshold": r.SimilarityThreshold},
        results={"similarities": [mt["Similarity"] for mt in out["FaceMatches"]]},
    )
    return out


def _detect_faces(s: ApiService, r: m.DetectFacesRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return s.ops.detect_faces(s.image(r.Image), max_faces=s.max_faces(None), attributes=r.Attributes)


def _create_user(s: ApiService, r: m.CreateUserRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return s.ops.create_user(r.CollectionId, r.UserId, actor=p.actor)


def _delete_user(s: ApiService, r: m.DeleteUserRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return s.ops.delete_user(r.CollectionId, r.UserId, actor=p.actor)


def _list_users(s: ApiService, r: m.ListUsersRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return _page_token(
        lambda: s.ops.list_users(r.CollectionId, max_results=r.MaxResults, next_token=r.NextToken)
    )


def _associate_faces(
    s: ApiService, r: m.AssociateFacesRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return s.ops.associate_faces(
        r.CollectionId, r.UserId, r.FaceIds, actor=p.actor, threshold=r.UserMatchThreshold
    )


def _disassociate_faces(
    s: ApiService, r: m.DisassociateFacesRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    return s.ops.disassociate_faces(r.CollectionId, r.UserId, r.FaceIds, actor=p.actor)


def _search_users(
    s: ApiService, r: m.SearchUsersRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    return s.ops.search_users(
        r.CollectionId,
        actor=p.actor,
        purpose=purpose,
        user_id=r.UserId,
        face_id=r.FaceId,
        threshold=r.UserMatchThreshold,
        max_users=r.MaxUsers,
    )


def _search_users_by_image(
    s: ApiService, r: m.SearchUsersByImageRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    s.store.describe_collection(r.CollectionId)
    return s.ops.search_users_by_image(
        r.CollectionId,
        s.image(r.Image),
        actor=p.actor,
        purpose=purpose,
        threshold=r.UserMatchThreshold,
        max_users=r.MaxUsers,
        quality_filter=_qf(r.QualityFilter),
    )


def _create_key(s: ApiService, r: m.CreateAccessKeyRequest, p: Principal, _: str | None) -> dict[str, Any]:
    new = s.keys.create(
        r.Roles or [r.Role or ""],
        r.Description,
        purpose=r.Purpose,
        expires_days=r.ExpiresDays,
    )
    s.audit.append(
        actor=p.actor,
        operation="CreateAccessKey",
        inputs={"roles": [x.value for x in sorted_roles(new.roles)], "purpose": new.purpose},
        results={"key_id": new.access_key_id, "expires_at_ms": new.expires_at_ms},
    )
    return new.to_json()


def _list_keys(s: ApiService, r: m.ListAccessKeysRequest, p: Principal, _: str | None) -> dict[str, Any]:
    return {"AccessKeys": [k.to_json() for k in s.keys.list()]}


def _revoke_key(s: ApiService, r: m.RevokeAccessKeyRequest, p: Principal, _: str | None) -> dict[str, Any]:
    info = s.keys.revoke(r.AccessKeyId)
    s.audit.append(actor=p.actor, operation="RevokeAccessKey", inputs={"key_id": r.AccessKeyId})
    return info.to_json()


def _query_audit(s: ApiService, r: m.QueryAuditLogRequest, p: Principal, _: str | None) -> dict[str, Any]:
    entries = s.audit.query(
        operation=r.Operation,
        key_id=r.AccessKeyId,
        purpose=r.PurposeContains,
        since_ms=r.SinceMs,
        until_ms=r.UntilMs,
        limit=r.MaxResults,
    )
    return {"Entries": entries}


def _resolve_subject(
    s: ApiService, r: m.ResolveAuditSubjectRequest, p: Principal, _: str | None
) -> dict[str, Any]:
    from facestream.errors import ResourceNotFound

    if r.Pseudonym is not None:
        found = s.audit.subjects.resolve(r.Pseudonym)
        psn: str | None = r.Pseudonym
        kind, value = found if found is not None else (None, None)
    else:
        kind, value = ("external_image_id", r.ExternalImageId) if r.ExternalImageId else ("user_id", r.UserId)
        psn = s.audit.pseudonym(kind, value or "")
        found = (kind, value or "") if psn is not None else None
    # The lookup is itself on the record; the entry names the pseudonym, never the person.
    s.audit.append(
        actor=p.actor,
        operation="ResolveAuditSubject",
        inputs={"pseudonym": r.Pseudonym} if r.Pseudonym else {"kind": kind},
        results={"pseudonym": psn, "found": found is not None},
    )
    if found is None:
        raise ResourceNotFound(
            "no live subject: never named in the audit log, or erased (its secret is shredded)"
        )
    return {
        "Pseudonym": psn,
        "ExternalImageId" if kind == "external_image_id" else "UserId": value,
    }


def _erase_person(
    s: ApiService, r: m.ErasePersonRequest, p: Principal, purpose: str | None
) -> dict[str, Any]:
    from pipelines.erasure import erase_person

    return erase_person(
        s.store,
        s.audit,
        p.actor,
        purpose=r.Purpose or purpose,
        external_image_id=r.ExternalImageId,
        user_id=r.UserId,
        collections=None if r.CollectionIds == "all" else list(r.CollectionIds),
        home=s.config.home,
        events_path=s.config.resolved_events_path,
    )


OPERATIONS: list[Operation] = [
    Operation("CreateCollection", m.CreateCollectionRequest, ADMIN, _create_collection),
    Operation("DeleteCollection", m.DeleteCollectionRequest, ADMIN, _delete_collection),
    Operation("ListCollections", m.ListCollectionsRequest, VIEW, _list_collections),
    Operation("DescribeCollection", m.DescribeCollectionRequest, VIEW, _describe_collection),
    Operation("IndexFaces", m.IndexFacesRequest, INDEX, _index_faces),
    Operation("ListFaces", m.ListFacesRequest, VIEW, _list_faces),
    Operation("DeleteFaces", m.DeleteFacesRequest, INDEX, _delete_faces),
    Operation("SearchFaces", m.SearchFacesRequest, SEARCH, _search_faces, needs_purpose=True),
    Operation("SearchFacesByImage", m.SearchFacesByImageRequest, SEARCH, _search_faces_by_image, True),
    Operation("CompareFaces", m.CompareFacesRequest, SEARCH, _compare_faces, needs_purpose=True),
    Operation("DetectFaces", m.DetectFacesRequest, SEARCH, _detect_faces),
    Operation("CreateUser", m.CreateUserRequest, INDEX, _create_user),
    Operation("DeleteUser", m.DeleteUserRequest, INDEX, _delete_user),
    Operation("ListUsers", m.ListUsersRequest, VIEW, _list_users),
    Operation("AssociateFaces", m.AssociateFacesRequest, INDEX, _associate_faces),
    Operation("DisassociateFaces", m.DisassociateFacesRequest, INDEX, _disassociate_faces),
    Operation("SearchUsers", m.SearchUsersRequest, SEARCH, _search_users, needs_purpose=True),
    Operation("SearchUsersByImage", m.SearchUsersByImageRequest, SEARCH, _search_users_by_image, True),
    Operation("CreateAccessKey", m.CreateAccessKeyRequest, ADMIN, _create_key, rekognition=False),
    Operation("ListAccessKeys", m.ListAccessKeysRequest, ADMIN, _list_keys, rekognition=False),
    Operation("RevokeAccessKey", m.RevokeAccessKeyRequest, ADMIN, _revoke_key, rekognition=False),
    Operation("QueryAuditLog", m.QueryAuditLogRequest, AUDIT, _query_audit, rekognition=False),
    Operation(
        "ResolveAuditSubject",
        m.ResolveAuditSubjectRequest,
        AUDIT,
        _resolve_subject,
        summary="Resolve an audit pseudonym to its live subject, or a subject to its pseudonym",
        rekognition=False,
    ),
    Operation(
        "ErasePerson",
        m.ErasePersonRequest,
        ADMIN,
        _erase_person,
        summary="Erase one person everywhere (vectors, thumbnails, events, spools, evidence, candidates)",
        rekognition=False,
    ),
]


def error_body(exc: FacestreamError) -> dict[str, str]:
    return {"code": exc.code, "message": exc.message}
