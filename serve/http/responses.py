"""Error answers of the two API faces, and the one way an unexpected failure is answered."""

import json
import logging
import uuid

from fastapi.responses import JSONResponse, Response

from facestream.errors import FacestreamError
from serve.errors import InternalServerError

log = logging.getLogger("serve.http")

AMZ_JSON = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."


def wire_error(exc: FacestreamError) -> Response:
    """The Rekognition face: ``{"__type", "message"}`` with ``x-amzn-ErrorType``."""
    return Response(
        content=json.dumps({"__type": exc.code, "message": exc.message}),
        status_code=exc.http_status,
        media_type=AMZ_JSON,
        headers={"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def native_error(exc: FacestreamError) -> JSONResponse:
    """The native face: ``{"error": {"code", "message"}}``."""
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.http_status)


def internal_error(exc: BaseException) -> FacestreamError:
    """Log ``exc`` with an incident id; the answer names only that id (never a traceback)."""
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s: %s", incident, type(exc).__name__, exc_info=exc)
    return InternalServerError(f"internal error (incident {incident}); the server log has the details")
