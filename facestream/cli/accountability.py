"""``facestream calibrate`` and ``facestream report errors``: what a threshold means, per model
and per group, measured on a labelled pairs file (img1, img2, same, identity1, identity2[, flag])."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facestream.cli.context import Context, Subcommands, add_common_flags
from facestream.errors import FileNotFound, InvalidParameter

if TYPE_CHECKING:
    from facestream.evaluation import Pair


def _scores(ctx: Context) -> tuple[list[Pair], np.ndarray, np.ndarray]:
    from facestream.evaluation import embed_pair_images, pair_cosines, read_pairs
    from facestream.similarity import cosine_to_similarity

    pairs_path = Path(ctx.args.pairs)
    if not pairs_path.is_file():
        raise FileNotFound(f"{pairs_path}: no such pairs file")
    pairs = read_pairs(pairs_path, include_flagged=ctx.args.include_flagged)
    if not pairs:
        raise InvalidParameter(f"{pairs_path}: no pairs to evaluate")
    root = Path(ctx.args.images_root) if ctx.args.images_root else pairs_path.parent
    emb = embed_pair_images(pairs, root, ctx.analyzer)
    cos = pair_cosines(emb, pairs)
    sims = np.where(
        np.isfinite(cos), cosine_to_similarity(ctx.analyzer.model_name, np.nan_to_num(cos, neginf=-1)), -1.0
    )
    same = np.array([p.same for p in pairs])
    return pairs, sims, same


def cmd_calibrate(ctx: Context) -> None:
    from facestream.fairness import calibrate

    pairs, sims, same = _scores(ctx)
    rows = [calibrate(sims, same, fmr) for fmr in ctx.args.target_fmr]
    out = {"model": ctx.analyzer.model_name, "pairs": len(pairs), "calibration": rows}
    human = "\n".join(
        f"target FMR {r['target_fmr']:g}: threshold {r['threshold']:.2f} (FMR {r['fmr']:.4f}, "
        f"FNMR {r['fnmr']:.4f}{', too few impostor pairs to resolve' if r['resolution_limited'] else ''})"
        for r in rows
    )
    ctx.emit(out, human)


def cmd_report(ctx: Context) -> None:
    from facestream.fairness import (
        group_error_rates,
        plot_group_rates,
        rates_json,
        read_groups,
        save_error_report,
    )
    from facestream.profiles import resolve_profile

    threshold = resolve_profile(ctx.args.profile).threshold(ctx.args.threshold)
    pairs, sims, _ = _scores(ctx)
    groups = read_groups(Path(ctx.args.groups))
    rates = group_error_rates(pairs, sims, groups, threshold)
    if ctx.args.plot:
        plot_group_rates(rates, threshold, ctx.analyzer.model_name, Path(ctx.args.plot))
    out = {
        "model": ctx.analyzer.model_name,
        "threshold": threshold,
        "groups": rates_json(rates),
        "plot": ctx.args.plot,
    }
    human = "\n".join(
        f"{r.group:>14}: FMR {r.fmr:.4f} [{r.fmr_ci95[0]:.4f}, {r.fmr_ci95[1]:.4f}] of {r.impostor_pairs}; "
        f"FNMR {r.fnmr:.4f} [{r.fnmr_ci95[0]:.4f}, {r.fnmr_ci95[1]:.4f}] of {r.genuine_pairs}"
        for r in rates
    )
    if ctx.args.plot:
        human += f"\nplot written to {ctx.args.plot}"
    if ctx.args.save:
        saved, _ = save_error_report(
            ctx.settings.home,
            {**out, "pairs": len(pairs), "pairs_file": Path(ctx.args.pairs).name},
            lambda path: plot_group_rates(rates, threshold, ctx.analyzer.model_name, path),
        )
        out["saved"] = str(saved)
        human += f"\nreport saved to {saved} (served by GetErrorReport)"
    ctx.emit(out, human)


def _pairs_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--pairs", required=True, help="TSV: img1, img2, same, identity1, identity2[, flag]")
    q.add_argument("--images-root", help="directory the image paths are relative to (default: the file's)")
    q.add_argument("--include-flagged", action="store_true", help="also use pairs with a flag (near-dups)")


def register(sub: Subcommands) -> None:
    q: argparse.ArgumentParser = sub.add_parser(
        "calibrate", help="Similarity threshold for a target false-match rate, from labelled pairs"
    )
    _pairs_args(q)
    q.add_argument(
        "--target-fmr", type=float, nargs="+", default=[1e-2, 1e-3], help="target false-match rates"
    )
    add_common_flags(q, store=False)
    q.set_defaults(fn=cmd_calibrate)

    p = sub.add_parser("report", help="accountability reports")
    rsub = p.add_subparsers(dest="report", required=True)
    q = rsub.add_parser("errors", help="false-match / false-non-match rates per group, with 95% intervals")
    _pairs_args(q)
    q.add_argument("--groups", required=True, help="TSV/CSV with columns identity, group")
    q.add_argument("--threshold", type=float, help="Similarity threshold (default: the profile's)")
    q.add_argument("--profile", choices=["general", "public-safety"], help="deployment profile")
    q.add_argument("--plot", help="write a PNG bar chart here")
    q.add_argument(
        "--save",
        action="store_true",
        help="also keep this report (JSON + plot) as the latest under <home>/reports/ for the API/console",
    )
    add_common_flags(q, store=False)
    q.set_defaults(fn=cmd_report)
