"""The stack program and the per-environment stack files (Pulumi.<env>.yaml)."""
