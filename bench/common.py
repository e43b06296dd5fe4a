"""Shared benchmark plumbing: data location, timing, result files, tables."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
log = logging.getLogger("bench")
#: load average when this benchmark process started (the machine is shared; see the JSON)
_LOAD_AT_START = os.getloadavg()


def faces_dir() -> Path:
    d = Path(os.environ.get("FACESTREAM_DATA_DIR", REPO.parent / "shared" / "data")) / "faces"
    if not (d / "MANIFEST.tsv").is_file():
        raise SystemExit(f"benchmark data not found at {d}; set FACESTREAM_DATA_DIR")
    return d


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a smaller run that finishes in under a minute")
    return p


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear interpolation; nan when empty."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def cpu_flags() -> list[str]:
    """The CPU's matrix / bf16 features that matter for inference (from /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return sorted(f for f in flags if f.startswith(("amx", "avx512_bf16", "avx512_vnni", "avx512f")))


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu_flags": cpu_flags(),
        "loadavg_start": [round(x, 2) for x in _LOAD_AT_START],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(
    name: str,
    *,
    ratios: dict[str, float],
    targets: dict[str, str | float],
    details: dict[str, Any],
    quick: bool,
    medians: dict[str, float] | None = None,
    command: str | None = None,
) -> Path:
    """Write ``bench/results/<name>.json``.

    ``ratios``: name -> measured ratio (against a baseline measured in the same run);
    ``targets``: ratio name -> goal (a number means "at least this"; a string states it);
    ``medians``: the raw medians (seconds, fps, ...) the ratios come from, units in the names.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": command or " ".join([f"python -m bench.{name}", *sys.argv[1:]]).strip(),
        "quick": quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "ratios": {k: round(v, 4) for k, v in ratios.items()},
        "targets": targets,
        "medians": {k: round(v, 6) for k, v in (medians or {}).items()},
        "details": details,
    }
    out.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    return out


def _json_default(v: Any) -> Any:
    if hasattr(v, "tolist"):  # numpy arrays and scalars
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def met(value: float, target: str | float) -> bool | None:
    """Whether ``value`` meets ``target`` (a number: at least; '>= x' / '<= x'); None if not numeric."""
    if isinstance(target, int | float):
        return value >= target
    m = target.strip().split()
    if len(m) >= 2 and m[0] in (">=", "<=", ">", "<"):
        try:
            goal = float(m[1])
        except ValueError:
            return None
        return {">=": value >= goal, "<=": value <= goal, ">": value > goal, "<": value < goal}[m[0]]
    return None


def print_ratios(ratios: dict[str, float], targets: dict[str, str | float]) -> None:
    """The standard closing table: each ratio, its target, and whether it is met."""
    rows = []
    for k, v in ratios.items():
        t = targets.get(k)
        ok = None if t is None else met(v, t)
        rows.append([k, v, "" if t is None else t, "" if ok is None else ("yes" if ok else "NO")])
    print_table("Ratios", ["ratio", "value", "target", "met"], rows)


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    sys.stdout.write("\n".join(lines) + "\n\n")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ------------------------------------------------------------------------------------------------
# verification against the peer (face_recognition): shared by bench.accuracy and bench.robustness


def peer_largest_face(rgb: Any) -> tuple[Any, Any]:
    """face_recognition 1.3 (dlib HOG, upsample 1; 5-point alignment; ResNet) on an RGB uint8
    array: (128-d encoding, box x1,y1,x2,y2 px) of its largest face, or (None, None)."""
    import face_recognition
    import numpy as np

    locs = face_recognition.face_locations(rgb)
    if not locs:
        return None, None
    top, right, bottom, left = max(locs, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    enc = face_recognition.face_encodings(rgb, [(top, right, bottom, left)])[0]
    return enc, np.array([left, top, right, bottom], np.float32)


def distance_scores(emb: dict[str, Any], pairs: list[Any]) -> Any:
    """(n,) negated Euclidean distance of each pair's encodings (face_recognition's comparison,
    larger = more similar); -inf where either face is missing."""
    import numpy as np

    s = np.full(len(pairs), -np.inf)
    for i, pr in enumerate(pairs):
        a, b = emb.get(pr.img1), emb.get(pr.img2)
        if a is not None and b is not None:
            s[i] = -float(np.linalg.norm(a - b))
    return s


def verification_metrics(scores: Any, same: Any) -> dict[str, float]:
    """10-fold accuracy (a pair without a face judged "different"), its std, ROC AUC,
    TAR@FAR=1e-3 (a genuine pair without a face is rejected) and the count of such pairs."""
    import numpy as np

    from facestream.evaluation import kfold_accuracy, roc_auc, tar_at_far

    acc, std = kfold_accuracy(scores, same)
    return {
        "accuracy_10fold": acc,
        "accuracy_std": std,
        "roc_auc": roc_auc(scores, same),
        "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3),
        "missing_pairs": int(np.sum(~np.isfinite(scores))),
    }
