"""Run a Ray Serve application on the local Ray, on 127.0.0.1, for the length of a `with` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from workloads.common.serving import free_port


@contextmanager
def serve_on_loopback(application: Any, name: str) -> Iterator[str]:
    """Deploy `application` under `/<name>`; yields its base URL; shuts Serve down afterwards."""
    from ray import serve

    port = free_port()
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    try:
        serve.run(application, name=name, route_prefix=f"/{name}")
        yield f"http://127.0.0.1:{port}/{name}"
    finally:
        serve.shutdown()
