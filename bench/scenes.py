"""Tracking test videos made at test time from still photos, with their ground truth.

Each person of a scene is a square chip cut around the face of one photo of theirs and moved
over a plain background; the video is written with ffmpeg (H.264, 25 fps). The gallery
enrols a *different* photo of each enrolled person (pairs of :data:`ROSTER`, taken from the
unflagged same-person pairs of the shared ``PAIRS.tsv``), so a match is a real recognition,
not an image lookup. People who are not enrolled walk through too: nobody may report them.

Ground truth comes from the generator: for every video frame, each *visit* (one continuous
stay of one person on screen) with its face box. A person who leaves and comes back after
the tracker's ``max_gap_s`` is a new visit: the tracker is asked to keep one track per visit,
not to re-identify people across absences (the store search does that).

Scenes (:func:`scenes`):

- ``parade``: ten people, one after another, step into the same spot (1.4 s each, 0.6 s apart)
- ``crossing``: two people walk across each other's path
- ``side-by-side-2`` / ``side-by-side-4``: two and four people next to each other the whole clip
- ``swap``: one person replaced by another in the same place from one frame to the next
- ``return``: one person on screen, gone for longer than ``max_gap_s``, back again
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FPS = 25
WIDTH, HEIGHT = 640, 360
#: face box width in the video, px (well above the tracker's searchable 28 px)
FACE_PX = 84
#: the chip around a face, in face widths (context for the detector)
CHIP_SCALE = 1.7
#: a face counts as on screen when at least this much of its box is not covered by others
MIN_VISIBLE = 0.5


@dataclass(frozen=True)
class Person:
    """One identity: ``shown`` appears in the video; ``enrolled`` (another photo) goes in the gallery."""

    name: str
    shown: str  # path under the faces data dir
    enrolled: str | None  # None: not in the gallery (must never be reported)


_DF = "deepface/tests/unit/dataset"
_FR = "face_recognition/examples"
#: Clearly different people (pairwise Similarity of the shown photos well below the EER point
#: with dlib-resnet); photos from PAIRS.tsv's unflagged same-person pairs.
ROSTER: dict[str, Person] = {
    p.name: p
    for p in (
        Person(
            "barack-obama", f"{_FR}/knn_examples/train/obama/obama.jpg", f"{_FR}/knn_examples/test/obama1.jpg"
        ),
        Person("angelina-jolie", f"{_DF}/img10.jpg", f"{_DF}/img1.jpg"),
        Person("joe-biden", f"{_FR}/biden.jpg", f"{_FR}/knn_examples/train/biden/biden2.jpg"),
        Person(
            "kit-harington",
            f"{_FR}/knn_examples/train/kit_harington/john1.jpeg",
            f"{_FR}/knn_examples/test/johnsnow_test1.jpg",
        ),
        Person(
            "rose-leslie",
            f"{_FR}/knn_examples/train/rose_leslie/img2.jpg",
            f"{_FR}/knn_examples/train/rose_leslie/img1.jpg",
        ),
        Person(
            "eric-clapton", "openface/images/examples/clapton-2.jpg", "openface/images/examples/clapton-1.jpg"
        ),
        Person(
            "anthony-hopkins",
            "facenet/data/images/Anthony_Hopkins_0002.jpg",
            "facenet/data/images/Anthony_Hopkins_0001.jpg",
        ),
        Person(
            "john-lennon", "openface/images/examples/lennon-2.jpg", "openface/images/examples/lennon-1.jpg"
        ),
        # not enrolled
        Person("alex-lacamoire", f"{_FR}/knn_examples/test/alex_lacamoire1.jpg", None),
        Person("person-img18", f"{_DF}/img19.jpg", None),
        Person("person-img20", f"{_DF}/img21.jpg", None),
    )
}


@dataclass(frozen=True)
class Visit:
    """One continuous stay of one person: face centre moves linearly from ``start`` to ``end``."""

    visit_id: int
    person: str
    t0_s: float
    t1_s: float
    start: tuple[float, float]
    end: tuple[float, float]
    face_px: float = FACE_PX

    def centre(self, t: float) -> tuple[float, float]:
        a = 0.0 if self.t1_s <= self.t0_s else (t - self.t0_s) / (self.t1_s - self.t0_s)
        return (
            self.start[0] + a * (self.end[0] - self.start[0]),
            self.start[1] + a * (self.end[1] - self.start[1]),
        )


@dataclass(frozen=True)
class Scene:
    name: str
    duration_s: float
    visits: tuple[Visit, ...]  # later visits are drawn on top of earlier ones

    @property
    def people(self) -> list[str]:
        return sorted({v.person for v in self.visits})

    @property
    def frames(self) -> int:
        return round(self.duration_s * FPS)


@dataclass(frozen=True)
class TruthBox:
    visit_id: int
    person: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 px


def scenes(max_gap_s: float = 1.5) -> dict[str, Scene]:
    """The tracking scenes; ``return`` keeps its person away for ``max_gap_s`` + 1 s."""
    cy = HEIGHT / 2
    parade_people = [
        "barack-obama",
        "alex-lacamoire",
        "angelina-jolie",
        "joe-biden",
        "person-img18",
        "kit-harington",
        "rose-leslie",
        "person-img20",
        "eric-clapton",
        "anthony-hopkins",
    ]
    on_s, gap_s, lead_s = 1.4, 0.6, 0.4
    parade = tuple(
        # Each steps into the same spot from a little to the right (40 px over the stay).
        Visit(k, p, lead_s + k * (on_s + gap_s), lead_s + k * (on_s + gap_s) + on_s, (340.0, cy), (300.0, cy))
        for k, p in enumerate(parade_people)
    )
    crossing = (
        Visit(0, "barack-obama", 0.2, 4.2, (90.0, cy - 30), (550.0, cy + 10)),
        Visit(1, "angelina-jolie", 0.2, 4.2, (550.0, cy + 30), (90.0, cy - 10)),
    )

    def row(names: list[str], duration_s: float) -> tuple[Visit, ...]:
        step = WIDTH / len(names)
        return tuple(
            # A slow sway, alternating direction: side by side, never still.
            Visit(
                k,
                p,
                0.2,
                duration_s - 0.2,
                (step * (k + 0.5) - 10 * (-1) ** k, cy),
                (step * (k + 0.5) + 10 * (-1) ** k, cy + 8),
            )
            for k, p in enumerate(names)
        )

    # One person replaced by another in the same box from one frame to the next (a cut, or a
    # queue moving up): the overlap is perfect, only identity can tell.
    swap = (
        Visit(0, "joe-biden", 0.2, 2.2, (300.0, cy), (320.0, cy)),
        Visit(1, "eric-clapton", 2.2 + 1.0 / FPS, 4.2, (320.0, cy), (340.0, cy)),
    )
    away_s = max_gap_s + 1.0
    back = 0.3 + 2.0 + away_s
    ret = (
        Visit(0, "john-lennon", 0.3, 2.3, (280.0, cy), (360.0, cy)),
        Visit(1, "john-lennon", back, back + 2.0, (360.0, cy), (280.0, cy)),
    )
    return {
        s.name: s
        for s in (
            Scene("parade", lead_s + len(parade) * (on_s + gap_s), parade),
            Scene("crossing", 4.4, crossing),
            Scene("side-by-side-2", 4.0, row(["joe-biden", "kit-harington"], 4.0)),
            Scene(
                "side-by-side-4",
                4.0,
                row(["rose-leslie", "eric-clapton", "anthony-hopkins", "person-img20"], 4.0),
            ),
            Scene("swap", 4.4, swap),
            Scene("return", back + 2.3, ret),
        )
    }


@dataclass(frozen=True)
class Chip:
    """A square RGB cut around one face; the face box inside it, px of the chip."""

    rgb: np.ndarray
    face: tuple[float, float, float, float]


def make_chip(photo: np.ndarray, face_box: np.ndarray) -> Chip:
    """Cut a square of ``CHIP_SCALE`` face widths around ``face_box`` (x1,y1,x2,y2) of ``photo``."""
    x1, y1, x2, y2 = (float(v) for v in face_box)
    side = CHIP_SCALE * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    n = round(side)
    h, w = photo.shape[:2]
    pad = max(0, -left, -top, left + n - w, top + n - h)
    padded = np.pad(photo, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad else photo
    cut = padded[top + pad : top + pad + n, left + pad : left + pad + n]
    return Chip(np.ascontiguousarray(cut), (x1 - left, y1 - top, x2 - left, y2 - top))


def _placed(
    chip: Chip, visit: Visit, t: float
) -> tuple[np.ndarray, int, int, tuple[float, float, float, float]]:
    """The resized chip, its top-left in the frame, and the face box in frame px."""
    fx1, fy1, fx2, fy2 = chip.face
    scale = visit.face_px / (fx2 - fx1)
    n = max(8, round(chip.rgb.shape[0] * scale))
    scale = n / chip.rgb.shape[0]
    img = np.asarray(Image.fromarray(chip.rgb).resize((n, n), Image.Resampling.BILINEAR))
    cx, cy = visit.centre(t)
    fcx, fcy = (fx1 + fx2) / 2 * scale, (fy1 + fy2) / 2 * scale
    left, top = round(cx - fcx), round(cy - fcy)
    box = (left + fx1 * scale, top + fy1 * scale, left + fx2 * scale, top + fy2 * scale)
    return img, left, top, box


def _background() -> np.ndarray:
    rng = np.random.default_rng(19)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = 90 + 60 * (xx / WIDTH) + 30 * (yy / HEIGHT)
    noise = rng.normal(0, 6, size=(HEIGHT, WIDTH))
    grey = np.clip(base + noise, 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _covered(box: tuple[float, float, float, float], rects: list[tuple[int, int, int, int]]) -> float:
    """Fraction of ``box`` (clipped to the frame) covered by the union of ``rects``."""
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(WIDTH, int(box[2])), min(HEIGHT, int(box[3]))
    if x2 <= x1 or y2 <= y1:
        return 1.0
    mask = np.zeros((y2 - y1, x2 - x1), bool)
    for rx1, ry1, rx2, ry2 in rects:
        mask[max(0, ry1 - y1) : max(0, ry2 - y1), max(0, rx1 - x1) : max(0, rx2 - x1)] = True
    full = (box[2] - box[0]) * (box[3] - box[1])
    return 1.0 - (1.0 - float(mask.mean())) * (x2 - x1) * (y2 - y1) / max(full, 1.0)


def render(scene: Scene, chips: dict[str, Chip], out: Path) -> list[list[TruthBox]]:
    """Write ``scene`` to ``out`` (MP4, H.264, :data:`FPS`); return the truth of every video frame."""
    bg = _background()
    truth: list[list[TruthBox]] = []
    proc = subprocess.Popen(
        [
            FFMPEG,
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{WIDTH}x{HEIGHT}",
            "-r",
            str(FPS),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            str(2 * FPS),
            str(out),
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        for i in range(scene.frames):
            t = i / FPS
            frame = bg.copy()
            placed: list[tuple[Visit, tuple[float, float, float, float], tuple[int, int, int, int]]] = []
            for v in scene.visits:
                if not v.t0_s <= t <= v.t1_s:
                    continue
                img, left, top, box = _placed(chips[v.person], v, t)
                n = img.shape[0]
                x1, y1, x2, y2 = max(0, left), max(0, top), min(WIDTH, left + n), min(HEIGHT, top + n)
                if x2 > x1 and y2 > y1:
                    frame[y1:y2, x1:x2] = img[y1 - top : y2 - top, x1 - left : x2 - left]
                placed.append((v, box, (x1, y1, x2, y2)))
            frame_truth = []
            for k, (v, box, _) in enumerate(placed):
                later = [r for _, _, r in placed[k + 1 :]]
                if 1.0 - _covered(box, later) >= MIN_VISIBLE:
                    frame_truth.append(TruthBox(v.visit_id, v.person, box))
            truth.append(frame_truth)
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        if proc.wait(timeout=120) != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"ffmpeg failed writing {out}: {err}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    return truth


def prepare_chips(
    people: list[str],
    data_dir: Path,
    load: Callable[[Path], np.ndarray],
    locate: Callable[[np.ndarray], np.ndarray],
) -> dict[str, Chip]:
    """A chip per person from their shown photo: ``load`` reads RGB, ``locate`` finds the face box."""
    chips = {}
    for name in people:
        photo = load(data_dir / ROSTER[name].shown)
        chips[name] = make_chip(photo, locate(photo))
    return chips


def truth_at(truth: list[list[TruthBox]], offset_s: float) -> list[TruthBox]:
    """Ground truth of the video frame shown at ``offset_s`` (nearest frame)."""
    i = round(offset_s * FPS)
    return truth[i] if 0 <= i < len(truth) else []


def on_screen(truth: list[list[TruthBox]], person: str) -> list[float]:
    """Times (s) of the video frames where ``person`` is visible."""
    return [i / FPS for i, frame in enumerate(truth) if any(b.person == person for b in frame)]
