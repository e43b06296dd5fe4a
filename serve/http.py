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
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at run time
# and the per-operation body models are closure variables.

import asyncio
import base64
import json
import logging
import time
import uuid
from typing import Annotated, Any, cast

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from facestream import metrics
from facestream.errors import FacestreamError, InvalidParameter
from serve.console import console_router
from serve.errors import InternalServerError, RequestTooLarge, Serialization, UnknownOperation
from serve.service import ApiService, Operation, Principal
from serve.sigv4 import SignedRequest

log = logging.getLogger(__name__)

AMZ_JSON = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."
_IMAGE_FIELDS = ("Image", "SourceImage", "TargetImage")


def _wire_error(exc: FacestreamError) -> Response:
    return Response(
        content=json.dumps({"__type": exc.code, "message": exc.message}),
        status_code=exc.http_status,
        media_type=AMZ_JSON,
        headers={"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _native_error(exc: FacestreamError) -> JSONResponse:
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.http_status)


class Throttled(FacestreamError):
    """Load shedding: the replica's wait queue is full."""

    code = "ThrottlingException"
    http_status = 429


class Overloaded(FacestreamError):
    """Load shedding: no request slot freed up within the queue wait limit."""

    code = "ServiceUnavailableException"
    http_status = 503


class Admission:
    """A bounded number of requests in flight, a bounded queue, a bounded wait (one event loop).

    ``acquire`` returns None once the caller holds a slot (it must call ``release``), or the
    refusal to answer with.
    """

    def __init__(self, max_in_flight: int, max_queued: int, wait_s: float) -> None:
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.wait_s = wait_s
        self.in_flight = 0
        self.queued = 0
        #: requests refused so far, and when that was last logged (monotonic s)
        self.shed = 0
        self.last_log = -1e9
        self._sem: asyncio.Semaphore | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # Made on first use, inside the replica's event loop.
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.max_in_flight)
        return self._sem

    async def acquire(self) -> FacestreamError | None:
        sem = self._semaphore()
        if not sem.locked():
            await sem.acquire()
            self.in_flight += 1
            return None
        if self.queued >= self.max_queued:
            return Throttled(
                f"too many requests: {self.in_flight} in progress and {self.queued} waiting "
                f"(limits {self.max_in_flight} and {self.max_queued}); retry later"
            )
        self.queued += 1
        try:
            await asyncio.wait_for(sem.acquire(), self.wait_s)
        except TimeoutError:
            return Overloaded(
                f"server busy: no request slot within {self.wait_s:g} s "
                f"({self.max_in_flight} requests in progress); retry later"
            )
        finally:
            self.queued -= 1
        self.in_flight += 1
        return None

    def release(self) -> None:
        self.in_flight -= 1
        self._semaphore().release()


def _internal(exc: BaseException) -> FacestreamError:
    incident = uuid.uuid4().hex[:12]
    log.error("internal error %s: %s", incident, type(exc).__name__, exc_info=exc)
    return InternalServerError(f"internal error (incident {incident}); the server log has the details")


