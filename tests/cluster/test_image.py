"""cluster/image/Dockerfile and scripts/setup.sh agree (issue 16 item 7): the image installs by
running setup.sh on the Debian and Python setup.sh expects, copies everything setup.sh installs
from, and the cluster configs reference the image by its documented tags. Cheap: text only; the
image itself is built by hand (docs/deploy.md, "Container image")."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "cluster" / "image" / "Dockerfile").read_text()
SETUP = (REPO / "scripts" / "setup.sh").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
REGISTRY = "ghcr.io/example/facestream"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(
        r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
    )
    out = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_the_install_step_is_setup_sh_with_its_python() -> None:
    runs = [args for ins, args in _instructions() if ins == "RUN"]
    setup_runs = [r for r in runs if "scripts/setup.sh" in r]
    assert len(setup_runs) == 1, "exactly one RUN step installs, and it runs scripts/setup.sh"
    default_py = re.search(r"PY=\$\{PYTHON:-(python3\.\d+)\}", SETUP)
    assert default_py, "setup.sh names its default Python"
    py = default_py.group(1)
    assert f"PYTHON={py}" in setup_runs[0]
    # The interpreter setup.sh runs is installed before it, with venv (a fresh Debian lacks it).
    before = runs[: runs.index(setup_runs[0])]
    assert any(py in r and f"{py}-venv" in r and "apt-get install" in r for r in before)
    # setup.sh installs system packages with apt-get and dpkg-query: a Debian base.
    assert "apt-get install" in SETUP and "dpkg-query" in SETUP
    base = next(args for ins, args in _instructions() if ins == "ARG" and args.startswith("BASE="))
    assert "debian" in base and "bookworm" in base


def test_the_image_copies_everything_setup_sh_installs_from() -> None:
    copied = {args.split()[0].rstrip("/") for ins, args in _instructions() if ins == "COPY"}
    # setup.sh hashes these two and pip-installs the project: its packages must all be there.
    assert {"pyproject.toml", "scripts"} <= copied
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in packages} <= copied


def test_both_variants_and_the_documented_tags() -> None:
    assert re.search(r"^ARG VARIANT=cpu$", DOCKERFILE, re.M)
    assert "cpu)" in DOCKERFILE and "cuda)" in DOCKERFILE
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE  # the CPU variant's torch wheels
    version = PYPROJECT["project"]["version"]
    tags = {f"{REGISTRY}:{version}", f"{REGISTRY}:{version}-cuda"}
    for tag in tags:
        assert f"-t {tag} ." in DOCKERFILE, f"the build command for {tag} is documented in the Dockerfile"
    refs: list[str] = []
    kuberay = yaml.safe_load((REPO / "cluster" / "kuberay" / "rayservice.yaml").read_text())
    cluster = kuberay["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        refs += [c["image"] for c in group["template"]["spec"]["containers"]]
    gpu = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gpu-embed")
    assert gpu["template"]["spec"]["containers"][0]["image"].endswith("-cuda")
    ray_up = yaml.safe_load((REPO / "cluster" / "ray-cluster.yaml").read_text())
    refs.append(ray_up["docker"]["image"])
    refs += [t["docker"]["worker_image"] for t in ray_up["available_node_types"].values() if "docker" in t]
    assert ray_up["available_node_types"]["gpu_embed"]["docker"]["worker_image"].endswith("-cuda")
    assert set(refs) == tags, f"image references {sorted(set(refs))} vs the documented tags {sorted(tags)}"
    docs = (REPO / "docs" / "deploy.md").read_text()
    assert all(t in docs for t in tags), "docs/deploy.md names both tags"
