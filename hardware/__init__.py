"""Node provisioning: microk8s on x86 machines and Raspberry Pis over SSH (pulumi-command)."""
