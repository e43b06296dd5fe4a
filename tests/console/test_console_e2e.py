"""The review console end to end in a real headless Chromium against the real Serve app: a stream
processor decoding a real clip (Lin-Manuel Miranda on screen about 0.8-1.4 s and 3.7-7.9 s into
it, looped in real time) into a collection that needs two reviewers per match.

Scenario: sign in with a key; a stream card updates; two different reviewer keys confirm a
candidate and the alert is released (QueryMatchEvents has it); a candidate is rejected; faces
are added and removed; a person is erased with a typed confirmation; the audit chain is intact
and exports; the error-rate report shows. Each page is screenshotted into ``artifacts``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from facestream.audit import _entry_hash
from tests.api.conftest import PURPOSE, Key
from tests.console.a11y import check_page, focused, tab_to
from tests.console.conftest import ConsoleApi
from tests.helpers import face, faces_dir, scaled, wait_for

pytestmark = pytest.mark.slow

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
LIN, ALEX = "lin-manuel-miranda", "alex-lacamoire"
COLLECTION = "console-watch"
PROCESSOR = "console-cam"
TIMEOUT_MS = 90_000


def _b64(rel: str) -> str:
    return base64.b64encode(face(rel).read_bytes()).decode()


def _post(capi: ConsoleApi, op: str, body: dict[str, Any], key: Key, purpose: str | None = None) -> Any:
    headers = dict(key.bearer)
    if purpose:
        headers["X-Facestream-Purpose"] = purpose
    return requests.post(f"{capi.url}/v1/{op}", json=body, headers=headers, timeout=120)


def _ok(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text[:500]
    out: dict[str, Any] = resp.json()
    return out


def _wait(pred: Any, timeout_s: float, what: str) -> Any:
    return wait_for(pred, timeout_s, what, interval_s=0.5)


def _report_inputs(tmp: Path) -> tuple[Path, Path]:
    """A small labelled set (3 genuine pairs of each of 4 people, impostor pairs among them, all
    unflagged) and a file putting two people in group A and two in B."""
    lines = (faces_dir() / "PAIRS.tsv").read_text().splitlines()
    rows = [r.split("\t") for r in lines[1:]]
    rows = [f for f in rows if f[0].count("deepface/tests/unit/dataset") and not f[5:6][0]]
    rows = [f for f in rows if "deepface/tests/unit/dataset" in f[1]]
    by_id: dict[str, list[list[str]]] = {}
    for f in rows:
        if f[2] == "1":
            by_id.setdefault(f[3], []).append(f)
    ids = sorted(by_id)[:4]
    genuine = [f for i in ids for f in by_id[i][:3]]
    impostor = [f for f in rows if f[2] == "0" and f[3] in ids and f[4] in ids][:12]
    pairs = tmp / "pairs.tsv"
    pairs.write_text("\n".join([lines[0], *("\t".join(f) for f in genuine + impostor)]) + "\n")
    groups = tmp / "groups.tsv"
    groups.write_text("identity\tgroup\n" + "".join(f"{n}\t{'AB'[i % 2]}\n" for i, n in enumerate(ids)))
    return pairs, groups


@dataclass
class Scene:
    capi: ConsoleApi
    report: subprocess.Popen[str]

    @property
    def reviewers(self) -> tuple[Key, Key]:
        assert self.capi.reviewer2 is not None
        return self.capi.keys["reviewer"], self.capi.reviewer2


@pytest.fixture(scope="module")
def scene(capi: ConsoleApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    admin, indexer = capi.keys["admin"], capi.keys["indexer"]
    # Nothing published yet: the error-rate page has nothing to show.
    assert _ok(_post(capi, "GetErrorReport", {}, capi.keys["viewer"])) == {"Report": None, "Png": None}
    # The report job runs meanwhile (its own process, models and all), into the API's home.
    pairs, groups = _report_inputs(tmp_path_factory.mktemp("report"))
    env = {**os.environ, "FACESTREAM_HOME": str(capi.home), "FACESTREAM_DEVICE": "cpu"}
    env.pop("FACESTREAM_STORE", None)
    report = subprocess.Popen(
        [sys.executable, "-m", "facestream.cli", "report", "errors", "--pairs", str(pairs),
         "--images-root", str(faces_dir()), "--groups", str(groups), "--save", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _ok(_post(capi, "CreateCollection", {"CollectionId": COLLECTION}, admin))
        _ok(_post(capi, "PutReviewPolicy", {"CollectionId": COLLECTION, "RequiredConfirmations": 2}, admin))
        img = {"Bytes": _b64(f"face_recognition/examples/{LIN}.png")}
        body = {"CollectionId": COLLECTION, "Image": img, "ExternalImageId": LIN}
        assert len(_ok(_post(capi, "IndexFaces", body, indexer))["FaceRecords"]) == 1
        create = {
            "Name": PROCESSOR,
            "Input": {"Url": str(face(CLIP)), "Loop": True, "Realtime": True},
            "Settings": {"FaceSearch": {"CollectionId": COLLECTION}},
            "AnalysisFps": 3.0,
            "PreviewIntervalSeconds": 1.0,  # the card must show a (blurred) recent frame
        }
        _ok(_post(capi, "CreateStreamProcessor", create, admin))
        _ok(_post(capi, "StartStreamProcessor", {"Name": PROCESSOR}, admin, purpose=PURPOSE + " console"))
        yield Scene(capi, report)
    finally:
        _post(capi, "StopStreamProcessor", {"Name": PROCESSOR}, admin)
        _post(capi, "DeleteStreamProcessor", {"Name": PROCESSOR}, admin)
        if report.poll() is None:
            report.kill()
            report.wait(30)


@pytest.fixture
def page(browser: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield pg
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            pg.screenshot(path=str(artifacts / f"console-FAILED-{request.node.name}.png"), full_page=True)
        assert not errors, errors  # no script error, no CSP violation on any page
    finally:
        context.close()


def sign_in(page: Any, capi: ConsoleApi, key: Key, role: str) -> None:
    page.goto(f"{capi.url}/console/")
    page.get_by_label("Access key id").fill(key.key_id)
    page.get_by_label("Secret access key").fill(key.secret)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who-text").filter(has_text=f"{key.key_id} ({role})").wait_for()
    assert key.secret not in page.url
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""


def sign_out(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.evaluate("sessionStorage.length") == 0


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"console-{name}.png"), full_page=True)


def test_stream_card_updates(scene: Scene, page: Any, artifacts: Path) -> None:
    sign_in(page, scene.capi, scene.capi.keys["viewer"], "viewer")
    assert page.url.endswith("#streams")
    card = page.locator(f"article.stream-card[data-name='{PROCESSOR}']")
    card.wait_for()
    page.locator(f"article.stream-card[data-name='{PROCESSOR}'][data-status='RUNNING']").wait_for()
    analysed = card.locator("[data-field='analysed']")
    before = int(analysed.inner_text())
    page.wait_for_function(
        "([sel, n]) => Number(document.querySelector(sel).textContent) > n",
        arg=[f"article.stream-card[data-name='{PROCESSOR}'] [data-field='analysed']", before],
    )
    fps = card.locator("[data-field='fps']").inner_text()
    assert re.fullmatch(r"\d+\.\d frames/s", fps), fps
    assert card.locator("[data-field='collection']").inner_text() == COLLECTION
    # This processor keeps a preview (PreviewIntervalSeconds): the API has one within seconds,
    # and the card shows it, every face blurred (viewers may see it).
    deadline = time.monotonic() + scaled(60)
    preview: dict[str, Any] = {"Jpeg": None}
    while preview["Jpeg"] is None and time.monotonic() < deadline:
        preview = _ok(_post(scene.capi, "GetStreamPreview", {"Name": PROCESSOR}, scene.capi.keys["viewer"]))
        time.sleep(0.5)
    assert preview["Jpeg"] is not None, "no preview within 60 s of a running processor that keeps one"
    img = card.get_by_role("img", name=re.compile(f"^Recent frame of {PROCESSOR}, every face blurred"))
    img.wait_for()
    check_page(page, "streams")
    shot(page, artifacts, "streams")


def _candidates(capi: ConsoleApi, status: str) -> list[dict[str, Any]]:
    body = {"Status": status, "StreamProcessorName": PROCESSOR}
    out: list[dict[str, Any]] = _ok(_post(capi, "ListMatchCandidates", body, capi.keys["auditor"]))[
        "Candidates"
    ]
    return out


def test_two_reviewers_release_an_alert_and_one_rejects(scene: Scene, page: Any, artifacts: Path) -> None:
    capi = scene.capi
    first, second = scene.reviewers
    sign_in(page, capi, first, "reviewer")
    assert page.url.endswith("#review")
    pending = page.locator("#review-queue button.candidate[data-status='PENDING']")
    pending.first.wait_for()
    event_id = pending.first.get_attribute("data-event-id")
    pending.first.click()
    detail = page.locator(f"#review-detail[data-event-id='{event_id}']")
    detail.wait_for()
    # The face from the stream beside the enrolled photo, with what a reviewer needs to judge.
    stream_face = detail.get_by_role("img", name=re.compile(f"^Face from stream {PROCESSOR}"))
    assert stream_face.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert detail.get_by_role("img", name=f"Enrolled photo of {LIN}").count() == 1
    text = detail.inner_text()
    for what in ("Similarity", "Stream", "Track", PROCESSOR, "0 of 2"):
        assert what in text, (what, text)
    check_page(page, "review")
    page.get_by_label("Reason (kept in the audit log)").fill("same face as the watchlist photo")
    page.get_by_role("button", name="Confirm match").click()
    page.locator("#review-result").filter(has_text="1 of 2").wait_for()
    assert "You already reviewed this candidate (CONFIRM)" in page.locator("#already-reviewed").inner_text()
    assert page.get_by_role("button", name="Confirm match").count() == 0
    shot(page, artifacts, "review-first-confirmation")
    # The rule is the server's, not the page's: the same key again is refused.
    again = _post(capi, "ReviewMatchCandidate", {"EventId": event_id, "Decision": "CONFIRM"}, first)
    assert again.status_code == 409 and again.json()["error"]["code"] == "AlreadyReviewedException"
    sign_out(page)

    # The second reviewer, keyboard only: the candidate, the reason, the Confirm button.
    sign_in(page, capi, second, "reviewer")
    button = page.locator(f"#review-queue button.candidate[data-event-id='{event_id}']")
    button.focus()
    page.keyboard.press("Enter")
    page.locator(f"#review-detail[data-event-id='{event_id}']").wait_for()
    tab_to(page, lambda f: f["id"] == "review-reason")
    page.keyboard.type("confirmed: same person")
    tab_to(page, lambda f: f["text"] == "Confirm match")
    page.keyboard.press("Enter")
    page.locator("#review-result").filter(has_text="the alert was released").wait_for()
    assert (
        page.locator(f"#review-detail[data-event-id='{event_id}']").get_attribute("data-released") == "true"
    )
    assert page.locator("#announcer").inner_text() != "" or focused(page) is not None
    shot(page, artifacts, "review-released")

    cand = _ok(_post(capi, "GetMatchCandidate", {"EventId": event_id}, capi.keys["auditor"]))["Candidate"]
    assert cand["Status"] == "CONFIRMED" and cand["Released"] is True
    assert {d["Reviewer"] for d in cand["Decisions"]} == {first.key_id, second.key_id}

    def released() -> list[dict[str, Any]]:
        body = {"StreamProcessorName": PROCESSOR}
        events = _ok(_post(capi, "QueryMatchEvents", body, capi.keys["auditor"]))["Events"]
        return [e for e in events if e["EventId"] == event_id]

    alert = _wait(released, 60, "the released alert in the event store")[0]
    assert alert["FaceSearchResponse"][0]["MatchedFaces"][0]["Face"]["ExternalImageId"] == LIN

    # Another candidate (another track of the looping clip): rejected, with a reason.
    _wait(
        lambda: [c for c in _candidates(capi, "PENDING") if c["EventId"] != event_id],
        90,
        "a second candidate",
    )
    page.get_by_role("button", name="Refresh").click()
    other = page.locator(
        f"#review-queue button.candidate[data-status='PENDING']:not([data-event-id='{event_id}'])"
    )
    other.first.wait_for()
    other_id = other.first.get_attribute("data-event-id")
    other.first.click()
    page.locator(f"#review-detail[data-event-id='{other_id}']").wait_for()
    page.get_by_label("Reason (kept in the audit log)").fill("not enough to go on")
    page.get_by_role("button", name="Reject match").click()
    page.locator("#review-result").filter(has_text="Rejected").wait_for()
    shot(page, artifacts, "review-rejected")
    rejected = _ok(_post(capi, "GetMatchCandidate", {"EventId": other_id}, capi.keys["auditor"]))["Candidate"]
    assert rejected["Status"] == "REJECTED" and rejected["Released"] is False


def test_collections_add_remove_and_erase(scene: Scene, page: Any, artifacts: Path) -> None:
    capi = scene.capi
    sign_in(page, capi, capi.keys["indexer"], "indexer")
    assert page.url.endswith("#collections")
    page.get_by_label("Collection", exact=True).select_option(COLLECTION)
    page.locator(f"tr[data-external-id='{LIN}']").wait_for()

    def add(rel: str, ext: str) -> None:
        page.get_by_label("Photo (JPEG or PNG, one face)").set_input_files(str(face(rel)))
        page.get_by_label("External image id (who this is)").fill(ext)
        page.get_by_role("button", name="Add face").click()
        page.locator("#add-face-form [role='status']").filter(has_text=f"Added 1 face for {ext}").wait_for()
        page.locator(f"tr[data-external-id='{ext}']").wait_for()

    add(f"face_recognition/examples/{ALEX}.png", ALEX)
    add("face_recognition/examples/biden.jpg", "to-remove")
    # Enrolled thumbnails are shown to an indexer.
    lin_row = page.locator(f"tr[data-external-id='{LIN}']")
    assert lin_row.get_by_role("img", name=f"Enrolled photo of {LIN}").count() == 1
    row = page.locator("tr[data-external-id='to-remove']")
    face_id = row.locator("li.face-item").first.get_attribute("data-face-id")
    row.get_by_role("button", name=f"Remove face {face_id} of to-remove").click()
    page.get_by_role("button", name=f"Yes, remove face {face_id}").click()
    row.wait_for(state="detached")
    check_page(page, "collections (indexer)")
    shot(page, artifacts, "collections-indexer")
    faces = _ok(_post(capi, "ListFaces", {"CollectionId": COLLECTION}, capi.keys["viewer"]))["Faces"]
    assert sorted(f["ExternalImageId"] for f in faces) == [ALEX, LIN]
    sign_out(page)

    sign_in(page, capi, capi.keys["admin"], "admin")
    page.get_by_label("Collection", exact=True).select_option(COLLECTION)
    page.get_by_role("button", name=f"Erase {ALEX}").click()
    erase = page.get_by_role("button", name="Erase person")
    assert page.get_by_label("External image id to erase").input_value() == ALEX
    page.get_by_label("Reason (case or request reference; audited)").fill("erasure request 2026-7")
    confirm = page.get_by_label("Type the external image id again to confirm")
    confirm.fill(ALEX[:-1])
    assert erase.is_disabled()  # nothing happens until the id is typed exactly
    confirm.fill(ALEX)
    assert erase.is_enabled()
    erase.click()
    done = page.locator("#erase-result").filter(has_text=f"Erased {ALEX}: 1 face(s)")
    done.wait_for()
    assert "and 1 enrolled photo(s) deleted" in done.inner_text()  # the photo went with the vector
    page.locator(f"tr[data-external-id='{ALEX}']").wait_for(state="detached")
    check_page(page, "collections (admin)")
    shot(page, artifacts, "collections-erased")
    faces = _ok(_post(capi, "ListFaces", {"CollectionId": COLLECTION}, capi.keys["viewer"]))["Faces"]
    assert [f["ExternalImageId"] for f in faces] == [LIN]


def test_audit_chain_search_and_export(scene: Scene, page: Any, artifacts: Path) -> None:
    capi = scene.capi
    sign_in(page, capi, capi.keys["auditor"], "auditor")
    assert page.url.endswith("#audit")
    page.locator("#chain-status[data-intact='true']").wait_for()
    assert "Intact" in page.locator("#chain-status").inner_text()
    page.get_by_label("Operation").fill("CreateCollection")
    page.get_by_role("button", name="Search").click()
    # The unfiltered table may still be on screen when the click lands: wait until the rows
    # shown are the search's (a filter that does not work times out here).
    page.wait_for_function(
        """() => {
            const rows = [...document.querySelectorAll('#audit-table tbody tr')];
            return rows.length > 0 && rows.every((r) => r.dataset.operation === 'CreateCollection');
        }"""
    )
    rows = page.locator("#audit-table tbody tr")
    assert capi.keys["admin"].key_id in rows.first.inner_text()
    check_page(page, "audit")
    shot(page, artifacts, "audit")

    page.get_by_label("Operation").fill("")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export JSON lines").click()
    path = artifacts / "console-audit-export.jsonl"
    dl.value.save_as(str(path))
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert entries and all(e["hash"] == _entry_hash(e) for e in entries)  # byte-exact, verifiable
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(seqs) and "CreateCollection" in {e["operation"] for e in entries}


def test_error_rates_page(scene: Scene, page: Any, artifacts: Path) -> None:
    out, err = scene.report.communicate(timeout=240)
    assert scene.report.returncode == 0, err[-2000:]
    saved = json.loads(out.splitlines()[-1])
    assert saved["saved"].endswith("errors.json")
    sign_in(page, scene.capi, scene.capi.keys["searcher"], "searcher")
    assert page.url.endswith("#errors")
    table = page.locator("#error-table")
    table.wait_for()
    groups = {
        table.locator("tbody tr").nth(i).get_attribute("data-group")
        for i in range(table.locator("tbody tr").count())
    }
    assert {"A", "B"} <= groups
    plot = page.get_by_role("img", name=re.compile("^Bar charts of false-match"))
    assert plot.get_attribute("src").startswith("data:image/png;base64,")
    assert page.evaluate("document.querySelector('figure.plot img').naturalWidth") > 100
    check_page(page, "error rates")
    shot(page, artifacts, "error-rates")
