"""Test infrastructure: real media servers (RTSP, HLS, MPEG-TS/TCP) on 127.0.0.1."""
