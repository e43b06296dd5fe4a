"""Command-line options and logging shared by the Ray Data jobs (gallery indexing, video search)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def add_job_args(ap: argparse.ArgumentParser) -> None:
    """State home, store, analyser pool, device, cluster address and verbosity."""
    ap.add_argument(
        "--home",
        type=Path,
        default=None,
        help="state directory (store, audit); default: FACESTREAM_HOME, else $XDG_DATA_HOME/facestream",
    )
    ap.add_argument("--store-uri", default=None, help="Milvus URI; default: <home>/milvus.db")
    ap.add_argument("--actors", type=int, default=1, help="analyser actors in the pool")
    ap.add_argument("--cpus-per-actor", type=float, default=1.0)
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("-v", "--verbose", action="count", default=0)


def setup_job_logging(verbose: int) -> None:
    """INFO with -v, else WARNING, to stderr (stdout carries the job's summary)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
