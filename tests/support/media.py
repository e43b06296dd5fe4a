"""Real media servers on 127.0.0.1 for tests and benchmarks, each stopped by the PID it started.

- :class:`RtspServer`: gst-rtsp-server (``rtsp_server.py`` under Debian's ``/usr/bin/python3``)
- :class:`HlsServer`: ffmpeg cuts a file into HLS segments; a threaded HTTP server serves them
- :class:`MpegTsTcpServer`: ffmpeg listens on TCP and sends MPEG-TS in real time to whoever connects
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

LOOPBACK = "127.0.0.1"
SYSTEM_PYTHON = os.environ.get("FACESTREAM_GI_PYTHON", "/usr/bin/python3")
_RTSP_SCRIPT = Path(__file__).with_name("rtsp_server.py")
FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


class _Managed:
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class RtspServer(_Managed):
    """``rtsp://127.0.0.1:<port>/<mount>`` serving ``path`` from its start to every client."""

    def __init__(self, path: Path, port: int = 0, mount: str = "/cam", start_timeout_s: float = 30.0) -> None:
        self.path = path
        self.port = port
        self.mount = mount
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://{LOOPBACK}:{self.port}{self.mount}"

    def start(self) -> None:
        if not Path(SYSTEM_PYTHON).exists():
            raise RuntimeError(f"{SYSTEM_PYTHON} (with python3-gi) is needed for the RTSP server")
        self.proc = subprocess.Popen(
            [
                SYSTEM_PYTHON,
                str(_RTSP_SCRIPT),
                "--file",
                str(self.path),
                "--port",
                str(self.port),
                "--mount",
                self.mount,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, self.start_timeout_s)
        if not line.startswith("READY "):
            err = (
                self.proc.stderr.read().decode(errors="replace")
                if self.proc.poll() is not None and self.proc.stderr
                else ""
            )
            self.stop()
            raise RuntimeError(f"RTSP server did not start: {line!r} {err}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


def _readline(stream: IO[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            ch = os.read(stream.fileno(), 1)
            if not ch:
                break
            if ch == b"\n":
                return buf.decode(errors="replace")
            buf += ch
    return buf.decode(errors="replace")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class HlsServer(_Managed):
    """HLS of ``path`` (video copied, ~``segment_s`` segments) at ``http://127.0.0.1:<port>/index.m3u8``."""

    def __init__(self, path: Path, workdir: Path, segment_s: float = 1.0) -> None:
        self.path = path
        self.workdir = workdir
        self.segment_s = segment_s
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}/index.m3u8"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                shutil.which("ffmpeg") or "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-i",
                str(self.path),
                "-an",
                "-c:v",
                "copy",
                "-f",
                "hls",
                "-hls_time",
                str(self.segment_s),
                "-hls_list_size",
                "0",
                "-hls_playlist_type",
                "vod",
                str(self.workdir / "index.m3u8"),
            ],
            check=True,
            timeout=120,
        )
        handler = functools.partial(_QuietHandler, directory=str(self.workdir))
        self._httpd = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)


class MpegTsTcpServer(_Managed):
    """ffmpeg listening on ``tcp://127.0.0.1:<port>``; sends ``path`` as MPEG-TS in real time on connect."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"tcp://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("ffmpeg") or "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-i",
                str(self.path),
                "-an",
                "-c:v",
                "copy",
                "-bsf:v",
                "h264_mp4toannexb",
                "-f",
                "mpegts",
                f"tcp://{LOOPBACK}:{self.port}?listen=1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        # ffmpeg opens its listening socket after probing the input; wait for it, without
        # connecting (a probe connection would be the one client it serves).
        while time.monotonic() < deadline:
            if self._listening():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("ffmpeg MPEG-TS TCP server did not start listening")

    def _listening(self) -> bool:
        target = f"0100007F:{self.port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it
        with contextlib.suppress(OSError), open("/proc/net/tcp", encoding="ascii") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == target and fields[3] == "0A":  # 0A = LISTEN
                    return True
        return False

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
