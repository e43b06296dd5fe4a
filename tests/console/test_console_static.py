"""The console's files and headers over real HTTP, and its sign-in page in a real Chromium.

Fast: a uvicorn server with only the console's routes (no Ray, no API)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests

from serve.console import STATIC
from tests.console.a11y import check_page, tab_to

FILES = sorted(p.name for p in STATIC.iterdir() if p.is_file())


def _csp_directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_page_and_assets_are_served_with_a_strict_csp(console_only: str) -> None:
    r = requests.get(f"{console_only}/console/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = _csp_directives(r.headers["content-security-policy"])
    assert csp["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"

    moved = requests.get(f"{console_only}/console", timeout=10, allow_redirects=False)
    assert moved.status_code == 308 and moved.headers["location"] == "/console/"

    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
    for name in FILES:
        r = requests.get(f"{console_only}/console/{name}", timeout=10)
        assert r.status_code == 200, name
        assert r.headers["content-type"].startswith(types[Path(name).suffix]), (name, r.headers)
        assert r.content == (STATIC / name).read_bytes()
        assert "content-security-policy" in r.headers


@pytest.mark.parametrize(
    "path",
    ["ops.py", "__init__.py", "..%2Fops.py", "%2e%2e/ops.py", "static", "app.js.map", "missing.js", "a/b.js"],
)
def test_only_the_static_files_are_served(console_only: str, path: str) -> None:
    r = requests.get(f"{console_only}/console/{path}", timeout=10)
    assert r.status_code == 404, (path, r.status_code, r.text[:200])
    assert b"import" not in r.content  # no source file leaks


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_files_need_nothing_from_outside_and_build_no_html_from_data() -> None:
    for name in FILES:
        text = (STATIC / name).read_text(encoding="utf-8")
        # Offline: no URL to any host (no CDN, no web font), no protocol-relative reference.
        assert not re.search(r"https?://|url\(\s*['\"]?//|@import|src=\"//|href=\"//", text), name
        if name.endswith(".js"):
            # Every value from the API is untrusted: text goes in as text, never as HTML.
            for bad in (
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "Function(",
            ):
                assert bad not in text, f"{name} uses {bad}"
            # The key stays in this tab's sessionStorage only.
            assert not re.search(r"localStorage\s*[.\[]|document\.cookie", text), name

    parser = _Tags()
    parser.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    assert parser.script_text == ""  # no inline script
    ids = {a.get("id") for _, a in parser.tags}
    labelled = {a.get("for") for t, a in parser.tags if t == "label"}
    for tag, attrs in parser.tags:
        assert "style" not in attrs and not any(k.startswith("on") for k in attrs), (tag, attrs)
        if tag in ("input", "select", "textarea"):
            assert attrs.get("id") in labelled, f"<{tag} id={attrs.get('id')}> has no <label for>"
        if tag == "label":
            assert attrs.get("for") in ids, attrs
        if tag == "form":
            assert (
                attrs.get("method") == "post"
            )  # a form that posts without JS never puts the secret in a URL
    scripts = [a for t, a in parser.tags if t == "script"]
    assert scripts == [{"type": "module", "src": "app.js"}]


def test_sign_in_page_in_chromium(console_only: str, browser: Any, artifacts: Path) -> None:
    page = browser.new_page()
    violations: list[str] = []
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => "
        "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
    )
    try:
        page.goto(f"{console_only}/console/")
        page.wait_for_function("document.activeElement && document.activeElement.id === 'key-id'")
        assert page.title() == "Sign in — facestream console"
        page.get_by_role("heading", name="Sign in").wait_for()
        assert check_page(page, "sign-in") > 3
        assert page.locator("#nav").is_hidden() and page.locator("#who").is_hidden()
        # Keyboard only: from the top of the page, Tab reaches both fields and the button,
        # each drawn with a visible focus outline.
        page.evaluate("document.activeElement.blur()")
        tab_to(page, lambda f: f["id"] == "key-id")
        page.keyboard.type("FSKNOTAREALKEY00000")
        tab_to(page, lambda f: f["id"] == "key-secret")
        page.keyboard.type("not-the-secret")
        tab_to(page, lambda f: f["tag"] == "button" and f["text"] == "Sign in")
        page.screenshot(path=str(artifacts / "console-sign-in.png"), full_page=True)
        # No API behind this server: the failure is said in words, and nothing is remembered.
        page.keyboard.press("Enter")
        page.locator("#login-error").filter(has_text=re.compile(r"\w")).wait_for()
        assert "not-the-secret" not in page.url and "FSKNOTAREALKEY" not in page.url
        assert page.evaluate("sessionStorage.length + localStorage.length") == 0
        assert page.evaluate("document.cookie") == ""
        assert page.locator("#nav").is_hidden()
        violations = [e for e in errors if "CSP violation" in e]
        assert not violations, violations
        assert not [e for e in errors if "Failed to load resource" not in e], errors
    finally:
        page.close()
