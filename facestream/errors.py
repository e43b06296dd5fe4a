"""One error hierarchy for every part of facestream.

Each error carries a stable machine-readable ``code`` (used by the CLI's ``--json`` output
and, later, by the HTTP API) modelled on Rekognition's exception names where one fits.
Messages name the offending value and what was allowed.
"""

from __future__ import annotations


class FacestreamError(Exception):
    """Base of every error facestream raises on purpose."""

    code: str = "FacestreamError"
    #: HTTP status the API maps this error to.
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InvalidParameter(FacestreamError):
    """A value given by the caller is outside what is allowed."""

    code = "InvalidParameterException"
    http_status = 400


class InvalidImage(FacestreamError):
    """Bytes that are not a decodable image of a supported format."""

    code = "InvalidImageFormatException"
    http_status = 400


class ImageTooLarge(FacestreamError):
    """An image over the byte or pixel limit (decompression bombs included)."""

    code = "ImageTooLargeException"
    http_status = 400


class FileNotFound(FacestreamError):
    code = "FileNotFoundException"
    http_status = 400


class CollectionNotFound(FacestreamError):
    code = "ResourceNotFoundException"
    http_status = 400


class ResourceNotFound(FacestreamError):
    code = "ResourceNotFoundException"
    http_status = 400


class ResourceInUse(FacestreamError):
    """The resource exists or is busy (a stream processor that is running, or a name taken)."""

    code = "ResourceInUseException"
    http_status = 400


class Conflict(FacestreamError):
    """The request conflicts with the resource's current state (HTTP 409)."""

    code = "ConflictException"
    http_status = 409


class CollectionExists(FacestreamError):
    code = "ResourceAlreadyExistsException"
    http_status = 400


class ModelMismatch(FacestreamError):
    """Vectors of one embedding model offered to a collection built with another."""

    code = "ModelMismatchException"
    http_status = 400


class ModelUnavailable(FacestreamError):
    """Model weights missing, corrupt or failing their checksum."""

    code = "ModelUnavailableException"
    http_status = 503


class StoreUnavailable(FacestreamError):
    code = "StoreUnavailableException"
    http_status = 503


class StreamUnavailable(FacestreamError):
    code = "StreamUnavailableException"
    http_status = 503


class PermissionDenied(FacestreamError):
    code = "AccessDeniedException"
    http_status = 403


class PurposeRequired(PermissionDenied):
    """A search or identification was asked for without saying why."""

    code = "PurposeRequiredException"
    http_status = 400


class AuditIntegrityError(FacestreamError):
    code = "AuditIntegrityException"
    http_status = 500
