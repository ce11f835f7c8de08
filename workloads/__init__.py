"""Workloads: plain-Python Ray/Flyte pipelines (never import pulumi), run locally or on the cluster."""
