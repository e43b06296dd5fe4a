"""The tracker links faces in each embedder's calibrated terms (issue 19), for both embedders.

Embeddings are built at a chosen calibrated Similarity to each other (through the model's
anchors), so each test states its case in the tracker's own terms: same person (>= 80),
ambiguous (50-80), clearly someone else (< 50).
"""

from __future__ import annotations

import numpy as np
import pytest

from facestream.similarity import cosine_to_similarity, similarity_to_cosine
from facestream.types import FaceBatch, SearchHit
from pipelines.config import TrackerConfig
from pipelines.tracker import FaceTracker, FrameInfo

MODELS = {"dlib-resnet": 128, "facenet-vggface2": 512}
pytestmark = pytest.mark.parametrize("model", sorted(MODELS))


def _unit(model: str, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=MODELS[model])
    return (v / np.linalg.norm(v)).astype(np.float32)


def _at(model: str, ref: np.ndarray, similarity: float, seed: int) -> np.ndarray:
    """A unit vector whose calibrated Similarity to ``ref`` is ``similarity``."""
    c = similarity_to_cosine(model, similarity)
    r = _unit(model, seed).astype(np.float64)
    ortho = r - (r @ ref) * ref
    ortho /= np.linalg.norm(ortho)
    v = c * ref + np.sqrt(1 - c * c) * ortho
    return (v / np.linalg.norm(v)).astype(np.float32)


def _batch(model: str, boxes: list[list[float]], embs: list[np.ndarray]) -> FaceBatch:
    n = len(boxes)
    return FaceBatch(
        image_width=640,
        image_height=360,
        boxes=np.array(boxes, np.float32).reshape(n, 4),
        landmarks=np.zeros((n, 5, 2), np.float32),
        scores=np.full(n, 0.99, np.float32),
        brightness=np.full(n, 50, np.float32),
        sharpness=np.full(n, 60, np.float32),
        pose=np.zeros((n, 3), np.float32),
        embeddings=np.array(embs, np.float32).reshape(n, MODELS[model]),
        model=model,
    )


def _empty(model: str) -> FaceBatch:
    return _batch(model, [], [])


def _info(t: float) -> FrameInfo:
    return FrameInfo(offset_s=t, producer_ts=1000 + t, server_ts=1000 + t, session=0, monotonic=t)


def _box(x: float, y: float = 100.0, w: float = 80.0) -> list[float]:
    return [x, y, x + w, y + w]


def test_the_helper_hits_the_calibrated_similarity(model: str) -> None:
    a = _unit(model, 1)
    for s in (30.0, 65.0, 90.0):
        assert float(cosine_to_similarity(model, float(a @ _at(model, a, s, 2)))) == pytest.approx(
            s, abs=0.01
        )


def test_defaults_are_the_models_own_anchors(model: str) -> None:
    cfg = TrackerConfig()
    want = {"dlib-resnet": (0.92, 0.88), "facenet-vggface2": (0.45, 0.25)}[model]
    got = (
        similarity_to_cosine(model, cfg.same_person_similarity),
        similarity_to_cosine(model, cfg.different_person_similarity),
    )
    assert got == pytest.approx(want, abs=1e-6)


def test_a_different_person_at_the_same_spot_after_a_short_gap_is_a_new_searched_track(model: str) -> None:
    """The parade: B steps into A's spot 0.6 s after A left, while A's track is still open."""
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a = _unit(model, 10)
    (req_a,) = tr.observe(_info(0.0), _batch(model, [_box(300)], [a]))
    for k in (1, 2, 3):
        assert tr.observe(_info(0.2 * k), _batch(model, [_box(300)], [a])) == []
    for k in (4, 5, 6):  # nobody on screen for 0.6 s (< max_gap_s: A's track stays open)
        tr.observe(_info(0.2 * k), _empty(model))
    # B looks a bit like A (ambiguous, above the overlap veto) and is at exactly A's box.
    b = _at(model, a, 65.0, 11)
    (req_b,) = tr.observe(_info(1.4), _batch(model, [_box(300)], [b]))
    assert req_b.track_id != req_a.track_id and len(tr.tracks) == 2
    assert tr.tracks[req_a.track_id].frames == 4


