#!/usr/bin/env bash
# The whole verification: lint, types, tests (README: "bash scripts/test.sh").
# Tests run in a loopback-only network namespace when possible (`unshare -n`, as root in CI):
# Ray listens on every interface, and every server a test starts stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
py="$PWD/.venv/bin"
"$py/ruff" format --check .
"$py/ruff" check .
"$py/mypy"

# The core-only install test builds its venv offline from uv's cache: keep the real cache
# although HOME becomes a scratch folder below.
export UV_CACHE_DIR="${UV_CACHE_DIR:-$("$py/uv" cache dir)}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/home" "$scratch/tmp" "$scratch/ray"
export HOME="$scratch/home" TMPDIR="$scratch/tmp" RAY_TMPDIR="$scratch/ray"
export RAY_USAGE_STATS_ENABLED=0 MLFLOW_DISABLE_TELEMETRY=true
# The provisioning tests' Debian userland (mmdebstrap, cached): built here, before the tests
# enter their loopback-only network namespace, since it needs Debian's mirror.
"$py/python" -c 'from tests.userland import unavailable, userland; unavailable() or userland()' \
  || echo "test.sh: could not build the Debian userland; its tests will say why" >&2
if unshare -n true 2>/dev/null && command -v ip >/dev/null 2>&1; then
  unshare -n bash -c 'ip link set lo up && exec "$@"' bash "$py/pytest" -q --durations=25 "$@"
else
  echo "test.sh: no 'unshare -n' here; tests that start Ray are skipped (they fail under CI=true)" >&2
  "$py/pytest" -q --durations=25 "$@"
fi
