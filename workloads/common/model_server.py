"""The generic MLflow model server (serving runtime `deployment`): any registered model, one app.

Loads `models:/<name>@<alias>` or `models:/<name>/<version>` with `mlflow.pyfunc`, reads the input
shape from the model's signature (a tensor spec, or numeric columns), and serves it through the
shared strict app: `POST /predict` with `{"inputs": [...]}`, `GET /healthz`, `GET /metrics`.
MLflow's location and credentials come from `MLFLOW_TRACKING_URI` and
`MLFLOW_TRACKING_USERNAME`/`PASSWORD` (the platform injects them from a Secret).

    python -m workloads.common.model_server --model-uri models:/qoe@champion --port 8080
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workloads.common.serving import create_app, parse_tensor


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    shape: tuple[int | None, ...]  # None: any number of rows
    columns: tuple[str, ...]  # non-empty for column-based signatures
    predict: Callable[[np.ndarray], Any]


def resolve_version(model_uri: str) -> tuple[str, str]:
    """(registered name, version) for a `models:/` URI; an alias is looked up in the registry."""
    import mlflow

    if not model_uri.startswith("models:/"):
        raise ValueError(
            f"model URI {model_uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
        )
    reference = model_uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return name, str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    name, _, version = reference.partition("/")
    if not version.isdigit():
        raise ValueError(f"model URI {model_uri!r}: the version must be a number")
    return name, version


def model_version(model_uri: str) -> str:
    """The registry version behind a `models:/` URI (aliases looked up); other URIs name themselves."""
    return resolve_version(model_uri)[1] if model_uri.startswith("models:/") else model_uri


def load(model_uri: str) -> LoadedModel:
    import mlflow
    from mlflow.types.schema import TensorSpec

    name, version = resolve_version(model_uri)
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


def build_app(model: LoadedModel) -> Any:
    units: Sequence[str] = ("rows", *["items"] * (len(model.shape) - 1))
    return create_app(
        name=model.name,
        version=model.version,
        parse=lambda body: parse_tensor(body, "inputs", model.shape, units),
        predictor=model.predict,
        describe={
            "input": {"shape": [-1 if s is None else s for s in model.shape], "columns": list(model.columns)}
        },
    )


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model-uri", required=True, help="models:/<name>@<alias> or models:/<name>/<version>"
    )
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 inside a container")
    parser.add_argument("--port", type=int, default=8080)
    options = parser.parse_args(argv)
    uvicorn.run(build_app(load(options.model_uri)), host=options.host, port=options.port, log_level="info")


if __name__ == "__main__":
    main()
