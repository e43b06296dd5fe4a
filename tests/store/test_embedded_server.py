"""The embedded Milvus server: loopback-only config, and nothing reachable beyond loopback."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

import milvus
import pytest

from facestream.store.embedded_server import EmbeddedMilvusServer, loopback_only


def test_loopback_only_rewrites_every_address_of_the_packaged_template() -> None:
    template = (Path(milvus.__file__).parent / "data" / "config.yaml.template").read_text()
    out = loopback_only(template)
    ip_lines = [line.strip() for line in out.splitlines() if line.strip().startswith("ip:")]
    assert len(ip_lines) == 7  # rootCoord proxy queryCoord queryNode indexNode dataCoord dataNode
    assert set(ip_lines) == {"ip: 127.0.0.1"}
    assert "localhost" not in out
    assert "address: 127.0.0.1" in out and "endpoints: 127.0.0.1:" in out


def _listeners(netns_proc: str) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket in the network namespace of a /proc dir."""
    found: list[tuple[str, int]] = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(netns_proc) / "net" / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A":  # TCP_LISTEN
                continue
            hex_addr, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(struct.pack("<I", w) for w in struct.unpack(f">{len(raw) // 4}I", raw))
            found.append((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


@pytest.mark.slow
def test_server_is_reachable_only_on_loopback(milvus_server: EmbeddedMilvusServer) -> None:
    pid = milvus_server.pid
    assert pid is not None
    # Milvus runs in its own network namespace whose only interface is lo ...
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    ifaces = [ln.split(":")[0].strip() for ln in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]]
    assert ifaces == ["lo"]
    inner = _listeners(f"/proc/{pid}")
    assert inner, "Milvus should be listening inside its namespace"
    # ... and the only way in from here is the relay, bound to 127.0.0.1.
    outer = _listeners("/proc/self")
    for port in (milvus_server.proxy_port, milvus_server.health_port):
        assert {addr for addr, p in outer if p == port} == {"127.0.0.1"}