def test_overlap_links_a_continuing_face_but_vetoes_someone_clearly_else(model: str) -> None:
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a = _unit(model, 20)
    (req,) = tr.observe(_info(0.0), _batch(model, [_box(300)], [a]))
    # Same person, a poor view (Similarity 85): linked by overlap, no new track.
    assert tr.observe(_info(0.2), _batch(model, [_box(305)], [_at(model, a, 85.0, 21)])) == []
    assert tr.tracks_started == 1 and tr.tracks[req.track_id].frames == 2
    # Someone clearly else (Similarity 40) in the same box: a new track at once.
    (other,) = tr.observe(_info(0.4), _batch(model, [_box(305)], [_at(model, a, 40.0, 22)]))
    assert other.track_id != req.track_id and tr.tracks_started == 2


def test_without_overlap_a_link_needs_the_same_person_and_a_plausible_move(model: str) -> None:
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a = _unit(model, 30)
    (req,) = tr.observe(_info(0.0), _batch(model, [_box(100)], [a]))
    # 1.5 face widths in 0.2 s, same person: the same track (no overlap, within reach).
    assert tr.observe(_info(0.2), _batch(model, [_box(220)], [_at(model, a, 95.0, 31)])) == []
    assert tr.tracks_started == 1
    # An ambiguous face (70) next to it without overlap: someone else.
    (amb,) = tr.observe(_info(0.4), _batch(model, [_box(340)], [_at(model, a, 70.0, 32)]))
    assert amb.track_id != req.track_id
    # The same person again, 0.4 s later but 6 face widths behind where the track was heading
    # (600 px/s): too far to walk, a new track.
    (far,) = tr.observe(_info(0.6), _batch(model, [_box(0, y=260)], [_at(model, a, 97.0, 33)]))
    assert far.track_id not in (req.track_id, amb.track_id)


def test_velocity_carries_a_track_across_a_missed_frame(model: str) -> None:
    tr = FaceTracker(TrackerConfig(max_speed_face_widths_per_s=2.0), threshold=80.0)
    a = _unit(model, 40)
    tr.observe(_info(0.0), _batch(model, [_box(0)], [a]))
    for k in range(1, 4):  # 2.5 face widths per second, steadily
        tr.observe(_info(0.2 * k), _batch(model, [_box(40 * k)], [a]))
    tr.observe(_info(0.8), _empty(model))
    tr.observe(_info(1.0), _empty(model))
    # Predicted at 200 after 0.6 s; seen there: the same track although 2 frames were missed.
    assert tr.observe(_info(1.2), _batch(model, [_box(240)], [a])) == []
    assert tr.tracks_started == 1


def test_crossing_people_keep_their_tracks(model: str) -> None:
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a, b = _unit(model, 50), _at(model, _unit(model, 50), 48.0, 51)
    r = tr.observe(_info(0.0), _batch(model, [_box(100), _box(400)], [a, b]))
    ids = {"a": r[0].track_id, "b": r[1].track_id}
    xs = [(160, 340), (220, 280), (260, 240), (320, 180), (380, 120)]
    for k, (xa, xb) in enumerate(xs, start=1):
        # The faces overlap in the middle; b is listed first half the time.
        boxes, embs = [_box(xa, y=100), _box(xb, y=120)], [a, b]
        if k % 2:
            boxes, embs = boxes[::-1], embs[::-1]
        tr.observe(_info(0.2 * k), _batch(model, boxes, embs))
        assert tr.tracks_started == 2
        assert tr.tracks[ids["a"]].box[0] == xa and tr.tracks[ids["b"]].box[0] == xb


