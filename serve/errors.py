"""Errors only the HTTP API raises (authentication, protocol); all in the one hierarchy.

401 means "we do not know who you are" (no credentials, unknown or revoked key, bad or stale
or replayed signature); 403 means "we know, and your role may not do this".
Rekognition answers signature problems with 400; facestream uses 401 (a documented deviation:
botocore reads the error code from the body, so clients see the same exception names).
"""

from __future__ import annotations

from facestream.errors import FacestreamError, InvalidParameter


class AuthenticationFailed(FacestreamError):
    http_status = 401


class MissingAuthentication(AuthenticationFailed):
    code = "MissingAuthenticationTokenException"


class UnrecognizedClient(AuthenticationFailed):
    code = "UnrecognizedClientException"


class InvalidSignature(AuthenticationFailed):
    code = "InvalidSignatureException"


class InvalidPaginationToken(InvalidParameter):
    code = "InvalidPaginationTokenException"


class UnknownOperation(FacestreamError):
    code = "UnknownOperationException"
    http_status = 400


class Serialization(FacestreamError):
    """The body is not the JSON the operation expects."""

    code = "SerializationException"
    http_status = 400


class InvalidS3Object(FacestreamError):
    code = "InvalidS3ObjectException"
    http_status = 400


class RequestTooLarge(FacestreamError):
    code = "RequestEntityTooLargeException"
    http_status = 413


class ServiceTimeout(FacestreamError):
    code = "ThrottlingException"
    http_status = 503


class AnalysisUnavailable(FacestreamError):
    code = "ServiceUnavailableException"
    http_status = 503


class InternalServerError(FacestreamError):
    code = "InternalServerError"
    http_status = 500


class NotImplementedYet(FacestreamError):
    """An operation whose backing component is not installed in this deployment."""

    code = "UnsupportedOperationException"
    http_status = 501
