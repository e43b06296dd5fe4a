"""A real RTSP server (gst-rtsp-server) on 127.0.0.1 serving one H.264 MP4 file.

Run with Debian's ``/usr/bin/python3`` (it has ``gi``; the project venv does not)::

    /usr/bin/python3 tests/support/rtsp_server.py --file clip.mp4 --port 0 --mount /cam

Prints ``READY <port>`` on stdout once it listens, then serves until SIGTERM/SIGINT. Each
client gets its own pipeline (not shared), so every connection starts at the beginning of
the file and plays it in real time. This file imports nothing of facestream.
"""

from __future__ import annotations

import argparse
import signal
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True, help="H.264 MP4 to serve")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    ap.add_argument("--mount", default="/cam", help="RTSP path")
    args = ap.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.file.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux name=d d.video_0 ! queue ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        sys.stderr.write("rtsp_server: could not attach (port in use?)\n")
        return 1
    sys.stdout.write(f"READY {server.get_bound_port()}\n")
    sys.stdout.flush()

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
