#!/usr/bin/env bash
# On the first control plane: print the admin kubeconfig with its server set to API_SERVER
# (https://<apiEndpoint or first control plane>:16443; IPv6 addresses in brackets). The whole
# value is replaced, whatever address form microk8s wrote.
set -euo pipefail
microk8s config | sed -E "s#^([[:space:]]*server:[[:space:]]*).*#\1${API_SERVER}#"
