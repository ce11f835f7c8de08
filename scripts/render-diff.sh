#!/usr/bin/env bash
# Object-level render diff of every example stack between a base revision and the working tree,
# as Markdown on stdout (the pull-request comment). Offline: no cluster, no Pulumi backend.
#   bash scripts/render-diff.sh origin/main > render-diff.md
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:?usage: render-diff.sh <base git revision>}"
naomi="${NAOMI:-$PWD/.venv/bin/naomi}"
out="${RENDER_OUT:-out}"
echo "## naomi render diff (${base} -> head)"
echo
for file in stacks/Pulumi.*.yaml; do
  stack="$(basename "$file" .yaml)"
  stack="${stack#Pulumi.}"
  "$naomi" render --stack "$stack" --out "$out/$stack" --diff "$base"
done
