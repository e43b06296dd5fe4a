"""Source schemes and webhook hosts, table-driven and fast (the HTTP path is in test_hostile_http)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from facestream.errors import InvalidParameter
from pipelines.urls import check_file_allowed, check_webhook_url, source_from_url

ALLOWED = ("hooks.example.org", "10.1.2.3")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127.8.9.10/hook",
        "http://localhost/hook",
        "http://LOCALHOST./hook",
        "http://[::1]:9000/hook",
        "https://hooks.example.org/x?y=1",
        "https://HOOKS.example.org/x",
        "http://10.1.2.3/x",
        "http://user:pw@127.0.0.1/x",
    ],
)
def test_webhook_allowed(url: str) -> None:
    check_webhook_url(url, ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.4/x",
        "http://192.168.0.1/x",
        "http://[fd00::1]/x",
        f"http://{ipaddress.IPv4Address(0)}/x",  # the unspecified address, refused as a webhook host
        "http://evil.example.com/x",
        "http://hooks.example.org.evil.example.com/x",
        "http://127.0.0.1.nip.io/x",
        "http://evil.example.com#@127.0.0.1/x",
        "ftp://127.0.0.1/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/x",
        "javascript:alert(1)",
        "http:///nohost",
        "http://127.0.0.1:notaport/x",
        "http://[::1/x",
    ],
)
def test_webhook_refused(url: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        check_webhook_url(url, ALLOWED)
    assert "/x" not in e.value.message  # the URL itself is not echoed


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "gopher://127.0.0.1/x", "concat:/a|/b", "ftp://h/x", "data:x", "smb://h/x"],
)
def test_source_schemes_refused(url: str) -> None:
    with pytest.raises(InvalidParameter, match="not allowed"):
        source_from_url(url)


def test_file_sources_only_inside_media_dirs(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    inside = media / "clip.mp4"
    inside.write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"x")
    assert check_file_allowed(inside, [media]) == inside.resolve()
    for bad in (tmp_path / "secret.mp4", media / ".." / "secret.mp4", Path("/etc/passwd")):
        with pytest.raises(InvalidParameter, match="outside the allowed media"):
            check_file_allowed(bad, [media])
    link = media / "link.mp4"
    link.symlink_to(tmp_path / "secret.mp4")
    with pytest.raises(InvalidParameter, match="outside the allowed media"):
        check_file_allowed(link, [media])
