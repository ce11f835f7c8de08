"""The generic MLflow model server (serving runtime `deployment`): any registered model, one app.

Serves `models:/<name>@<alias>` (following the alias: a promotion reaches it within one poll, no
restart), `models:/<name>/<version>` or a logged model `models:/m-<id>` with `mlflow.pyfunc`. The
input shape comes from the model's signature (a tensor spec, or numeric columns) and requests go
through the shared strict app: `POST /predict` with `{"inputs": [...]}`, `POST /feedback`,
`GET /healthz`, `GET /ready`, `GET /metrics`. It starts without a model (a bare cluster): `/predict`
answers 503 saying what it waits for until the registry has one. MLflow's location and
credentials come from `MLFLOW_TRACKING_URI` and `MLFLOW_TRACKING_USERNAME`/`PASSWORD` (the
platform injects them from a Secret), the feedback key from `NAOMI_FEEDBACK_KEY`.

    python -m workloads.common.model_server --model-uri models:/qoe@champion --port 8080
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.common.follow import DEFAULT_POLL_SECONDS, Follower, parse_model_uri, registry_version
from workloads.common.serving import ModelSlot, PrometheusMetrics, Served, create_app, parse_tensor


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    shape: tuple[int | None, ...]  # None: any number of rows
    columns: tuple[str, ...]  # non-empty for column-based signatures
    predict: Callable[[np.ndarray], Any]


def resolve_version(model_uri: str) -> tuple[str, str]:
    """(registered name, version) for a `models:/` URI; an alias is looked up in the registry.
    A logged model (`models:/m-<id>`) is its own version."""
    reference = parse_model_uri(model_uri)
    if reference.version is not None:
        return reference.name, reference.version
    version = registry_version(reference)
    if version is None:
        raise ValueError(f"{model_uri}: {reference.describe()}")
    return reference.name, version


def model_version(model_uri: str) -> str:
    """The registry version behind a `models:/` URI (aliases looked up); other URIs name themselves."""
    return resolve_version(model_uri)[1] if model_uri.startswith("models:/") else model_uri


def load(model_uri: str, version: str | None = None) -> LoadedModel:
    """The model behind `model_uri` (`version`: already resolved, `model_uri` names it exactly)."""
    import mlflow
    from mlflow.types.schema import TensorSpec

    name, version = (parse_model_uri(model_uri).name, version) if version else resolve_version(model_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise ValueError(f"{model_uri}: the model has no signature; log it with one to serve it")
    inputs = schema.inputs
    if len(inputs) == 1 and isinstance(inputs[0], TensorSpec):
        shape = tuple(None if size == -1 else int(size) for size in inputs[0].shape)
        dtype = inputs[0].type  # MLflow enforces the signature's dtype (no float32 -> float64 cast)
        return LoadedModel(name, version, shape, (), lambda rows: model.predict(rows.astype(dtype)))
    columns = tuple(str(column.name) for column in inputs)

    def predict_rows(rows: np.ndarray) -> Any:
        import pandas as pd

        return model.predict(pd.DataFrame(rows, columns=list(columns)))

    return LoadedModel(name, version, (None, len(columns)), columns, predict_rows)


def served(model: LoadedModel) -> Served:
    """`model` as the shared app serves it: its signature's shape is the request parser."""
    units: Sequence[str] = ("rows", *["items"] * (len(model.shape) - 1))
    return Served(
        version=model.version,
        parse=lambda body: parse_tensor(body, "inputs", model.shape, units),
        predict=model.predict,
        describe={
            "input": {"shape": [-1 if s is None else s for s in model.shape], "columns": list(model.columns)}
        },
    )


def build_app(model: LoadedModel) -> Any:
    """An app serving `model` for good (no registry polling)."""
    return create_app(name=model.name, slot=ModelSlot(served(model)))


def following_app(model_uri: str, *, poll_seconds: float = DEFAULT_POLL_SECONDS) -> tuple[Any, Follower]:
    """An app that serves whatever `model_uri` names in the registry; start the follower to poll."""
    reference = parse_model_uri(model_uri)
    slot = ModelSlot()
    metrics = PrometheusMetrics(reference.name)
    follower = Follower(
        model_uri,
        lambda uri, version: served(load(uri, version)),
        slot,
        poll_seconds=poll_seconds,
        on_swap=metrics.version,
    )
    return create_app(name=reference.name, slot=slot, metrics=metrics), follower


def main(argv: Sequence[str] | None = None) -> None:
    import logging

    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-uri",
        required=True,
        help="models:/<name>@<alias>, models:/<name>/<version> or models:/m-<id>",
    )
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--poll-seconds", type=float, default=DEFAULT_POLL_SECONDS, help="registry polling interval"
    )
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app, follower = following_app(options.model_uri, poll_seconds=options.poll_seconds)
    # The first poll runs in the background: the server answers liveness at once, and /ready
    # once the model is loaded or the registry says there is none yet.
    follower.start()
    uvicorn.run(app, host=options.host, port=options.port, log_level="info")


if __name__ == "__main__":
    main()
