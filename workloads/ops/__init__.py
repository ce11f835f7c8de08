"""Operations scripts the platform's Jobs run (mounted from a ConfigMap; each file stands alone).

`mlflow_users` reconciles MLflow's admin and scoped users, `object_store` the buckets and
per-consumer users, `backup` uploads, prunes, lists and fetches Postgres dumps, `metrics_server`
serves MLflow's Prometheus metrics to a metrics-only login. Each imports only the standard library
and what the `naomi-mlflow` image installs (mlflow, minio, prometheus_client).
"""
