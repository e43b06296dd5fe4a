"""A real Milvus standalone server on this machine, for tests and benchmarks of the server path.

Wraps the PyPI ``milvus`` package (2.3.5), which ships the ``milvus`` binary and a config
template. We reuse its template engine and binary unpacking but start, watch and stop the
process ourselves because:

- the template leaves every component's ``ip:`` empty, and Milvus then binds (and advertises
  through etcd) the first non-loopback address of the host; we rewrite every ``ip:`` and every
  ``localhost`` address to ``127.0.0.1`` so nothing listens beyond the loopback interface;
- setting ``ip:`` only changes the address Milvus *advertises*: 2.3.5's gRPC servers still
  listen on ``*:<port>``, and its embedded etcd on fixed ports 2379/2380. So by default the
  process runs in a private network namespace that holds only its own loopback interface, and
  a small relay in this process forwards ``127.0.0.1:<port>`` on the host loopback to the proxy
  and health ports inside it. Nothing of Milvus is then reachable from another host, and two
  servers never collide on etcd's fixed ports;
- the package's ``MilvusServer.stop`` kills the process after one second, and its ``start``
  ``chdir``s the whole test process; we stop by the PID we started, give it time to exit
  cleanly, and never touch the working directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from facestream.errors import StoreUnavailable

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

_IP_LINE = re.compile(r"^(?P<indent>\s*)ip:.*$", re.MULTILINE)


def loopback_only(config_text: str) -> str:
    """Rewrite a generated ``milvus.yaml`` so every listen/advertise address is 127.0.0.1.

    ``ip:`` lines (rootCoord, proxy, queryCoord, queryNode, indexNode, dataCoord, dataNode) are
    set explicitly; ``localhost`` (etcd endpoints, minio/pulsar addresses, indexCoord) becomes
    the literal address so a host whose ``localhost`` resolves to ``::1`` first behaves the same.
    """
    text = _IP_LINE.sub(lambda m: f"{m.group('indent')}ip: {LOOPBACK}", config_text)
    return re.sub(r"\blocalhost\b", LOOPBACK, text)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


_CLONE_NEWNET = 0x40000000
_SIOCSIFFLAGS = 0x8914
_IFF_UP, _IFF_LOOPBACK, _IFF_RUNNING = 0x1, 0x8, 0x40


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _enter_private_netns() -> None:
    """``preexec_fn``: move the child into a new network namespace and bring its ``lo`` up.

    A fresh namespace has only a loopback interface, and it starts down.
    """
    if _libc().unshare(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", _IFF_UP | _IFF_LOOPBACK | _IFF_RUNNING)
        fcntl.ioctl(sock, _SIOCSIFFLAGS, ifreq)


class _NetnsRelay:
    """TCP relay: ``127.0.0.1:<port>`` here -> ``127.0.0.1:<target_port>`` in another netns.

    Each connection gets a thread that joins the target namespace with ``setns`` (which
    affects only the calling thread) before dialling, so the rest of this process stays in its
    own namespace. Bytes are copied in both directions until either side closes.
    """

    def __init__(self, netns_fd: int, target_port: int, name: str) -> None:
        self._netns_fd = netns_fd
        self._target_port = target_port
        self._name = name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server((LOOPBACK, 0))
        # accept() wakes up regularly so the loop notices the stop event.
        self._listener.settimeout(0.5)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name=f"milvus-relay-{name}", daemon=True)
        self._thread.start()

    def retarget(self, netns_fd: int) -> None:
        """New connections go to the same port in another namespace (the restarted server's)."""
        self._netns_fd = netns_fd

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            client.settimeout(None)
            self._track(client)
            threading.Thread(
                target=self._serve, args=(client,), name=f"milvus-relay-{self._name}-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            if _libc().setns(self._netns_fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                logger.warning("relay %s: setns failed: %s", self._name, os.strerror(err))
                return
            try:
                upstream = socket.create_connection((LOOPBACK, self._target_port), timeout=5)
            except OSError as exc:
                logger.debug("relay %s: dial %s failed: %s", self._name, self._target_port, exc)
                return
            upstream.settimeout(None)
            self._track(upstream)
            back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
            back.start()
            self._pump(client, upstream)
            back.join()
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._sockets.discard(sock)
                    sock.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # Half-close so the peer sees EOF while the other direction drains.
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            socks = list(self._sockets)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


class EmbeddedMilvusServer:
    """One Milvus 2.3.5 standalone process with its own data directory.

    Usage::

        with EmbeddedMilvusServer(tmp_path / "milvus") as server:
            store = MilvusFaceStore(StoreConfig(uri=server.uri))

    ``uri`` is ``http://127.0.0.1:<proxy port>``; ``health_port`` serves ``/healthz`` and metrics.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        start_timeout_s: float = 180.0,
        isolate_network: bool = True,
        time_tick_ms: int = 50,
    ) -> None:
        """``isolate_network=False`` skips the private network namespace (needs no
        CAP_SYS_ADMIN) but then Milvus's gRPC ports listen on every interface."""
        self.data_dir = Path(data_dir).absolute()
        self.start_timeout_s = start_timeout_s
        self.isolate_network = isolate_network
        self.time_tick_ms = time_tick_ms
        #: ports as seen from this process (relay ports when isolated)
        self.proxy_port: int | None = None
        self.health_port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_files: list[IO[bytes]] = []
        self._netns_fd: int | None = None
        self._relays: list[_NetnsRelay] = []
        self._inner_ports: tuple[int, int] = (0, 0)  # proxy, health: inside the server's netns

    @property
    def uri(self) -> str:
        if self.proxy_port is None:
            raise StoreUnavailable(f"embedded Milvus server in {self.data_dir} is not started")
        return f"http://{LOOPBACK}:{self.proxy_port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def config_path(self) -> Path:
        return self.data_dir / "configs" / "milvus.yaml"

    def _write_config(self) -> Any:
        # Imported here: the package unpacks nothing at import time, but it is a dev-only
        # dependency and the library must import without it.
        import milvus

        config = milvus.MilvusServerConfig(data_dir=str(self.data_dir))
        # Free ports chosen by the kernel rather than the package's probe from fixed defaults,
        # so two servers (or a developer's own Milvus on 19530) never collide.
        taken: set[int] = set()
        for key in [k for k in config.configurable_items if k.endswith("_port")]:
            port = _free_port()
            while port in taken:
                port = _free_port()
            taken.add(port)
            config.update(**{key: port})
        config.resolve()
        text = loopback_only(self.config_path.read_text(encoding="utf-8"))
        # Strong-consistency reads wait for the next time tick; 200 ms per read makes a test
        # suite crawl, and nothing here needs the lower tick rate.
        text = re.sub(
            r"^(\s*timeTickInterval:) *200\b", rf"\g<1> {self.time_tick_ms}", text, flags=re.MULTILINE
        )
        self.config_path.write_text(text)
        milvus._initialize_data_files(str(self.data_dir))
        return config

    def start(self) -> str:
        """Start the server and block until ``/healthz`` says OK; returns :attr:`uri`.

        Raises :class:`StoreUnavailable` if it exits early or is not healthy within
        ``start_timeout_s`` seconds (the process is stopped first).
        """
        if self._proc is not None:
            return self.uri
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._inner_ports = (int(config.get("proxy_port")), _free_port())
        self._spawn()
        try:
            if self.isolate_network:
                assert self._netns_fd is not None
                self._relays = [
                    _NetnsRelay(self._netns_fd, self._inner_ports[0], "proxy"),
                    _NetnsRelay(self._netns_fd, self._inner_ports[1], "health"),
                ]
                self.proxy_port, self.health_port = (r.port for r in self._relays)
            else:
                self.proxy_port, self.health_port = self._inner_ports
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self.uri

    def restart(self, *, down_s: float = 0.0, timeout_s: float = 10.0) -> None:
        """Stop the server process, wait ``down_s`` seconds, start it again on the same data.

        Clients keep their address: the ports seen from this process are the relays', which
        stay open (connections fail while the server is down, as with a real restart). Needs
        the isolated network (without it Milvus's own ports would have to be free again).
        """
        if self._proc is None or not self.isolate_network:
            raise StoreUnavailable("restart needs a running server started with isolate_network=True")
        self._terminate(timeout_s)
        time.sleep(down_s)
        old_fd = self._netns_fd
        self._spawn()
        assert self._netns_fd is not None
        for relay in self._relays:
            relay.retarget(self._netns_fd)
        if old_fd is not None:
            os.close(old_fd)
        self._wait_healthy()

    def _spawn(self) -> None:
        """Start the binary on the written config (its log files appended); sets the netns fd."""
        inner_health_port = self._inner_ports[1]  # the proxy's port is in the config file
        exe = self.data_dir / "bin" / "milvus"
        env = os.environ.copy()
        env.update(
            {
                "DEPLOY_MODE": "STANDALONE",
                "METRICS_PORT": str(inner_health_port),
                "MILVUS_RUN_DIR": str(self.data_dir / "run"),
                "LD_LIBRARY_PATH": ":".join([str(exe.parent), env.get("LD_LIBRARY_PATH", "")]),
            }
        )
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for f in self._log_files:
            f.close()
        out = (logs / "milvus-stdout.log").open("ab")
        err = (logs / "milvus-stderr.log").open("ab")
        self._log_files = [out, err]
        logger.info(
            "starting embedded Milvus in %s (isolated network: %s)", self.data_dir, self.isolate_network
        )
        try:
            # cwd matters: the binary resolves configs/ relative to its working directory.
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
                [str(exe), "run", "standalone"],
                cwd=self.data_dir,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_enter_private_netns if self.isolate_network else None,  # noqa: PLW1509
            )
        except (OSError, subprocess.SubprocessError) as exc:
            self.stop()
            raise StoreUnavailable(
                f"could not start embedded Milvus in {self.data_dir}: {exc}; a private network "
                "namespace needs CAP_SYS_ADMIN (pass isolate_network=False to run without one)"
            ) from exc
        if self.isolate_network:
            self._netns_fd = os.open(f"/proc/{self._proc.pid}/ns/net", os.O_RDONLY)

    def _wait_healthy(self) -> None:
        url = f"http://{LOOPBACK}:{self.health_port}/healthz"
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise StoreUnavailable(
                    f"embedded Milvus exited with code {code} before becoming healthy; "
                    f"see {self.data_dir / 'logs'}"
                )
            try:
                # No proxies: an http_proxy in the environment must not see loopback traffic.
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with opener.open(url, timeout=2) as resp:
                    if b"OK" in resp.read():
                        logger.info("embedded Milvus healthy at %s (pid %s)", self.uri, self.pid)
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise StoreUnavailable(
            f"embedded Milvus at {self.uri} not healthy within {self.start_timeout_s}s; "
            f"see {self.data_dir / 'logs'}"
        )

    def _terminate(self, timeout_s: float) -> None:
        """SIGTERM the process we started, then SIGKILL after ``timeout_s`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            logger.info("stopping embedded Milvus pid %s", proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("embedded Milvus pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait(timeout=10)

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stop the process we started (SIGTERM, then SIGKILL after ``timeout_s`` seconds)."""
        try:
            self._terminate(timeout_s)
        finally:
            for relay in self._relays:
                relay.close()
            self._relays = []
            if self._netns_fd is not None:
                os.close(self._netns_fd)
                self._netns_fd = None
            for f in self._log_files:
                f.close()
            self._log_files = []

    def cleanup(self) -> None:
        """Remove the data directory (server must be stopped)."""
        if self._proc is not None:
            raise StoreUnavailable(f"embedded Milvus pid {self.pid} is still running")
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedMilvusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
