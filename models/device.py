"""Device and precision choice for inference, the same rules for every model.

GPU code paths exist for real deployments; on a machine without CUDA ``auto`` resolves to
the CPU and half precision is refused rather than silently emulated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from facestream.errors import InvalidParameter

log = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "fp16", "bf16"]


@dataclass(frozen=True)
class Placement:
    """Where a model runs and in which precision (autocast dtype, or ``None`` for fp32)."""

    device: torch.device
    autocast_dtype: torch.dtype | None

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
) -> Placement:
    """Resolve a requested device/precision into a :class:`Placement`.

    ``device``: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    ``precision``: ``auto`` picks bf16 on CUDA GPUs that support it, else fp16 on CUDA, and fp32
    on the CPU (bf16 on the CPU is allowed when asked for explicitly: AMX CPUs run it fast).
    ``cuda_available``/``cuda_bf16_supported`` override detection, for tests.
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
    if precision == "auto":
        if dev.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported() if cuda_bf16_supported is None else cuda_bf16_supported
            dtype: torch.dtype | None = torch.bfloat16 if bf16 else torch.float16
        else:
            dtype = None
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
    placement = Placement(device=dev, autocast_dtype=dtype)
    log.info("inference placement: device=%s precision=%s", dev, placement.precision)
    return placement


def image_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> tensor sharing its memory when it can.

    Frames that crossed a Ray boundary are read-only views of the object store; torch does not
    support those, so they are copied once here instead of warning on every use.
    """
    return torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy())
