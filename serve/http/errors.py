"""Exception handlers: framework errors (validation, routing, unparsable bodies) and
:class:`FacestreamError` answered in the native error shape."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facestream.errors import FacestreamError, InvalidParameter
from serve.http.responses import native_error

_HTTP_CODES = {
    400: "SerializationException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return native_error(InvalidParameter("; ".join(parts) or "invalid request"))


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # 400 here is a body FastAPI could not parse (not JSON, nested too deep for the parser).
    code = _HTTP_CODES.get(exc.status_code, "HttpError")
    return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)


async def facestream_error(request: Request, exc: FacestreamError) -> JSONResponse:
    return native_error(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(FacestreamError, facestream_error)  # type: ignore[arg-type]