def test_identity_drift_is_split_off_and_a_reported_track_never_absorbs_it(model: str) -> None:
    """Faces that drift away from the searched face (each step small) become their own track."""
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a = _unit(model, 60)
    (req,) = tr.observe(_info(0.0), _batch(model, [_box(300)], [a]))
    (up,) = tr.apply(req.track_id, [SearchHit("f-a", 95.0, "alice", "0" * 64)])
    assert up.identity.external_image_id == "alice"
    # Step by step towards someone else: each face close to the last, but the third and fourth
    # are no longer the searched person.
    target = _at(model, a, 30.0, 61)
    steps = [a]
    for s in (92.0, 86.0, 70.0, 60.0):
        cos = similarity_to_cosine(model, s)
        v = cos * a + np.sqrt(1 - cos * cos) * (target - (target @ a) * a) / np.linalg.norm(
            target - (target @ a) * a
        )
        steps.append((v / np.linalg.norm(v)).astype(np.float32))
    out = [
        tr.observe(_info(0.2 * k), _batch(model, [_box(300 + k)], [e])) for k, e in enumerate(steps[1:], 1)
    ]
    assert out[0] == [] and out[1] == []  # still alice (>= 80 to the searched face)
    assert out[2] == []  # held back: a bad view, or someone else?
    (split,) = out[3]  # the second in a row: someone else, split off and searched
    assert split.track_id != req.track_id and tr.drift_splits == 1
    alice = tr.tracks[req.track_id]
    assert alice.frames == 3 and not alice.pending  # the held faces went to the new track
    new = tr.tracks[split.track_id]
    assert new.frames == 2 and new.first.offset_s == pytest.approx(0.6)
    # The split track's evidence is its own: a hit for bob there changes nothing for alice.
    (bob,) = tr.apply(split.track_id, [SearchHit("f-b", 93.0, "bob", "1" * 64)])
    assert bob.identity.external_image_id == "bob" and set(alice.identities) == {"f-a"}
    # The assignment log names the new track for the faces that were held.
    assert [e[1][0][0] for e in list(tr.assignments)[-2:]] == [split.track_id, split.track_id]


def test_one_bad_view_is_held_but_not_split(model: str) -> None:
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a = _unit(model, 70)
    (req,) = tr.observe(_info(0.0), _batch(model, [_box(300)], [a]))
    assert tr.observe(_info(0.2), _batch(model, [_box(302)], [_at(model, a, 60.0, 71)])) == []
    assert tr.observe(_info(0.4), _batch(model, [_box(304)], [_at(model, a, 96.0, 72)])) == []
    assert tr.tracks_started == 1 and tr.drift_splits == 0
    assert tr.tracks[req.track_id].frames == 2  # the bad view was not added


def test_a_face_cannot_change_size_faster_than_a_person_moves(model: str) -> None:
    """A 24 px background face and a 200 px close-up 0.2 s later are not one track (a cut)."""
    tr = FaceTracker(TrackerConfig(), threshold=80.0)
    a = _unit(model, 80)
    (small,) = tr.observe(_info(0.0), _batch(model, [_box(50, w=30)], [a]))
    c = _at(model, a, 90.0, 81)
    (close,) = tr.observe(_info(0.2), _batch(model, [_box(300, y=60, w=200)], [c]))
    assert close.track_id != small.track_id
    # Growing 1.5x in 0.2 s (walking towards the camera) stays one track.
    assert tr.observe(_info(0.4), _batch(model, [_box(290, y=50, w=240)], [_at(model, c, 95.0, 82)])) == []


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"different_person_similarity": 85.0}, "must not exceed"),
        ({"same_person_similarity": 101.0}, "less than or equal"),
        ({"drift_frames": 0}, "greater than or equal"),
        ({"max_speed_face_widths_per_s": 0.0}, "greater than"),
        ({"cosine_link_min": 0.55}, "Extra inputs"),  # the raw-cosine setting is gone
    ],
)
def test_tracker_config_rejects_bad_values(model: str, bad: dict[str, float], match: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        TrackerConfig(**bad)
