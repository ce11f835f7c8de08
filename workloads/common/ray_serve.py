"""What naomi's Ray Serve applications share: options from RayService args, batches that may
span a model swap, the feedback key every replica shares, and running an application on the
local Ray on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from workloads.common.follow import DEFAULT_POLL_SECONDS
from workloads.common.serve_env import SERVE_PROCESS_ENV as SERVE_PROCESS_ENV
from workloads.common.serving import FEEDBACK_KEY_ENV, free_port

SERVING_ARGS = {"model_uri", "num_replicas", "max_replicas", "num_cpus", "tracking_uri", "poll_seconds"}

# A local Ray on loopback has no load balancer to deregister a stopping replica from: skip the
# 30 s drain that direct ingress holds a replica open for (ray 2.60 serve/_private/constants.py
# RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S), which every `serve.shutdown()` would wait out.
LOOPBACK_SERVE_ENV = {**SERVE_PROCESS_ENV, "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0"}

# Per-request access logs cost ~1 ms of a 2-core box per request; errors are still logged.
QUIET_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


def deployment_options(args: dict[str, Any]) -> dict[str, Any]:
    """Ray Serve options from RayService args (model_uri, num_replicas, max_replicas, num_cpus,
    tracking_uri, poll_seconds); unknown keys refused."""
    unknown = set(args) - SERVING_ARGS
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


def poll_seconds(args: dict[str, Any]) -> float:
    return float(args.get("poll_seconds", DEFAULT_POLL_SECONDS))


def replica_key() -> bytes | None:
    """The feedback key handed to every replica by the application builder: None when the pods
    carry `NAOMI_FEEDBACK_KEY` (each replica reads it), else one random key for all replicas."""
    return None if os.environ.get(FEEDBACK_KEY_ENV) else secrets.token_bytes(32)


Request = tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]  # (the model that parsed it, rows)


def run_batch(requests: list[Request]) -> list[np.ndarray]:
    """The requests of one `@serve.batch`, each answered by the model that parsed it: one forward
    pass per model (a batch spans two only while a new version is being swapped in)."""
    answers: list[np.ndarray] = [np.empty(0)] * len(requests)
    groups: dict[int, list[int]] = {}
    for index, (predict, _) in enumerate(requests):
        groups.setdefault(id(predict), []).append(index)
    for indexes in groups.values():
        predict = requests[indexes[0]][0]
        rows = [requests[i][1] for i in indexes]
        sizes = np.cumsum([len(r) for r in rows])[:-1]
        for index, part in zip(indexes, np.split(predict(np.concatenate(rows)), sizes), strict=True):
            answers[index] = part
    return answers


def init_ray_like_serving_pods(**options: Any) -> None:
    """`ray.init(**options)` with the RayService pods' Serve environment in Ray's processes
    (they inherit it at start; this process's environment is restored afterwards)."""
    import ray

    saved = {name: os.environ.get(name) for name in LOOPBACK_SERVE_ENV}
    os.environ.update(LOOPBACK_SERVE_ENV)
    try:
        ray.init(**options)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
