#!/usr/bin/env bash
# The whole verification: lint, types, tests (README: "bash scripts/test.sh").
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin
"$py/ruff" format --check .
"$py/ruff" check .
"$py/mypy"
"$py/pytest" -q "$@"
