"""Error rates by group and threshold calibration on a labelled pairs file.

A pair belongs to a group when both of its identities are in that group (per the groups
file); impostor pairs whose identities fall in different groups are reported as
``cross-group``. Rates come with Wilson 95% confidence intervals and the counts behind them:
with a few hundred pairs per group, differences smaller than the intervals mean nothing.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facestream.atomic import replacing, write_atomic
from facestream.errors import InvalidParameter
from facestream.evaluation import Pair, rates_at, threshold_at_fmr
from facestream.paths import StateHome

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (0, 1) when n == 0."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def read_groups(path: Path) -> dict[str, str]:
    """TSV/CSV with columns ``identity`` and ``group`` -> {identity: group}."""
    text = path.read_text(encoding="utf-8")
    dialect = "excel-tab" if "\t" in text.splitlines()[0] else "excel"
    rows = list(csv.DictReader(text.splitlines(), dialect=dialect))
    if not rows or not {"identity", "group"} <= set(rows[0]):
        raise InvalidParameter(f"{path}: expected columns 'identity' and 'group'")
    return {r["identity"]: r["group"] for r in rows}


@dataclass(frozen=True)
class GroupRates:
    group: str
    genuine_pairs: int
    impostor_pairs: int
    false_matches: int
    false_non_matches: int
    fmr: float
    fmr_ci95: tuple[float, float]
    fnmr: float
    fnmr_ci95: tuple[float, float]


def group_error_rates(
    pairs: list[Pair], similarities: np.ndarray, groups: dict[str, str], threshold: float
) -> list[GroupRates]:
    """Per-group false-match / false-non-match rates at ``threshold`` (Similarity 0-100)."""
    buckets: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(pairs):
        g1, g2 = groups.get(p.identity1), groups.get(p.identity2)
        if g1 is None or g2 is None:
            continue
        buckets[g1 if g1 == g2 else "cross-group"].append(i)
    out = []
    for g in sorted(buckets):
        idx = np.array(buckets[g])
        same = np.array([pairs[i].same for i in idx])
        sims = similarities[idx]
        fm = int(np.sum(sims[~same] >= threshold))
        fnm = int(np.sum(sims[same] < threshold))
        n_imp, n_gen = int((~same).sum()), int(same.sum())
        out.append(
            GroupRates(
                group=g,
                genuine_pairs=n_gen,
                impostor_pairs=n_imp,
                false_matches=fm,
                false_non_matches=fnm,
                fmr=fm / n_imp if n_imp else float("nan"),
                fmr_ci95=wilson(fm, n_imp),
                fnmr=fnm / n_gen if n_gen else float("nan"),
                fnmr_ci95=wilson(fnm, n_gen),
            )
        )
    return out


def calibrate(similarities: np.ndarray, same: np.ndarray, target_fmr: float) -> dict[str, Any]:
    """The lowest Similarity threshold whose false-match rate on these pairs is <= target."""
    if not 0.0 <= target_fmr < 1.0:
        raise InvalidParameter(f"target false-match rate must be in [0, 1), got {target_fmr}")
    thr = threshold_at_fmr(similarities, same, target_fmr)
    thr = float(min(100.0, max(0.0, thr)))
    fmr, fnmr = rates_at(similarities, same, thr)
    n_imp = int((~same).sum())
    return {
        "target_fmr": target_fmr,
        "threshold": round(thr, 4),
        "fmr": fmr,
        "fnmr": fnmr,
        "impostor_pairs": n_imp,
        "genuine_pairs": int(same.sum()),
        # Fewer impostor pairs than 1/target cannot show the target was met.
        "resolution_limited": n_imp * target_fmr < 1.0,
    }


def rates_json(rates: list[GroupRates]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rates]


def plot_group_rates(rates: list[GroupRates], threshold: float, model: str, path: Path) -> None:
    """Bar chart of FMR and FNMR per group with 95% intervals, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.group for r in rates]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.2 * len(names) + 3), 4), dpi=110)
    for ax, key, label in ((axes[0], "fmr", "false-match rate"), (axes[1], "fnmr", "false-non-match rate")):
        vals = np.array([getattr(r, key) for r in rates], dtype=float)
        ci = np.array([getattr(r, f"{key}_ci95") for r in rates], dtype=float).reshape(-1, 2)
        # Clip: float rounding can put a Wilson bound a hair on the wrong side of 0 or 1.
        err = np.clip(np.vstack([np.nan_to_num(vals - ci[:, 0]), np.nan_to_num(ci[:, 1] - vals)]), 0, None)
        ax.bar(x, np.nan_to_num(vals), yerr=err, capsize=4, color="#3b6ea5")
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(label)
        ax.set_ylim(0, max(0.05, float(np.nanmax(ci[:, 1])) * 1.1 if len(ci) else 1.0))
    fig.suptitle(f"{model} at Similarity {threshold:g} (bars: 95% Wilson intervals)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def error_report_paths(home: Path) -> tuple[Path, Path]:
    """Where ``report errors --save`` keeps the latest report: (JSON, PNG) under ``<home>/reports``.
    The API's ``GetErrorReport`` (the console's Error rates page) reads them."""
    reports = StateHome(home).reports
    return reports / "errors.json", reports / "errors.png"


def _json_safe(obj: Any) -> Any:
    """NaN (a rate over zero pairs) as null: the saved file must be strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def save_error_report(home: Path, out: dict[str, Any], plot: Callable[[Path], None]) -> tuple[Path, Path]:
    """Write the report JSON and its plot atomically (a reader never sees half a file)."""
    json_path, png_path = error_report_paths(home)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(png_path) as tmp_png:
        plot(tmp_png)
    doc = _json_safe({**out, "plot": png_path.name, "generated_at_ms": int(time.time() * 1000)})
    write_atomic(json_path, json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=1))
    return json_path, png_path
