"""Helpers for boto3 clients of facestream's Rekognition protocol (no boto3 import here).

boto3 has no field for the purpose of a search, so facestream reads it from the
``X-Facestream-Purpose`` header. :func:`add_facestream_headers` makes a boto3 client send it,
and a random ``X-Facestream-Nonce``; both are added before signing, so they are signed.

Why the nonce: SigV4 signs the time to the second, so two byte-identical requests sent in
the same second have the same signature, and facestream refuses a signature it has already
seen (replay protection). An unmodified client works, but should not send the very same
request twice within one second; with the nonce every request is unique.
"""

from __future__ import annotations

import uuid
from typing import Any

PURPOSE_HEADER = "X-Facestream-Purpose"
NONCE_HEADER = "X-Facestream-Nonce"


def add_facestream_headers(client: Any, purpose: str | None = None, *, nonce: bool = True) -> Any:
    """Register a ``before-sign`` hook on a boto3 Rekognition ``client``; returns the client."""

    def _add(request: Any, **_: Any) -> None:
        if purpose is not None:
            request.headers[PURPOSE_HEADER] = purpose
        if nonce:
            request.headers[NONCE_HEADER] = uuid.uuid4().hex

    client.meta.events.register("before-sign.rekognition.*", _add)
    return client
