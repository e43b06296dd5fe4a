"""A multi-node Ray cluster on this machine, every node on 127.0.0.1, started with ``ray start``.

Each node is one ``ray start --block`` process (head or worker) in the foreground, so every Ray
process of the cluster (GCS, raylet, dashboard, agents, workers) is a descendant of a process
this helper started. :meth:`LocalRayCluster.stop` signals exactly those PIDs — never the ``ray`` CLI's stop,
which would stop every Ray on the machine.

Every port is chosen free on 127.0.0.1 (the defaults, e.g. the dashboard agent's 52365, may be
taken by another Ray here). Token authentication (on by default in Ray 2.60) uses a token file
of this cluster only: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` in :attr:`env`, which
every client (driver, ``ray job submit``) must use too.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from facestream.localray import LOOPBACK, loopback_env
from tests.helpers import scaled
from tests.ray_fixtures import free_port

log = logging.getLogger(__name__)

RAY = str(Path(sys.executable).with_name("ray"))
#: ``ray start`` for a worker node that stays on loopback. With RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
#: (what keeps every Ray server on 127.0.0.1, see facestream/localray.py) the CLI refuses to
#: start a worker node, and with =1 it turns --node-ip-address=127.0.0.1 into the machine's
#: address. So the CLI process alone lets the worker join and keeps the address as given; the
#: processes it starts still get =0 from the environment.
WORKER_START = (
    "import sys\n"
    "from ray._private import ray_constants, services\n"
    "ray_constants.ENABLE_RAY_CLUSTER = True\n"
    "services.resolve_ip_for_localhost = lambda host: host\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv = ['ray', *sys.argv[1:]]\n"
    "main()\n"
)


@dataclass
class _Node:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    pids: set[int] = field(default_factory=set)


class LocalRayCluster:
    """``ray start`` a head (with dashboard on 127.0.0.1) and ``workers`` worker nodes."""

    def __init__(self, *, head_cpus: int = 1, worker_cpus: tuple[int, ...] = (1, 1)) -> None:
        self.head_cpus = head_cpus
        self.worker_cpus = worker_cpus
        # Short: Ray's unix socket paths live under it (108-byte limit).
        self.root = Path(tempfile.mkdtemp(prefix="fsray-", dir="/tmp"))
        self.token_path = self.root / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.metrics_ports: list[int] = []
        self.nodes: list[_Node] = []
        self.stopped_pids: set[int] = set()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for every process that talks to this cluster (loopback + its token)."""
        env = loopback_env()
        env.pop("RAY_ADDRESS", None)
        env.update(
            {
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.token_path),
                "RAY_USAGE_STATS_ENABLED": "0",
            }
        )
        env.pop("RAY_AUTH_TOKEN", None)
        return env

    def _node_args(self, cpus: int) -> list[str]:
        metrics_port = free_port()
        self.metrics_ports.append(metrics_port)
        return [
            "--node-ip-address",
            LOOPBACK,
            f"--num-cpus={cpus}",
            f"--metrics-export-port={metrics_port}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            "--object-store-memory=200000000",
            "--disable-usage-stats",
            "--block",
        ]

    def _spawn(self, name: str, args: list[str], *, worker: bool = False) -> _Node:
        log_path = self.root / f"{name}.log"
        cmd = [sys.executable, "-c", WORKER_START, "start", *args] if worker else [RAY, "start", *args]
        with log_path.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=os.getcwd())
        node = _Node(name, proc, log_path, {proc.pid})
        self.nodes.append(node)
        return node

    def start(self, timeout_s: float = 90.0) -> LocalRayCluster:
        try:
            self._spawn(
                "head",
                [
                    "--head",
                    f"--port={self.gcs_port}",
                    f"--temp-dir={self.root / 'ray'}",
                    "--include-dashboard=true",
                    f"--dashboard-host={LOOPBACK}",
                    f"--dashboard-port={self.dashboard_port}",
                    f"--ray-client-server-port={free_port()}",
                    *self._node_args(self.head_cpus),
                ],
            )
            self._wait_for_dashboard(timeout_s)
            # One at a time: raylets registering at once time out on a small, busy machine.
            for i, cpus in enumerate(self.worker_cpus):
                self._spawn(f"worker{i}", [f"--address={self.address}", *self._node_args(cpus)], worker=True)
                self._wait_for_nodes(2 + i, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for n in self.nodes:
            if n.proc.poll() is not None:
                raise RuntimeError(f"ray start ({n.name}) exited: {n.log_path.read_text()[-3000:]}")

    def _wait_for_dashboard(self, timeout_s: float) -> None:
        deadline = time.monotonic() + scaled(timeout_s)
        while time.monotonic() < deadline:
            self._check_alive()
            self._remember_pids()
            try:
                # Answers 401 without the token once it is up: up is all we ask here.
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"Ray dashboard not up after {timeout_s}s")

    def _wait_for_nodes(self, count: int, timeout_s: float) -> None:
        """``ray status`` (an authenticated GCS client) until ``count`` nodes are alive."""
        deadline = time.monotonic() + scaled(timeout_s)
        out = ""
        while time.monotonic() < deadline:
            self._check_alive()
            self._remember_pids()
            res = subprocess.run(
                [RAY, "status", f"--address={self.address}"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            out = res.stdout
            active = out.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in out else ""
            if active.count("node_") >= count:
                return
            time.sleep(1.0)
        raise TimeoutError(f"{count} Ray nodes not up after {timeout_s}s: {out[-2000:]}")

    def _remember_pids(self) -> None:
        """Record every descendant of our ``ray start`` processes (they outlive their parents)."""
        parents = _parents()
        for n in self.nodes:
            n.pids.update(_descendants(n.proc.pid, parents))

    def pids(self) -> set[int]:
        self._remember_pids()
        return {p for n in self.nodes for p in n.pids}

    def running_pids(self) -> list[int]:
        """Processes of this cluster still running (not zombies)."""
        return [p for p in self.pids() if _running(p)]

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL, every process this cluster started; workers first, head last."""
        for n in reversed(self.nodes):
            self._remember_pids()
            pids = sorted(n.pids)
            _signal(pids, signal.SIGTERM)
            alive = _wait_gone(pids, timeout_s / 2)
            if alive:
                _signal(alive, signal.SIGKILL)
                _wait_gone(alive, timeout_s / 2)
            try:
                n.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("ray start (%s) pid %s did not exit", n.name, n.proc.pid)
        self.stopped_pids = self.pids()
        left = self.running_pids()
        if left:
            log.warning("Ray processes still alive after stop: %s", left)
        self.nodes.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc)."""
    out: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        out[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def _descendants(pid: int, parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait until none of ``pids`` runs; the ones still running at the deadline."""
    deadline = time.monotonic() + scaled(timeout_s)
    alive = [p for p in pids if _running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _running(p)]
    return alive
