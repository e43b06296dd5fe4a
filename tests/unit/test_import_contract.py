"""Every kernel module is in the import contracts of .importlinter (fast, no imports).

import-linter's layers cannot nest (``facestream`` would contain ``facestream.cli``), so the
kernel modules are listed one by one in .importlinter; a new module left off those lists would
escape the contract without anyone noticing. This test notices.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "facestream"
#: not kernel: the command line sits on top of every layer
NOT_KERNEL = {"cli"}


def kernel_modules() -> set[str]:
    """``facestream.<name>`` for every module and package directly under facestream/ but the CLI."""
    found = set()
    for p in KERNEL.iterdir():
        if p.name.startswith(("_", ".")):
            continue
        if p.is_file() and p.suffix == ".py":
            found.add(p.stem)
        elif p.is_dir() and (p / "__init__.py").exists():
            found.add(p.name)
    return {f"facestream.{name}" for name in found - NOT_KERNEL}


def contracts() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter", encoding="utf-8")
    return cfg


def _names(value: str) -> set[str]:
    return {n for n in re.split(r"[\s:|]+", value) if n}


def test_kernel_modules_are_found() -> None:
    kernel = kernel_modules()
    assert {"facestream.config", "facestream.errors", "facestream.store"} <= kernel
    assert "facestream.cli" not in kernel


def test_every_kernel_module_is_in_the_kernel_layer() -> None:
    layers = contracts()["importlinter:contract:layers"]["layers"].strip().splitlines()
    kernel_layer = _names(layers[-1])
    missing = sorted(kernel_modules() - kernel_layer)
    assert not missing, f"add to the last (kernel) line of the layers contract in .importlinter: {missing}"
    stale = sorted(kernel_layer - kernel_modules())
    assert not stale, f"listed in the kernel layer of .importlinter but not a kernel module: {stale}"


def test_every_kernel_module_is_kept_below_the_cli() -> None:
    sources = _names(contracts()["importlinter:contract:cli-on-top"]["source_modules"])
    missing = sorted(kernel_modules() - sources)
    assert not missing, f"add to source_modules of the cli-on-top contract in .importlinter: {missing}"