def create_app(service: ApiService) -> FastAPI:
    """The ASGI app of one API replica, bound to ``service``."""
    purpose_header = service.config.auth.require_purpose_header
    max_body = service.limits.max_body_bytes
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

    @app.middleware("http")
    async def _limit_body(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            exc = RequestTooLarge(f"request body of {length} bytes is over the limit of {max_body} bytes")
            target = request.headers.get("x-amz-target")
            return _wire_error(exc) if target else _native_error(exc)
        path = request.url.path
        if path.startswith("/v1/") or path == "/openapi.json":
            # Who is asking is settled before the body is even parsed: 401 comes first.
            try:
                principal = await run_in_threadpool(
                    service.authenticate_bearer, request.headers.get("authorization")
                )
                request.state.principal = principal
                # ... and whether that role may call the operation: 403 before any 400, so a
                # caller learns nothing about an operation it may not use, not even its schema.
                op = service.operation(path[4:].removesuffix("/upload")) if path != "/openapi.json" else None
                if op is not None and principal.role not in op.roles:
                    await run_in_threadpool(service.authorize, principal, op)
            except FacestreamError as exc:
                return _native_error(exc)
            except Exception as exc:
                return _native_error(_internal(exc))
        try:
            response: Response = await call_next(request)
        except Exception as exc:  # last line: never a traceback in a body
            return _native_error(_internal(exc))
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return _native_error(InvalidParameter("; ".join(parts) or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 400 here is a body FastAPI could not parse (not JSON, nested too deep for the parser).
        code = {
            400: "SerializationException",
            404: "NotFoundException",
            405: "MethodNotAllowedException",
        }.get(exc.status_code, "HttpError")
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code
        )

    @app.exception_handler(FacestreamError)
    async def _fs_error(request: Request, exc: FacestreamError) -> JSONResponse:
        return _native_error(exc)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(console_router())  # the review console's static files at /console/

    admission = Admission(
        service.limits.max_in_flight_requests, service.limits.max_queued_requests, service.limits.queue_wait_s
    )
    app.state.admission = admission
    retry_after = str(service.limits.retry_after_s)

    @app.middleware("http")
    async def _shed_load(request: Request, call_next: Any) -> Response:
        # Wraps authentication and the body limit: an overloaded replica does no work for a
        # request it cannot take, not even a key lookup.
        if request.url.path == "/healthz":
            response: Response = await call_next(request)
            return response
        refusal = await admission.acquire()
        if refusal is not None:
            admission.shed += 1
            now = time.monotonic()
            if now - admission.last_log >= 5.0:  # one line per 5 s, not one per refusal
                admission.last_log = now
                log.warning("load shedding: %s refused so far (latest: %s)", admission.shed, refusal.code)
            shed = _wire_error(refusal) if request.headers.get("x-amz-target") else _native_error(refusal)
            shed.headers["Retry-After"] = retry_after
            return shed
        try:
            response = await call_next(request)
        finally:
            admission.release()
        return response

    known_ops = set(service.operations)

    def _operation_label(request: Request) -> str:
        """A bounded label: a known operation name, else "unknown" (never the raw path)."""
        path = request.url.path
        if path == "/":
            name = request.headers.get("x-amz-target", "").removeprefix(TARGET_PREFIX)
        elif path.startswith("/v1/"):
            name = path[4:].removesuffix("/upload")
        else:
            return "other"
        return name if name in known_ops else "unknown"

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Any) -> Response:
        # Added last, so it wraps every other middleware: refusals are counted too.
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        op = _operation_label(request)
        metrics.inc("facestream_http_requests_total", operation=op, code=str(response.status_code))
        metrics.observe("facestream_http_request_seconds", time.perf_counter() - t0, operation=op)
        return response

    # ── Rekognition wire protocol ───────────────────────────────────────────────────────

    @app.post("/", include_in_schema=False)
    async def rekognition(request: Request) -> Response:
        try:
            body = await request.body()
            if len(body) > max_body:
                raise RequestTooLarge(f"request body of {len(body)} bytes is over the limit of {max_body}")
            target = request.headers.get("x-amz-target", "")
            if not target.startswith(TARGET_PREFIX):
                raise UnknownOperation(
                    f"X-Amz-Target must be '{TARGET_PREFIX}<Operation>', got {target[:100]!r}"
                )
            op = service.operation(target[len(TARGET_PREFIX) :])
            if op is None or not op.rekognition:
                raise UnknownOperation(f"operation {target[len(TARGET_PREFIX) :][:100]!r} is not supported")
            signed = SignedRequest(
                method=request.method,
                path=request.url.path,
                query=request.url.query,
                headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
                body=body,
            )
            principal = await run_in_threadpool(service.authenticate_sigv4, signed)
            try:
                params = json.loads(body) if body else {}
            except (ValueError, UnicodeDecodeError, RecursionError):
                # RecursionError: nesting deeper than the parser goes is refused, not a 500.
                raise Serialization("the request body is not valid JSON") from None
            result = await run_in_threadpool(
                service.call, op, params, principal, request.headers.get(purpose_header)
            )
            return Response(content=json.dumps(result), media_type=AMZ_JSON)
        except FacestreamError as exc:
            return _wire_error(exc)
        except Exception as exc:
            return _wire_error(_internal(exc))

    # ── native API ──────────────────────────────────────────────────────────────────────

    async def _run(request: Request, op: Operation, params: dict[str, Any]) -> JSONResponse:
        try:
            principal: Principal = request.state.principal
            result = await run_in_threadpool(
                service.call, op, params, principal, request.headers.get(purpose_header)
            )
            return JSONResponse(result)
        except FacestreamError as exc:
            return _native_error(exc)
        except Exception as exc:
            return _native_error(_internal(exc))

    for op in service.operations.values():
        _add_native_routes(app, op, _run)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())  # the middleware has authenticated the caller

    return app


