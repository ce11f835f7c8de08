"""What naomi's Ray Serve applications share: options from RayService args, batch splitting, and
running an application on the local Ray on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from workloads.common.serving import free_port

# Per-request access logs cost ~1 ms of a 2-core box per request; errors are still logged.
QUIET_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


def deployment_options(args: dict[str, Any]) -> dict[str, Any]:
    """Ray Serve options from RayService args (model_uri, num_replicas, max_replicas, num_cpus,
    tracking_uri); unknown keys refused."""
    unknown = set(args) - {"model_uri", "num_replicas", "max_replicas", "num_cpus", "tracking_uri"}
    if unknown:
        raise ValueError(f"unknown serving args: {', '.join(sorted(unknown))}")
    actor: dict[str, Any] = {"num_cpus": float(args.get("num_cpus", 0.5))}
    if "tracking_uri" in args:
        actor["runtime_env"] = {"env_vars": {"MLFLOW_TRACKING_URI": str(args["tracking_uri"])}}
    options: dict[str, Any] = {"ray_actor_options": actor, "logging_config": QUIET_LOGGING}
    if "max_replicas" in args:
        options["autoscaling_config"] = {
            "min_replicas": int(args.get("num_replicas", 1)),
            "max_replicas": int(args["max_replicas"]),
            "target_ongoing_requests": 8,
        }
    else:
        options["num_replicas"] = int(args.get("num_replicas", 1))
    return options


def run_batch(predict: Callable[[np.ndarray], np.ndarray], requests: list[np.ndarray]) -> list[np.ndarray]:
    """One forward pass over the stacked requests of a `@serve.batch`; each caller gets its rows."""
    sizes = [len(rows) for rows in requests]
    return list(np.split(predict(np.concatenate(requests)), np.cumsum(sizes)[:-1]))


@contextmanager
def serve_on_loopback(application: Any, name: str) -> Iterator[str]:
    """Deploy `application` under `/<name>`; yields its base URL; shuts Serve down afterwards."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=QUIET_LOGGING)
    try:
        serve.run(application, name=name, route_prefix=f"/{name}")
        yield f"http://127.0.0.1:{port}/{name}"
    finally:
        serve.shutdown()
