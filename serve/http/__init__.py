"""The FastAPI app: the Rekognition wire protocol at ``POST /`` and the native API at ``/v1``.

- ``POST /`` with ``X-Amz-Target: RekognitionService.<Operation>``, a JSON 1.1 body and an
  AWS Signature V4 ``Authorization`` header: what an unmodified boto3 client sends.
  Errors are ``{"__type": code, "message": ...}`` with ``x-amzn-ErrorType``.
- ``POST /v1/<Operation>`` with a JSON body (images as base64 ``Bytes``) or
  ``POST /v1/<Operation>/upload`` (multipart: the image file(s) plus a ``request`` JSON part),
  ``Authorization: Bearer <AccessKeyId>:<SecretAccessKey>``. Errors are
  ``{"error": {"code", "message"}}``.
- ``GET /healthz``: the only unauthenticated route.

Searches carry their purpose in the ``X-Facestream-Purpose`` header on both faces.
No error answer ever holds a traceback: unexpected failures are logged with an id and
answered 500 ``InternalServerError`` naming only that id.

Load shedding (admission control, per replica): at most ``limits.max_in_flight_requests``
requests are worked on at once; up to ``limits.max_queued_requests`` more wait for a slot,
each at most ``limits.queue_wait_s``. One more than that is answered at once with 429
``ThrottlingException``, a wait that runs out with 503 ``ServiceUnavailableException``; both
carry ``Retry-After``. An overloaded replica therefore answers fast instead of letting
requests pile up until the proxy times them out. ``/healthz`` is never shed.

The parts: :mod:`.responses` (error shapes), :mod:`.errors` (exception handlers),
:mod:`.admission` (load shedding), :mod:`.middleware` (body limit, authentication, shedding,
metrics), :mod:`.rekognition` (``POST /``), :mod:`.native` (``/v1`` and ``/openapi.json``).
"""

from fastapi import FastAPI

from serve.console import console_router
from serve.http.admission import Admission, Overloaded, Throttled
from serve.http.errors import install_error_handlers
from serve.http.middleware import RequestGuards
from serve.http.native import NativeApi
from serve.http.rekognition import RekognitionProtocol
from serve.http.responses import AMZ_JSON, TARGET_PREFIX
from serve.service import ApiService

__all__ = ["AMZ_JSON", "TARGET_PREFIX", "Admission", "Overloaded", "Throttled", "create_app"]


def create_app(service: ApiService) -> FastAPI:
    """The ASGI app of one API replica, bound to ``service``."""
    purpose_header = service.config.auth.require_purpose_header
    app = FastAPI(
        title="facestream",
        version="1",
        description=(
            "Self-hosted face search with accountability. Native API: Rekognition operation names, "
            "fields and defaults; bearer auth `Authorization: Bearer <AccessKeyId>:<SecretAccessKey>`; "
            f"searches need the `{purpose_header}` header (a case id or reason; it is audited)."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.include_router(console_router())  # the review console's static files at /console/
    limits = service.limits
    admission = Admission(limits.max_in_flight_requests, limits.max_queued_requests, limits.queue_wait_s)
    app.state.admission = admission
    RequestGuards(service, admission).install(app)
    app.include_router(RekognitionProtocol(service).router())
    app.include_router(NativeApi(service).router())
    return app


async def healthz() -> dict[str, str]:
    """The only unauthenticated route; never shed."""
    return {"status": "ok"}
