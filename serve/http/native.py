"""The native API: ``POST /v1/<Operation>`` (JSON, images as base64 ``Bytes``) and
``POST /v1/<Operation>/upload`` (multipart), bearer auth, and ``GET /openapi.json``.

Authentication and authorization happen in :class:`serve.http.middleware.RequestGuards`
before the body is parsed; a handler finds the caller in ``request.state.principal``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint annotations at run time
# and the per-operation body models are closure variables.

import base64
import json
from typing import Annotated, Any, cast

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from facestream.errors import FacestreamError
from serve.errors import Serialization
from serve.http.responses import internal_error, native_error
from serve.service import ApiService, Operation, Principal

_IMAGE_FIELDS = ("Image", "SourceImage", "TargetImage")

#: the multipart part holding the fields other than the images
RequestPart = Annotated[str, Form(alias="request", description="other fields as JSON")]

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input: {'error': {'code', 'message'}}"},
    401: {"description": "no, unknown, revoked or wrong credentials"},
    403: {"description": "the key's role may not call this operation"},
}


class NativeApi:
    """The ``/v1`` routes of one app, bound to its service."""

    def __init__(self, service: ApiService) -> None:
        self.service = service
        self.purpose_header = service.config.auth.require_purpose_header

    def router(self) -> APIRouter:
        router = APIRouter()
        for op in self.service.operations.values():
            self._add_routes(router, op)
        router.add_api_route("/openapi.json", openapi, methods=["GET"], include_in_schema=False)
        return router

    async def run(self, request: Request, op: Operation, params: dict[str, Any]) -> JSONResponse:
        """Call ``op`` for the authenticated caller; errors in the native shape."""
        try:
            principal: Principal = request.state.principal
            result = await run_in_threadpool(
                self.service.call, op, params, principal, request.headers.get(self.purpose_header)
            )
            return JSONResponse(result)
        except FacestreamError as exc:
            return native_error(exc)
        except Exception as exc:
            return native_error(internal_error(exc))

    async def run_upload(
        self, request: Request, op: Operation, files: dict[str, UploadFile], request_json: str
    ) -> JSONResponse:
        """A multipart call: the images as files, the other fields as JSON in ``request_json``."""
        try:
            params = json.loads(request_json)
        except (ValueError, RecursionError):
            return native_error(Serialization("the 'request' part is not valid JSON"))
        if not isinstance(params, dict):
            return native_error(Serialization("the 'request' part must be a JSON object"))
        for name, f in files.items():
            data = await f.read()
            params[name] = {"Bytes": base64.b64encode(data).decode("ascii")} if data else {}
        return await self.run(request, op, params)

    def _add_routes(self, router: APIRouter, op: Operation) -> None:
        model = op.model
        image_fields = [f for f in _IMAGE_FIELDS if f in model.model_fields]
        doc = f"{op.summary or op.name}. Roles: {', '.join(sorted(r.value for r in op.roles))}." + (
            " Needs the purpose header." if op.needs_purpose else ""
        )
        run, run_upload = self.run, self.run_upload

        async def endpoint(request: Request, body: model) -> JSONResponse:  # type: ignore[valid-type]
            params = cast(BaseModel, body).model_dump(mode="json", exclude_none=True)
            return await run(request, op, params)

        router.add_api_route(
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
                request_json: RequestPart = "{}",
            ) -> JSONResponse:
                return await run_upload(request, op, {"Image": image}, request_json)

        else:

            async def upload(  # type: ignore[misc]
                request: Request,
                source_image: Annotated[UploadFile, File(alias="SourceImage", description="source image")],
                target_image: Annotated[UploadFile, File(alias="TargetImage", description="target image")],
                request_json: RequestPart = "{}",
            ) -> JSONResponse:
                files = {"SourceImage": source_image, "TargetImage": target_image}
                return await run_upload(request, op, files, request_json)

        router.add_api_route(
            f"/v1/{op.name}/upload",
            upload,
            methods=["POST"],
            name=f"{op.name}Upload",
            summary=f"{op.name} (multipart upload)",
            description=doc + " Images as multipart files; other fields as JSON in the 'request' part.",
            operation_id=f"{op.name}Upload",
            responses=_ERROR_RESPONSES,
        )


async def openapi(request: Request) -> JSONResponse:
    """The schema of the native API; the middleware has authenticated the caller."""
    return JSONResponse(request.app.openapi())
