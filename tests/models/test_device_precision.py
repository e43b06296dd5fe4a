"""Precision ``auto`` on the CPU (issue 16 item 6): bf16 only where the CPU has bf16 units and a
timing at load confirms it is faster; fp32 otherwise. Flags and timings are injected so the
selection is tested for both machine kinds this project runs on (Intel Xeon with AMX, AMD EPYC
without), whichever this run happens to be on; one test loads the real embedder here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facestream.config import AnalyzerConfig, DeviceConfig
from facestream.errors import InvalidParameter
from models import device
from models.device import (
    PrecisionTiming,
    choose_placement,
    confirm_cpu_precision,
    cpu_bf16_units,
    cpu_flags,
    time_precisions,
)

# Flag lines as /proc/cpuinfo shows them (abridged) on the two machine kinds.
XEON_SPR = "fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
EPYC_ZEN3 = "fpu sse2 avx2 fma bmi2 sha_ni vaes"


def _never() -> bool:
    raise AssertionError("torch's check must not be consulted when flags are known")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (XEON_SPR, True),
        (EPYC_ZEN3, False),
        ("avx512f avx512_bf16", True),  # AVX512-BF16 without AMX (Cooper Lake, Zen 4)
        ("avx512f amx_tile amx_bf16", True),
        ("avx512f avx512_vnni", False),  # AVX-512 alone does not run bf16 natively
    ],
)
def test_bf16_units_from_flags(flags: str, expected: bool) -> None:
    assert cpu_bf16_units(frozenset(flags.split()), torch_says=_never) is expected


def test_cpuinfo_parsing_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {EPYC_ZEN3}\n\n")
    assert cpu_flags(info) == frozenset(EPYC_ZEN3.split())
    assert cpu_flags(tmp_path / "absent") is None
    # No /proc/cpuinfo to read: torch's capability check decides.
    monkeypatch.setattr(device, "cpu_flags", lambda: None)
    assert cpu_bf16_units(None, torch_says=lambda: True) is True
    assert cpu_bf16_units(None, torch_says=lambda: False) is False


def test_auto_on_cpu_is_fp32_until_confirmed() -> None:
    xeon = choose_placement("cpu", "auto", cpu_bf16=True)
    epyc = choose_placement("cpu", "auto", cpu_bf16=False)
    assert xeon.precision == "fp32" and xeon.bf16_candidate
    assert epyc.precision == "fp32" and not epyc.bf16_candidate
    # Asked-for precisions are used as asked, never re-timed.
    assert not choose_placement("cpu", "bf16", cpu_bf16=False).bf16_candidate
    assert not choose_placement("cpu", "fp32", cpu_bf16=True).bf16_candidate
    gpu = choose_placement("auto", "auto", cuda_available=True, cuda_bf16_supported=True, cpu_bf16=True)
    assert gpu.precision == "bf16" and not gpu.bf16_candidate  # GPU: as before


@pytest.mark.parametrize(
    ("fp32_s", "bf16_s", "expected"),
    [
        (0.094, 0.052, "bf16"),  # Xeon with AMX: bf16 1.8x faster
        (0.094, 0.688, "fp32"),  # bf16 units present but slower (e.g. throttled): fp32
        (0.050, 0.050, "fp32"),  # a tie keeps fp32
    ],
)
def test_timing_decides(fp32_s: float, bf16_s: float, expected: str) -> None:
    cand = choose_placement("cpu", "auto", cpu_bf16=True)
    decided = confirm_cpu_precision(cand, PrecisionTiming(fp32_s=fp32_s, bf16_s=bf16_s, batch=8))
    assert decided.precision == expected and not decided.bf16_candidate
    # A placement that was no candidate is never changed by a timing.
    epyc = choose_placement("cpu", "auto", cpu_bf16=False)
    assert confirm_cpu_precision(epyc, PrecisionTiming(1.0, 0.1, 8)) is epyc


def test_time_precisions_interleaves_and_takes_medians() -> None:
    calls: list[str] = []
    now = [0.0]
    cost = {"fp32": [9.0, 1.0, 1.0, 1.0], "bf16": [9.0, 2.0, 0.5, 2.0]}

    def run(p: str) -> None:
        calls.append(p)
        now[0] += cost[p][sum(c == p for c in calls) - 1]

    t = time_precisions(run, batch=4, repeats=3, clock=lambda: now[0])  # type: ignore[arg-type]
    assert calls == ["fp32", "bf16"] + ["fp32", "bf16"] * 3  # warm-ups (untimed), then interleaved
    assert (t.fp32_s, t.bf16_s) == (1.0, 2.0)
    assert t.chosen == "fp32" and t.as_dict()["bf16_ms_per_item"] == 500.0
    with pytest.raises(InvalidParameter):
        time_precisions(run, batch=0)  # type: ignore[arg-type]


def test_analyzer_keeps_the_faster_precision_here() -> None:
    """The real thing on this machine: the embedder is loaded in the precision that timed faster
    (whichever that is here), and a CPU without bf16 units is never timed."""
    from models.analyzer import FaceAnalyzer

    a = FaceAnalyzer(AnalyzerConfig(device=DeviceConfig(device="cpu", torch_threads=1)))
    emb = a.embedder
    if cpu_bf16_units():
        t = a.precision_timing
        assert t is not None and a.placement.precision == t.chosen
    else:
        assert a.precision_timing is None and a.placement.precision == "fp32"
    assert not a.placement.bf16_candidate
    out = emb.embed(torch.zeros((2, 3, emb.chip.size, emb.chip.size), dtype=torch.uint8))
    assert out.shape == (2, emb.dim) and out.dtype == torch.float32
