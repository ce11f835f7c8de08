#!/usr/bin/env bash
# On the first control plane: issue a join token valid for TOKEN_TTL seconds and print it as
# <token>/<certificate fingerprint> on standard output (nothing else goes there). microk8s
# generates the token itself (add_token.py, token_hex(16)), so it is on no command line here;
# the fingerprint lets the joining node verify this control plane's certificate.
# Parameters: TOKEN_TTL (seconds). NAOMI_ROOT prefixes file paths for the test harness.
set -euo pipefail
root="${NAOMI_ROOT:-}"
# Joins may be issued while another runs: serialise writes to microk8s' token file.
flock "$root/var/snap/microk8s/common/naomi-add-node.lock" \
  microk8s add-node --token-ttl "$TOKEN_TTL" --format token-check
