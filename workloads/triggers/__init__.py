"""Retraining triggers: the Alertmanager webhook receiver and the Flyte launchers behind it."""
