"""Platform components: one typed ComponentResource per platform component.

Components never read stack config or kubeconfig; the stack program hands them typed args
and a Kubernetes provider. Chart and image versions live in `infra.versions`.
"""
