"""Device and precision choice for inference, the same rules for every model.

GPU code paths exist for real deployments; on a machine without CUDA ``auto`` resolves to
the CPU and half precision is refused rather than silently emulated.

Precision ``auto`` on the CPU must never be slower than fp32: bf16 autocast measured 1.8x
faster than fp32 on a Xeon with AMX / AVX512-BF16 and 7x *slower* on an AMD EPYC without them
(emulated). So ``auto`` makes bf16 a *candidate* only where the CPU has those units
(:func:`cpu_bf16_units`), and whoever loads the model confirms it with a one-time timing of
both precisions on a small batch (:func:`confirm_cpu_precision`), keeping the faster.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from facestream.errors import InvalidParameter

log = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "fp16", "bf16"]

#: /proc/cpuinfo flags of CPU units that run bf16 natively (Intel AMX, AVX512-BF16; AMD Zen 4+
#: has avx512_bf16 too). Without one of them bf16 autocast is emulated and far slower than fp32.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@dataclass(frozen=True)
class Placement:
    """Where a model runs and in which precision (autocast dtype, or ``None`` for fp32)."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    #: precision ``auto`` on a CPU with bf16 units: fp32 until a timing confirms bf16 is faster
    #: (:func:`confirm_cpu_precision`); False once decided or when a precision was asked for.
    bf16_candidate: bool = False

    @property
    def precision(self) -> Precision:
        if self.autocast_dtype is torch.float16:
            return "fp16"
        if self.autocast_dtype is torch.bfloat16:
            return "bf16"
        return "fp32"


def choose_placement(
    device: str = "auto",
    precision: Precision | Literal["auto"] = "auto",
    *,
    cuda_available: bool | None = None,
    cuda_bf16_supported: bool | None = None,
    cpu_bf16: bool | None = None,
) -> Placement:
    """Resolve a requested device/precision into a :class:`Placement`.

    ``device``: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    ``precision``: ``auto`` picks bf16 on CUDA GPUs that support it, else fp16 on CUDA, and fp32
    on the CPU, marked ``bf16_candidate`` when the CPU has bf16 units (the model's loader then
    times both: :func:`confirm_cpu_precision`). bf16 on the CPU is used as asked when asked for.
    ``cuda_available``/``cuda_bf16_supported``/``cpu_bf16`` override detection, for tests.
    """
    has_cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if device == "auto":
        dev = torch.device("cuda:0" if has_cuda else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise InvalidParameter(
                f"device {device!r} is not a torch device; use auto, cpu or cuda[:N]"
            ) from None
        if dev.type not in ("cpu", "cuda"):
            raise InvalidParameter(f"device {device!r}: only cpu and cuda are supported")
        if dev.type == "cuda" and not has_cuda:
            raise InvalidParameter(f"device {device!r} was asked for but no CUDA GPU is available")
    candidate = False
    if precision == "auto":
        if dev.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported() if cuda_bf16_supported is None else cuda_bf16_supported
            dtype: torch.dtype | None = torch.bfloat16 if bf16 else torch.float16
        else:
            dtype = None
            candidate = cpu_bf16_units() if cpu_bf16 is None else cpu_bf16
    elif precision == "fp32":
        dtype = None
    elif precision == "fp16":
        if dev.type != "cuda":
            raise InvalidParameter("precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        dtype = torch.float16
    elif precision == "bf16":
        dtype = torch.bfloat16
    else:
        raise InvalidParameter(f"precision {precision!r}: expected auto, fp32, fp16 or bf16")
    placement = Placement(device=dev, autocast_dtype=dtype, bf16_candidate=candidate)
    log.info(
        "inference placement: device=%s precision=%s%s",
        dev,
        placement.precision,
        " (bf16 candidate: the CPU has bf16 units; timing decides)" if candidate else "",
    )
    return placement


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU feature flags of the first processor in ``cpuinfo`` (Linux), None if unreadable."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            return frozenset(value.split())
    return None


def _torch_cpu_bf16() -> bool:
    """torch's own CPU capability check (used where /proc/cpuinfo is not there)."""
    import torch.cpu

    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def cpu_bf16_units(
    flags: Collection[str] | None = None, torch_says: Callable[[], bool] = _torch_cpu_bf16
) -> bool:
    """True when the CPU runs bf16 natively: AMX or AVX512-BF16 among ``flags`` (default: read
    from /proc/cpuinfo); without flags to read, torch's capability check decides."""
    if flags is None:
        flags = cpu_flags()
    if flags is None:
        return torch_says()
    return not BF16_CPU_FLAGS.isdisjoint(flags)


@dataclass(frozen=True)
class PrecisionTiming:
    """The one-time timing behind a confirmed CPU precision: median seconds per batch."""

    fp32_s: float
    bf16_s: float
    batch: int

    @property
    def chosen(self) -> Precision:
        return "bf16" if self.bf16_s < self.fp32_s else "fp32"

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "fp32_ms_per_item": 1000 * self.fp32_s / self.batch,
            "bf16_ms_per_item": 1000 * self.bf16_s / self.batch,
            "batch": self.batch,
            "chosen": self.chosen,
        }


def time_precisions(
    run: Callable[[Precision], object],
    *,
    batch: int,
    repeats: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> PrecisionTiming:
    """Time ``run("fp32")`` against ``run("bf16")``: one warm-up call each (oneDNN builds its
    kernels on first use), then ``repeats`` interleaved calls each; medians. ``run`` processes
    one batch of ``batch`` items in the given precision."""
    if repeats < 1 or batch < 1:
        raise InvalidParameter(f"repeats and batch must be >= 1, got {repeats} and {batch}")
    run("fp32")
    run("bf16")
    times: dict[Precision, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        for p in ("fp32", "bf16"):
            t0 = clock()
            run(p)
            times[p].append(clock() - t0)
    return PrecisionTiming(
        fp32_s=statistics.median(times["fp32"]), bf16_s=statistics.median(times["bf16"]), batch=batch
    )


def confirm_cpu_precision(placement: Placement, timing: PrecisionTiming) -> Placement:
    """The decided placement of a ``bf16_candidate``: bf16 only if it timed faster than fp32."""
    if not placement.bf16_candidate:
        return placement
    dtype = torch.bfloat16 if timing.chosen == "bf16" else None
    decided = replace(placement, autocast_dtype=dtype, bf16_candidate=False)
    log.info(
        "precision auto on %s: fp32 %.2f ms, bf16 %.2f ms per item (batch %d): using %s",
        placement.device,
        1000 * timing.fp32_s / timing.batch,
        1000 * timing.bf16_s / timing.batch,
        timing.batch,
        decided.precision,
    )
    return decided


def image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> tensor sharing its memory when it can.

    Frames that crossed a Ray boundary are read-only views of the object store; torch does not
    support those, so they are copied once here instead of warning on every use.
    """
    return torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy())
