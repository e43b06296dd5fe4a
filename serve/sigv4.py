"""Verification of AWS Signature Version 4 (header form), as botocore signs requests.

The server recomputes the signature from the request it received and the caller's secret,
and compares in constant time. A request is refused when its ``X-Amz-Date`` is more than the
allowed skew away from now (AWS's rule: 5 minutes) or when its signature was already seen
within that window (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from serve.errors import InvalidSignature, MissingAuthentication, UnrecognizedClient

ALGORITHM = "AWS4-HMAC-SHA256"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*SignedHeaders=(?P<sh>[a-z0-9\-;]+)"
    r"\s*,\s*Signature=(?P<sig>[0-9a-f]{64})\s*"
)
_CRED = re.compile(
    r"(?P<akid>[A-Z0-9]{16,128})/(?P<date>[0-9]{8})/(?P<region>[a-z0-9\-]{1,32})/"
    r"(?P<service>[a-z0-9\-]{1,64})/aws4_request"
)
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_MAX_AUTH_CHARS = 2048


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    query: str
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Verified:
    access_key_id: str
    signature: str
    region: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    k = _hmac(f"AWS4{secret}".encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def canonical_request(req: SignedRequest, signed_headers: list[str]) -> str:
    path = quote(req.path or "/", safe="/~")
    pairs = sorted(tuple(p.partition("=")[::2]) for p in req.query.split("&")) if req.query else []
    query = "&".join(f"{k}={v}" for k, v in pairs)
    lines = []
    for name in signed_headers:
        values = _header_values(req.headers, name)
        if not values:
            raise InvalidSignature(f"signed header {name!r} is missing from the request")
        lines.append(f"{name}:" + ",".join(" ".join(v.split()) for v in values))
    content_sha = _header_values(req.headers, "x-amz-content-sha256")
    payload = content_sha[0] if content_sha else hashlib.sha256(req.body).hexdigest()
    if content_sha and payload != hashlib.sha256(req.body).hexdigest():
        raise InvalidSignature("X-Amz-Content-SHA256 does not match the request body")
    return "\n".join(
        [req.method.upper(), path, query, "\n".join(lines) + "\n", ";".join(signed_headers), payload]
    )


def verify(
    req: SignedRequest,
    *,
    service: str,
    lookup_secret: Callable[[str], str | None],
    remember: Callable[[str], bool],
    max_skew_s: int,
    now: datetime | None = None,
) -> Verified:
    """Check the request's SigV4 ``Authorization`` header; return who signed it.

    ``lookup_secret(access_key_id)`` gives the secret of an active key or None;
    ``remember(signature)`` records a signature and returns False if it was seen before.
    Raises :class:`MissingAuthentication`, :class:`UnrecognizedClient` or
    :class:`InvalidSignature` (all 401) with a message saying what was wrong.
    """
    auth = _header_values(req.headers, "authorization")
    if not auth:
        raise MissingAuthentication("missing Authorization header (AWS Signature Version 4 expected)")
    if len(auth) != 1 or len(auth[0]) > _MAX_AUTH_CHARS:
        raise InvalidSignature("expected exactly one Authorization header of at most 2048 characters")
    m = _AUTH.fullmatch(auth[0].strip())
    if m is None:
        raise InvalidSignature(
            "Authorization header is not 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'"
        )
    cred = _CRED.fullmatch(m["cred"])
    if cred is None:
        raise InvalidSignature("credential scope must be ACCESSKEYID/YYYYMMDD/REGION/SERVICE/aws4_request")
    if cred["service"] != service:
        raise InvalidSignature(f"credential scope names service {cred['service']!r}; expected {service!r}")
    signed = m["sh"].split(";")
    if signed != sorted(set(signed)) or "host" not in signed or "x-amz-date" not in signed:
        raise InvalidSignature("SignedHeaders must be sorted, unique and include host and x-amz-date")

    dates = _header_values(req.headers, "x-amz-date")
    if len(dates) != 1 or not _AMZ_DATE.fullmatch(dates[0]):
        raise InvalidSignature("X-Amz-Date must be one timestamp of the form YYYYMMDDTHHMMSSZ")
    amz_date = dates[0]
    if amz_date[:8] != cred["date"]:
        raise InvalidSignature("X-Amz-Date does not match the date of the credential scope")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidSignature(f"X-Amz-Date {amz_date!r} is not a valid time") from None
    now = now or datetime.now(UTC)
    skew = abs((now - signed_at).total_seconds())
    if skew > max_skew_s:
        raise InvalidSignature(
            f"signature expired: X-Amz-Date {amz_date} is {skew:.0f} s from the server time "
            f"{now.strftime('%Y%m%dT%H%M%SZ')}; at most {max_skew_s} s allowed"
        )

    secret = lookup_secret(cred["akid"])
    if secret is None:
        raise UnrecognizedClient(
            f"the access key id {cred['akid']} is not an active facestream key (unknown or revoked)"
        )
    scope = f"{cred['date']}/{cred['region']}/{cred['service']}/aws4_request"
    creq = canonical_request(req, signed)
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode("utf-8")).hexdigest()])
    key = signing_key(secret, cred["date"], cred["region"], cred["service"])
    expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, m["sig"]):
        raise InvalidSignature(
            "the request signature does not match the one computed with the key's secret "
            "(wrong secret, or the request was changed after signing)"
        )
    if not remember(m["sig"]):
        raise InvalidSignature("this signature was already used: replayed requests are refused")
    return Verified(access_key_id=cred["akid"], signature=m["sig"], region=cred["region"])
