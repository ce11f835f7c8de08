#!/usr/bin/env bash
# Install naomi into .venv from uv.lock, on Linux (x86_64, aarch64) or macOS (arm64).
#
#   bash scripts/install.sh            core: the Pulumi program, render, checks (`pulumi up`)
#   bash scripts/install.sh workloads  core + Ray, MLflow, Flyte, CPU torch (`naomi run`)
#   bash scripts/install.sh all        every extra, the test tools included (CI)
#
# Needs python3.11 with venv (Debian/Ubuntu: apt-get install python3.11-venv; macOS 14+:
# brew install python@3.11) and the package indexes. torch is locked from the PyTorch CPU index
# on Linux and from PyPI on macOS. Where the same torch file already lies on disk
# ($NAOMI_WHEELS, default /opt/wheels: the build machines, which cannot reach that index), it is
# installed from there, after uv checks its sha256 against the lock.
# Written for bash 3.2 (macOS's /bin/bash) as well.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${1:-core}"
case "$target" in
  core) extras=() ;;
  workloads) extras=(--extra workloads) ;;
  all) extras=(--all-extras) ;;
  *)
    echo "usage: bash scripts/install.sh [core|workloads|all]" >&2
    exit 2
    ;;
esac

python="${PYTHON:-python3.11}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "install: $python not found; naomi needs CPython 3.11 (set PYTHON=/path/to/python3.11)" >&2
  exit 2
fi
export UV_COMPILE_BYTECODE=1
[ -x .venv/bin/python ] || "$python" -m venv .venv
# A .venv made by uv has no pip: give it one (uv itself is installed through it).
.venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip --upgrade >/dev/null
.venv/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.8
uv=.venv/bin/uv

wheels="${NAOMI_WHEELS:-/opt/wheels}"
if [ "$target" != core ] && [ "$(uname -s)" = Linux ]; then
  # The lock's torch files for this machine, as `name==version --hash=sha256:...` lines.
  pins="$(.venv/bin/python - "$(uname -m)" <<'EOF'
import sys, tomllib
arch = sys.argv[1]
lock = tomllib.loads(open("uv.lock", "rb").read().decode())
for package in lock["package"]:
    if package["name"] == "torch" and "download.pytorch.org" in package["source"].get("registry", ""):
        hashes = [w["hash"] for w in package["wheels"] if w["url"].endswith(f"_{arch}.whl")]
        if hashes:
            print(f"torch=={package['version']} " + " ".join(f"--hash={h}" for h in hashes))
EOF
)"
  if [ -n "$pins" ] && ls "$wheels"/torch-*+cpu-*_"$(uname -m)".whl >/dev/null 2>&1; then
    printf '%s\n' "$pins" >.venv/torch-from-disk.txt
    "$uv" pip install --quiet --python .venv/bin/python --no-deps --no-index \
      --find-links "$wheels" --require-hashes -r .venv/torch-from-disk.txt
  fi
fi

"$uv" sync --frozen ${extras[@]+"${extras[@]}"}
echo "install: .venv ready ($target); run .venv/bin/naomi --help"
