"""The review console: a web page for reviewers, auditors and operators, served by the API.

Plain HTML, CSS and JavaScript ES modules committed under ``static/`` (no build step, no CDN,
no external fonts: it works on an offline network). The page talks to the same native API as
every other client (``POST /v1/<Operation>`` with ``Authorization: Bearer <id>:<secret>``), so
the same keys and roles apply and every call is audited the same way. The key is kept in the
tab's ``sessionStorage`` only (never in a URL, a cookie or ``localStorage``).

Routes (no authentication: the files hold no data): ``GET /console`` (redirect),
``GET /console/`` (the page) and ``GET /console/<file>`` for the files of ``static/`` only
(an allow-list read at import, so no path ever reaches the file system from a request).
Every answer carries a Content-Security-Policy without ``unsafe-inline``/``unsafe-eval``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from serve.console.ops import console_operations

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/console"

#: images come back from the API as base64 JPEG/PNG and are shown as data: URLs;
#: audit exports are downloaded from blob: URLs the page makes itself.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


def _assets() -> dict[str, tuple[bytes, str]]:
    """Every servable file: name -> (bytes, content type). Read once; the set never changes."""
    out: dict[str, tuple[bytes, str]] = {}
    for p in sorted(STATIC.iterdir()):
        if p.is_file() and p.suffix in _TYPES:
            out[p.name] = (p.read_bytes(), _TYPES[p.suffix])
    return out


def console_router() -> APIRouter:
    """GET routes of the console (outside the OpenAPI schema)."""
    assets = _assets()
    router = APIRouter(include_in_schema=False)

    def _file(name: str) -> Response:
        found = assets.get(name)
        if found is None:
            return Response(
                '{"error": {"code": "NotFoundException", "message": "no such console file"}}',
                status_code=404,
                media_type="application/json",
                headers=SECURITY_HEADERS,
            )
        body, media_type = found
        return Response(body, media_type=media_type, headers=SECURITY_HEADERS)

    @router.get(PREFIX)
    async def console_root() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308, headers=SECURITY_HEADERS)

    @router.get(f"{PREFIX}/")
    async def console_index() -> Response:
        return _file("index.html")

    @router.get(PREFIX + "/{name}")
    async def console_asset(name: str) -> Response:
        return _file(name)

    return router


__all__ = ["CSP", "console_operations", "console_router"]
