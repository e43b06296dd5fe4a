"""The Rekognition wire protocol: ``POST /`` with ``X-Amz-Target``, a JSON 1.1 body and SigV4."""

import json
from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from facestream.errors import FacestreamError
from facestream.rekognition import rekognition_wire
from serve.errors import RequestTooLarge, Serialization, UnknownOperation
from serve.http.responses import AMZ_JSON, TARGET_PREFIX, internal_error, wire_error
from serve.service import REPEATABLE_READS, ApiService
from serve.sigv4 import SignedRequest


class RekognitionProtocol:
    """``POST /`` of one app, bound to its service."""

    def __init__(self, service: ApiService) -> None:
        self.service = service
        self.max_body = service.limits.max_body_bytes
        self.purpose_header = service.config.auth.require_purpose_header

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/", self.handle, methods=["POST"], include_in_schema=False, name="rekognition")
        return router

    async def handle(self, request: Request) -> Response:
        try:
            return await self._call(request)
        except FacestreamError as exc:
            return wire_error(exc)
        except Exception as exc:
            return wire_error(internal_error(exc))

    async def _call(self, request: Request) -> Response:
        service = self.service
        body = await request.body()
        if len(body) > self.max_body:
            raise RequestTooLarge(f"request body of {len(body)} bytes is over the limit of {self.max_body}")
        target = request.headers.get("x-amz-target", "")
        if not target.startswith(TARGET_PREFIX):
            raise UnknownOperation(f"X-Amz-Target must be '{TARGET_PREFIX}<Operation>', got {target[:100]!r}")
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
        principal = await run_in_threadpool(
            partial(service.authenticate_sigv4, once=op.name not in REPEATABLE_READS), signed
        )
        try:
            params = json.loads(body) if body else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            # RecursionError: nesting deeper than the parser goes is refused, not a 500.
            raise Serialization("the request body is not valid JSON") from None
        purpose = request.headers.get(self.purpose_header)
        result = await run_in_threadpool(service.call, op, params, principal, purpose)
        # Rekognition's shapes only: facestream's own fields stay on the native API.
        return Response(content=json.dumps(rekognition_wire(result)), media_type=AMZ_JSON)
