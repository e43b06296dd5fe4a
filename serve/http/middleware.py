"""The request guards around every route: body limit and authentication, load shedding, metrics.

Each is a Starlette ``http`` middleware; :meth:`RequestGuards.install` adds them in the order that
makes metrics wrap load shedding wrap the body limit and authentication.
"""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facestream import metrics
from facestream.errors import FacestreamError
from serve.errors import RequestTooLarge
from serve.http.admission import Admission
from serve.http.responses import TARGET_PREFIX, internal_error, native_error, wire_error
from serve.service import ApiService

log = logging.getLogger("serve.http")

CallNext = Callable[[Request], Awaitable[Response]]


class RequestGuards:
    """The middleware of one app, bound to its service and its admission control."""

    def __init__(self, service: ApiService, admission: Admission) -> None:
        self.service = service
        self.admission = admission
        self.max_body = service.limits.max_body_bytes
        self.retry_after = str(service.limits.retry_after_s)
        self.known_ops = set(service.operations)

    def install(self, app: FastAPI) -> None:
        # Each middleware added wraps the ones added before it.
        app.middleware("http")(self.limit_body)
        app.middleware("http")(self.shed_load)
        app.middleware("http")(self.count)
        app.middleware("http")(self.request_id)

    async def limit_body(self, request: Request, call_next: CallNext) -> Response:
        """Refuse a declared body over the limit; authenticate and authorize ``/v1`` callers."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            exc = RequestTooLarge(
                f"request body of {length} bytes is over the limit of {self.max_body} bytes"
            )
            target = request.headers.get("x-amz-target")
            return wire_error(exc) if target else native_error(exc)
        path = request.url.path
        if path.startswith("/v1/") or path == "/openapi.json":
            # Who is asking is settled before the body is even parsed: 401 comes first.
            service = self.service
            try:
                principal = await run_in_threadpool(
                    service.authenticate_bearer, request.headers.get("authorization")
                )
                request.state.principal = principal
                # ... and whether that role may call the operation: 403 before any 400, so a
                # caller learns nothing about an operation it may not use, not even its schema.
                op = service.operation(path[4:].removesuffix("/upload")) if path != "/openapi.json" else None
                if op is not None and not principal.roles & op.roles:
                    await run_in_threadpool(service.authorize, principal, op)
            except FacestreamError as exc:
                return native_error(exc)
            except Exception as exc:
                return native_error(internal_error(exc))
        try:
            response: Response = await call_next(request)
        except Exception as exc:  # last line: never a traceback in a body
            return native_error(internal_error(exc))
        return response

    async def shed_load(self, request: Request, call_next: CallNext) -> Response:
        """Admission control. Wraps authentication and the body limit: an overloaded replica does
        no work for a request it cannot take, not even a key lookup."""
        if request.url.path == "/healthz":
            response: Response = await call_next(request)
            return response
        admission = self.admission
        refusal = await admission.acquire()
        if refusal is not None:
            admission.shed += 1
            now = time.monotonic()
            if now - admission.last_log >= 5.0:  # one line per 5 s, not one per refusal
                admission.last_log = now
                log.warning("load shedding: %s refused so far (latest: %s)", admission.shed, refusal.code)
            shed = wire_error(refusal) if request.headers.get("x-amz-target") else native_error(refusal)
            shed.headers["Retry-After"] = self.retry_after
            return shed
        try:
            response = await call_next(request)
        finally:
            admission.release()
        return response

    async def count(self, request: Request, call_next: CallNext) -> Response:
        """Request counts and latencies. Added last, so it wraps every other middleware:
        refusals are counted too."""
        t0 = time.perf_counter()
        response: Response = await call_next(request)
        op = self.operation_label(request)
        metrics.inc("facestream_http_requests_total", operation=op, code=str(response.status_code))
        metrics.observe("facestream_http_request_seconds", time.perf_counter() - t0, operation=op)
        return response

    async def request_id(self, request: Request, call_next: CallNext) -> Response:
        """Every answer, of either face, success or refusal, carries ``x-amzn-RequestId``
        (boto3 reads it into ``ResponseMetadata.RequestId``). Added last: wraps everything."""
        response: Response = await call_next(request)
        if "x-amzn-requestid" not in response.headers:
            response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        return response

    def operation_label(self, request: Request) -> str:
        """A bounded label: a known operation name, else "unknown" (never the raw path)."""
        path = request.url.path
        if path == "/":
            name = request.headers.get("x-amz-target", "").removeprefix(TARGET_PREFIX)
        elif path.startswith("/v1/"):
            name = path[4:].removesuffix("/upload")
        else:
            return "other"
        return name if name in self.known_ops else "unknown"
