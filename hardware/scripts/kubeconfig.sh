#!/usr/bin/env bash
# On the first control plane: print the admin kubeconfig pointing at API_ADDRESS:16443.
set -euo pipefail
microk8s config | sed -E "s#server: https://[^:]+:16443#server: https://${API_ADDRESS}:16443#"
