"""The pipeline catalogue: every pipeline naomi ships, described once.

Config (`stacks/types.py`: the allowed `workloads.pipelines` and trigger workflows), serving
(`infra/serving.py`: which registered models have a Ray Serve application), registration
(`workloads/register.py`: which workflow to import), the trigger receiver's launchers, the
recording rules of the retraining triggers (`infra/workloads.py`) and the CLI (`naomi run`) all
read this table. It imports nothing but the standard library, so the stack program and the config
model can read it without Ray, torch or flytekit. Adding a pipeline is one entry here plus its
package under `workloads/<name>/`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    name: str  # `workloads.pipelines` / `naomi run <name>`
    workflow: str  # the Flyte workflow function in `module`
    module: str
    model: str  # the registered MLflow model the pipeline trains and serving loads
    serve_app: str  # the Ray Serve application builder (`module:function`)
    dataset: str  # the object-store key of the stored dataset (seeded, or the user's own)
    # Model quality for retraining triggers: the recording rule over the error of predictions
    # against ground truth posted to /feedback, averaged over `quality_window`.
    quality_record: str
    quality_window: str

    @property
    def flyte_name(self) -> str:
        """The name flytekit registers the workflow and its default launch plan under."""
        return f"{self.module}.{self.workflow}"


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline(
        name="qoe",
        workflow="qoe_train",
        module="workloads.qoe.workflow",
        model="qoe",
        serve_app="workloads.qoe.serve_deployment:app_builder",
        dataset="datasets/qoe/reports.parquet",
        quality_record="naomi:qoe_abs_error:mean5m",
        quality_window="5m",
    ),
    Pipeline(
        name="mnist",
        workflow="mnist_train",
        module="workloads.mnist.workflow",
        model="mnist",
        serve_app="workloads.mnist.serve_deployment:app_builder",
        dataset="datasets/mnist/digits.npz",
        quality_record="naomi:mnist_error_rate:mean1h",
        quality_window="1h",
    ),
)

PIPELINE_NAMES: tuple[str, ...] = tuple(p.name for p in PIPELINES)
WORKFLOW_NAMES: tuple[str, ...] = tuple(p.workflow for p in PIPELINES)
# Registered model -> its Ray Serve application.
SERVE_APPS: dict[str, str] = {p.model: p.serve_app for p in PIPELINES}


def pipeline(name: str) -> Pipeline:
    """The pipeline called `name`; ValueError listing the known ones."""
    for entry in PIPELINES:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown pipeline {name!r}; pipelines: {', '.join(PIPELINE_NAMES)}")


def by_workflow(workflow: str) -> Pipeline:
    """The pipeline whose Flyte workflow is `workflow`; ValueError listing the known ones."""
    for entry in PIPELINES:
        if entry.workflow == workflow:
            return entry
    raise ValueError(f"unknown workflow {workflow!r}; known: {', '.join(sorted(WORKFLOW_NAMES))}")
