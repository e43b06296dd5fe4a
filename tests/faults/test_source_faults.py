"""Camera faults on real components: a stalled RTSP server, a source of garbage bytes, and a
stream whose resolution changes mid-way. Each: the processor reports what happens, does not
crash, and recovers (or finishes) with its matches.

The environment (tests/faults/conftest.py): a local Ray, the batched face deployment, Milvus
Lite behind the store actor, a gallery with Lin-Manuel Miranda.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import FileSource, MpegTsSource, RtspSource
from tests.helpers import scaled
from tests.pipelines.test_streams_e2e import LIN, OPERATOR, _events, _matched, _settings, _wait_for
from tests.support.media import FFMPEG, MpegTsTcpServer, RtspServer, free_port

pytestmark = pytest.mark.slow


def _history(status: dict[str, Any]) -> list[str]:
    return [h["Status"] for h in status["History"]]


def test_rtsp_server_stalls_then_resumes(fault_env: dict[str, Any], clip: Path) -> None:
    """The server keeps the connection open but stops sending (SIGSTOP): RECONNECTING after
    the stall timeout, RUNNING again once it sends (SIGCONT), matches after the stall."""
    home, manager = fault_env["home"], fault_env["manager"]
    with RtspServer(clip) as server:
        assert server.proc is not None
        p = _settings("rtsp-stall", RtspSource(url=server.url), home)
        manager.create(p, OPERATOR, replace=True)
        manager.start(p.name, OPERATOR)
        try:
            _wait_for(lambda: _events(home, p.name), 40, "a first match")
            os.kill(server.proc.pid, signal.SIGSTOP)  # connection open, no packets
            try:
                _wait_for(lambda: manager.describe(p.name)["Status"] == "RECONNECTING", 30, "stall detected")
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            t_resume = time.time()
            _wait_for(lambda: manager.describe(p.name)["Status"] == "RUNNING", 40, "RUNNING after the stall")
            _wait_for(
                lambda: any(
                    e["InputInformation"]["Stream"]["ServerTimestamp"] >= t_resume
                    for e in _events(home, p.name)
                ),
                40,
                "matches after the stall",
            )
        finally:
            status = manager.stop(p.name, OPERATOR)
    seq = _history(status)
    assert "RECONNECTING" in seq and seq.index("RECONNECTING") < len(seq) - 1, seq
    assert "FAILED" not in seq, seq
    assert status["Counters"]["reconnects"] >= 1
    assert LIN in {_matched(e) for e in _events(home, p.name)}


class BytesServer:
    """127.0.0.1 TCP server sending every client ``chunk()`` after ``chunk()`` until stopped."""

    def __init__(self, port: int, chunk: Callable[[], bytes]) -> None:
        self.chunk = chunk
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop_event = threading.Event()
        self.clients = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.clients += 1
            threading.Thread(target=self._spew, args=(conn,), daemon=True).start()

    def _spew(self, conn: socket.socket) -> None:
        with conn:
            while not self.stop_event.is_set():
                try:
                    conn.sendall(self.chunk())
                except OSError:
                    return
                time.sleep(0.005)

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(5)
        self.sock.close()


def garbage_server(port: int) -> BytesServer:
    """Random bytes, 4 KiB at a time."""
    return BytesServer(port, lambda: secrets.token_bytes(4096))


def test_garbage_bytes_source_then_a_real_stream(fault_env: dict[str, Any], clip: Path) -> None:
    """A TCP source that sends random bytes: the processor keeps reconnecting, never crashes,
    answers status and stop; when real MPEG-TS arrives on the same port it finds Lin-Manuel."""
    home, manager = fault_env["home"], fault_env["manager"]
    port = free_port()
    garbage = garbage_server(port)
    p = _settings("garbage-ts", MpegTsSource(url=f"tcp://127.0.0.1:{port}"), home)
    manager.create(p, OPERATOR, replace=True)
    manager.start(p.name, OPERATOR)
    real = None
    try:
        _wait_for(lambda: garbage.clients >= 2, 60, "the processor to retry the garbage source")
        d = manager.describe(p.name)
        assert d["Status"] in ("STARTING", "RECONNECTING", "RUNNING"), d["Status"]
        assert "crashed" not in d["StatusMessage"]
        assert _events(home, p.name) == []
        garbage.close()
        real = MpegTsTcpServer(clip)
        real.port = port
        real.start()
        _wait_for(
            lambda: LIN in {_matched(e) for e in _events(home, p.name)}, 60, "Lin-Manuel from the real stream"
        )
    finally:
        garbage.close()
        status = manager.stop(p.name, OPERATOR)
        if real is not None:
            real.stop()
    seq = _history(status)
    assert "FAILED" not in seq, seq
    assert status["Status"] == "STOPPED"


def _video_that_never_decodes(clip: Path, out: Path) -> bytes:
    """An MPEG-TS whose PMT declares H.264 video and MP2 audio but which carries only the audio.

    Made here with ffmpeg: the clip's video plus a tone, then every TS packet of the video PID
    (ffmpeg's first elementary stream, 0x100) removed. Demuxers open it; no video frame ever
    decodes from it, while bytes keep arriving: what garbage a demuxer half-understands, or a
    camera that lost its video encoder, looks like.
    """
    ts = out / "av.ts"
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip),
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000", "-t", "4",
            "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "mp2",
            "-f", "mpegts", str(ts),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    data = ts.read_bytes()
    packets = [data[i : i + 188] for i in range(0, len(data) - 187, 188)]
    kept = [p for p in packets if ((p[1] & 0x1F) << 8 | p[2]) != 0x100]
    assert 0 < len(kept) < len(packets)
    return b"".join(kept)


def test_source_whose_video_never_decodes_is_retried(
    fault_env: dict[str, Any], clip: Path, tmp_path: Path
) -> None:
    """Bytes flow without pause but no video frame comes out of them: the processor must not sit
    on the connection forever (PyAV's demux of the video stream alone never returns while only
    audio arrives, so neither the stall timeout nor stop would be seen). It reconnects after
    ``frame_timeout_s``, says why, and stops promptly when asked."""
    home, manager = fault_env["home"], fault_env["manager"]
    payload = _video_that_never_decodes(clip, tmp_path)
    chunks = [payload[i : i + 188 * 20] for i in range(0, len(payload), 188 * 20)]
    position = iter(range(10**9))

    def next_chunk() -> bytes:
        return chunks[next(position) % len(chunks)]

    port = free_port()
    server = BytesServer(port, next_chunk)
    p = _settings("audio-only-ts", MpegTsSource(url=f"tcp://127.0.0.1:{port}"), home)
    p = p.model_copy(update={"reconnect": p.reconnect.model_copy(update={"frame_timeout_s": 3.0})})
    manager.create(p, OPERATOR, replace=True)
    manager.start(p.name, OPERATOR)
    try:
        _wait_for(lambda: server.clients >= 3, 90, "the processor to retry the frameless source")
        d = manager.describe(p.name)
        assert d["Status"] in ("STARTING", "RECONNECTING"), d
        assert d["Counters"]["decoded"] == 0, d["Counters"]
        messages = " ".join(h["Message"] for h in d["History"]) + d["StatusMessage"]
        assert "no decodable video frame" in messages, d["History"]
    finally:
        t_stop = time.monotonic()
        status = manager.stop(p.name, OPERATOR)
        stop_s = time.monotonic() - t_stop
        server.close()
    assert status["Status"] == "STOPPED", status
    assert "FAILED" not in _history(status)
    assert stop_s < scaled(30), f"stop took {stop_s:.1f}s"


def _encode_part(src: Path, out: Path, start: float, length: float, size: str, ts_offset: float) -> None:
    subprocess.run(
        [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-ss", str(start), "-t", str(length), "-i", str(src),
            "-an", "-vf", f"scale={size}", "-c:v", "libx264", "-preset", "ultrafast", "-g", "12",
            "-output_ts_offset", str(ts_offset), "-f", "mpegts", str(out),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip


def test_resolution_change_mid_stream(fault_env: dict[str, Any], clip: Path, tmp_path: Path) -> None:
    """First 3 s at 640x360, the rest at 960x540, in one MPEG-TS stream (made here with ffmpeg):
    decoded through the change, Lin-Manuel found before and after it."""
    a, b, ts = tmp_path / "a.ts", tmp_path / "b.ts", tmp_path / "two-sizes.ts"
    _encode_part(clip, a, 0.0, 3.0, "640:360", 0.0)
    _encode_part(clip, b, 3.0, 60.0, "960:540", 3.0)
    ts.write_bytes(a.read_bytes() + b.read_bytes())
    home, manager = fault_env["home"], fault_env["manager"]
    runtime = fault_env["runtime"]
    local = manager.__class__(
        runtime.model_copy(update={"media_dirs": (tmp_path,)}), fault_env["face"], fault_env["store"]
    )
    p = _settings("two-sizes", FileSource(path=ts), home, analysis_fps=4.0)
    local.create(p, OPERATOR, replace=True)
    local.start(p.name, OPERATOR)
    try:
        assert local.wait([p.name], scaled(120)) == [p.name]
        status = local.describe(p.name)
    finally:
        local.stop(p.name, OPERATOR)
        local.delete(p.name, OPERATOR)
    assert "FAILED" not in _history(status), status["History"]
    offsets = [e["InputInformation"]["Stream"]["FrameOffsetInSeconds"] for e in _events(home, p.name)]
    widths = {
        e["FaceSearchResponse"][0]["DetectedFace"]["BoundingBox"]["Width"] for e in _events(home, p.name)
    }
    assert any(o < 3.0 for o in offsets) and any(o > 3.0 for o in offsets), offsets
    assert LIN in {_matched(e) for e in _events(home, p.name)}
    assert widths  # boxes are relative (0..1): comparable across the two sizes
    assert status["Counters"]["analysed"] >= 12, status["Counters"]
