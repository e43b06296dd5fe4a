#!/usr/bin/env bash
# One-step, idempotent setup on a fresh Debian machine: system packages + the project venv.
# Safe to run again: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# --- system packages (ffmpeg for video, a real RTSP server, Prometheus) ---------------------
APT_PKGS=(ffmpeg gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-tools gstreamer1.0-plugins-base
          gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
          prometheus chromium fonts-liberation)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Python venv ----------------------------------------------------------------------------
stamp=.venv/.facestream-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 'setuptools>=68,<81' wheel
# torch/torchvision are pinned in pyproject; pip takes them from this machine's local wheels
# where present (and from the package index elsewhere).
.venv/bin/python -m pip install -q -e '.[dev]'
# facenet-pytorch 2.6.0 pins torch<2.3 and numpy<2 in its metadata but works with current torch:
# install it without its pins. face_recognition (the peer library, for benchmarks) likewise
# pins nothing useful and would pull dlib from source; dlib-bin provides dlib.
.venv/bin/python -m pip install -q --no-deps 'facenet-pytorch==2.6.0' 'face_recognition==1.3.0'
.venv/bin/python -c "import facenet_pytorch, torch, ray, pymilvus, av, dlib, face_recognition_models" 2>/dev/null
echo "$want" > "$stamp"
echo "setup: done" >&2
