"""A local Ray (node IP 127.0.0.1) and Serve (HTTP on a free loopback port) for tests.

Started once per test session and shut down with ``serve.shutdown()`` / ``ray.shutdown()``
(never the ``ray`` CLI's stop command, which would kill every Ray on the machine).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    import ray

    from facestream.localray import LOOPBACK, init_local_ray

    info = init_local_ray(num_cpus=4)
    assert info.address_info["node_ip_address"] == LOOPBACK
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def serve_http_port(ray_local: None) -> Iterator[int]:
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        yield port
    finally:
        serve.shutdown()
