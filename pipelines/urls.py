"""Source URLs: masking secrets, the scheme allowlist, and what PyAV is asked to open.

A camera URL is a secret (``rtsp://user:password@cam/...``; a Kinesis HLS session URL
carries a session token in its query). Everything that leaves this module for logs, status
or events goes through :func:`mask_url` / :func:`scrub`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from facestream.errors import InvalidParameter
from pipelines.config import (
    ALLOWED_SCHEMES,
    FileSource,
    HlsSource,
    KinesisVideoSource,
    MpegTsSource,
    RtspSource,
    SourceConfig,
)

MASK = "***"
_SECRET_QUERY = re.compile(
    r"(token|password|passwd|pass|pwd|secret|key|sig|signature|credential|auth|x-amz-.*)", re.IGNORECASE
)


def mask_url(url: str) -> str:
    """``url`` with user, password and secret-looking query values replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_QUERY.fullmatch(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every secret (and its masked-URL form) in ``text``; for error messages from FFmpeg."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, mask_url(s) if "://" in s else MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The raw URL and its password/user/secret query values: what must never be shown."""
    out = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    out += [p for p in (parts.password, parts.username) if p and len(p) >= 3]
    out += [v for k, v in parse_qsl(parts.query) if _SECRET_QUERY.fullmatch(k) and len(v) >= 3]
    return out


def media_dirs_from_env(default: list[Path] | None = None) -> list[Path]:
    """``FACESTREAM_MEDIA_DIRS`` (os.pathsep separated) or ``default`` or the working directory."""
    env = os.environ.get("FACESTREAM_MEDIA_DIRS")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return default if default else [Path.cwd()]


def check_file_allowed(path: Path, media_dirs: list[Path]) -> Path:
    """The resolved path if it lies under one of ``media_dirs`` and is a file; else InvalidParameter."""
    real = path.expanduser().resolve()
    roots = [d.expanduser().resolve() for d in media_dirs]
    if not any(real == r or r in real.parents for r in roots):
        raise InvalidParameter(
            f"file source {path} is outside the allowed media directories {[str(r) for r in roots]} "
            "(set FACESTREAM_MEDIA_DIRS or runtime.media_dirs)"
        )
    if not real.is_file():
        raise InvalidParameter(f"file source {path} does not exist or is not a file")
    return real


def source_from_url(
    url: str, *, rtsp_transport: str = "tcp", loop: bool = False, realtime: bool = False
) -> SourceConfig:
    """Pick the source kind from a URL's scheme (what ``facestream stream SOURCE`` is given).

    A path or ``file://`` URL is a file source. Unknown schemes raise :class:`InvalidParameter`
    naming the allowed ones (the URL itself is not echoed: it may hold a password).
    """
    from pydantic import ValidationError

    if "://" in url:
        scheme = urlsplit(url).scheme.lower()
    elif ":" in url.split("/", 1)[0]:
        # FFmpeg reads 'concat:a|b', 'subfile,,...:' and the like as protocols, not paths.
        scheme = re.split(r"[:,]", url, maxsplit=1)[0].lower()
        if scheme != "file":
            scheme = scheme or ":"
    else:
        scheme = ""
    try:
        if scheme in ("", "file"):
            return FileSource(path=Path(urlsplit(url).path if scheme else url), loop=loop, realtime=realtime)
        if scheme in ALLOWED_SCHEMES["rtsp"]:
            return RtspSource(url=url, transport=rtsp_transport)
        if scheme in ALLOWED_SCHEMES["hls"]:
            return HlsSource(url=url)
        if scheme in ALLOWED_SCHEMES["mpegts"]:
            return MpegTsSource(url=url)
    except ValidationError as exc:
        msgs = "; ".join(str(e["msg"]) for e in exc.errors())
        raise InvalidParameter(f"source {mask_url(url)}: {msgs}") from None
    allowed = sorted({s for v in ALLOWED_SCHEMES.values() for s in v} | {"file"})
    raise InvalidParameter(
        f"source scheme {scheme!r} is not allowed; expected one of {allowed} or a file path"
    )


#: Hosts a webhook sink may always reach: this machine.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _norm_host(host: str) -> str:
    host = host.strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def check_webhook_url(url: str, allowed_hosts: Iterable[str] = ()) -> None:
    """Refuse a webhook URL whose host is not loopback nor in ``allowed_hosts``.

    A webhook is an outbound request the server makes on a caller's behalf: without an
    allowlist an admin key could make it POST match records (faces' identities) anywhere,
    or probe the internal network (SSRF). Hosts compare exactly (no wildcards, no DNS
    lookups); IP addresses in their canonical form. The URL itself is never echoed.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # a non-numeric port raises here
    except ValueError:
        raise InvalidParameter("webhook URL is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidParameter(
            f"webhook URL scheme {parts.scheme.lower()!r} is not allowed; expected http or https"
        )
    if not host:
        raise InvalidParameter("webhook URL has no host")
    norm = _norm_host(host)
    loopback = norm in LOOPBACK_HOSTS
    if not loopback:
        with contextlib.suppress(ValueError):
            loopback = ipaddress.ip_address(norm).is_loopback
    allowed = {_norm_host(h) for h in allowed_hosts}
    if not loopback and norm not in allowed:
        shown = sorted(LOOPBACK_HOSTS | allowed)
        raise InvalidParameter(
            f"webhook host {norm[:253]!r} is not allowed; allowed hosts: {shown} "
            "(configure more with webhook_hosts)"
        )


@dataclass(frozen=True)
class OpenSpec:
    """What to hand to ``av.open``: the URL (secret), demuxer options, and how to show it."""

    url: str
    options: dict[str, str] = field(default_factory=dict)
    display: str = ""
    is_file: bool = False
    secrets: list[str] = field(default_factory=list)


def describe_source(source: SourceConfig) -> str:
    """A masked, human-readable name of the source for status and logs (no I/O)."""
    if isinstance(source, FileSource):
        return f"file:{source.path}"
    if isinstance(source, KinesisVideoSource):
        return f"kinesis-video:{source.region}/{source.stream_name}"
    return mask_url(source.url.get_secret_value())


def open_spec(source: SourceConfig, media_dirs: list[Path], timeout_s: float = 10.0) -> OpenSpec:
    """Resolve a source to an :class:`OpenSpec` (may call AWS for a Kinesis session URL, each
    call bounded by ``timeout_s``)."""
    if isinstance(source, FileSource):
        real = check_file_allowed(source.path, media_dirs)
        # "file:" + an absolute path: FFmpeg never reads a path as another protocol.
        return OpenSpec(
            url=f"file:{real}", options={"protocol_whitelist": "file"}, display=f"file:{real}", is_file=True
        )
    if isinstance(source, RtspSource):
        url = source.url.get_secret_value()
        options = {"rtsp_transport": source.transport, "protocol_whitelist": "rtsp,rtsps,rtp,udp,tcp,tls"}
        return OpenSpec(url=url, options=options, display=mask_url(url), secrets=url_secrets(url))
    if isinstance(source, MpegTsSource):
        url = source.url.get_secret_value()
        return OpenSpec(
            url=url,
            options={"protocol_whitelist": "tcp,udp"},
            display=mask_url(url),
            secrets=url_secrets(url),
        )
    url = (
        source.url.get_secret_value()
        if isinstance(source, HlsSource)
        else kinesis_hls_url(source, timeout_s=timeout_s)
    )
    display = mask_url(url) if isinstance(source, HlsSource) else describe_source(source)
    # A playlist may lead only to more HTTP(S), never to file: or other protocols.
    return OpenSpec(
        url=url,
        options={"protocol_whitelist": "http,https,tcp,tls,crypto"},
        display=display,
        secrets=url_secrets(url),
    )


def kinesis_hls_url(source: KinesisVideoSource, timeout_s: float = 10.0) -> str:
    """The HLS session URL of a Kinesis video stream (given, or asked of AWS with boto3).

    Each AWS call is bounded (connect and read ``timeout_s``, two attempts): botocore's
    defaults (60 s each, several retries) would hold a reconnect for minutes.
    """
    if source.hls_session_url is not None:
        return source.hls_session_url.get_secret_value()
    try:
        import boto3  # optional: only Kinesis sources without a given URL need it
    except ImportError:
        raise InvalidParameter(
            "kinesis-video source without hls_session_url needs boto3 (pip install boto3)"
        ) from None
    from botocore.config import Config

    bounded = Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 2})
    kv = boto3.client("kinesisvideo", region_name=source.region, config=bounded)
    endpoint = kv.get_data_endpoint(StreamName=source.stream_name, APIName="GET_HLS_STREAMING_SESSION_URL")
    media = boto3.client(
        "kinesis-video-archived-media",
        region_name=source.region,
        endpoint_url=endpoint["DataEndpoint"],
        config=bounded,
    )
    resp = media.get_hls_streaming_session_url(
        StreamName=source.stream_name, PlaybackMode=source.playback_mode, Expires=source.session_expires_s
    )
    return str(resp["HLSStreamingSessionURL"])


def check_source(source: SourceConfig, media_dirs: list[Path]) -> None:
    """Cheap admission check before a processor is created (file sources: path allowed)."""
    if isinstance(source, FileSource):
        check_file_allowed(source.path, media_dirs)
    # URL kinds were checked by their config validators (scheme allowlist, host present).


__all__ = [
    "HlsSource",
    "KinesisVideoSource",
    "MpegTsSource",
    "OpenSpec",
    "RtspSource",
    "check_file_allowed",
    "check_source",
    "check_webhook_url",
    "describe_source",
    "mask_url",
    "media_dirs_from_env",
    "open_spec",
    "scrub",
    "source_from_url",
]