_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input: {'error': {'code', 'message'}}"},
    401: {"description": "no, unknown, revoked or wrong credentials"},
    403: {"description": "the key's role may not call this operation"},
}


def _add_native_routes(app: FastAPI, op: Operation, run: Any) -> None:
    model = op.model
    image_fields = [f for f in _IMAGE_FIELDS if f in model.model_fields]
    doc = f"{op.summary or op.name}. Roles: {', '.join(sorted(r.value for r in op.roles))}." + (
        " Needs the purpose header." if op.needs_purpose else ""
    )

    async def endpoint(request: Request, body: model) -> JSONResponse:  # type: ignore[valid-type]
        params = cast(BaseModel, body).model_dump(mode="json", exclude_none=True)
        return await run(request, op, params)

    app.add_api_route(
        f"/v1/{op.name}",
        endpoint,
        methods=["POST"],
        name=op.name,
        summary=op.name,
        description=doc,
        operation_id=op.name,
        responses=_ERROR_RESPONSES,
    )
    if not image_fields:
        return

    if image_fields == ["Image"]:

        async def upload(
            request: Request,
            image: Annotated[UploadFile, File(alias="Image", description="the image")],
            request_json: Annotated[str, Form(alias="request", description="other fields as JSON")] = "{}",
        ) -> JSONResponse:
            return await _upload(request, {"Image": image}, request_json)

    else:

        async def upload(  # type: ignore[misc]
            request: Request,
            source_image: Annotated[UploadFile, File(alias="SourceImage", description="source image")],
            target_image: Annotated[UploadFile, File(alias="TargetImage", description="target image")],
            request_json: Annotated[str, Form(alias="request", description="other fields as JSON")] = "{}",
        ) -> JSONResponse:
            files = {"SourceImage": source_image, "TargetImage": target_image}
            return await _upload(request, files, request_json)

    async def _upload(request: Request, files: dict[str, UploadFile], request_json: str) -> JSONResponse:
        try:
            params = json.loads(request_json)
        except (ValueError, RecursionError):
            return _native_error(Serialization("the 'request' part is not valid JSON"))
        if not isinstance(params, dict):
            return _native_error(Serialization("the 'request' part must be a JSON object"))
        for name, f in files.items():
            data = await f.read()
            params[name] = {"Bytes": base64.b64encode(data).decode("ascii")} if data else {}
        return await run(request, op, params)

    app.add_api_route(
        f"/v1/{op.name}/upload",
        upload,
        methods=["POST"],
        name=f"{op.name}Upload",
        summary=f"{op.name} (multipart upload)",
        description=doc + " Images as multipart files; other fields as JSON in the 'request' part.",
        operation_id=f"{op.name}Upload",
        responses=_ERROR_RESPONSES,
    )
