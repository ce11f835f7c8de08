"""Register the pipelines in Flyte from inside the cluster (the stack's registration Job).

Reads the plan the stack renders (`/etc/naomi/registration.json`: project, domain, version,
pipelines, schedules, the RayJob shape of the stack's Ray pools) and:
1. refuses to go on when this image's code is not that version (`workloads.version`: the image
   is stamped at build time; with `images.build: false` the plan carries the release's stamp);
2. registers each pipeline's workflow and default launch plan under that version with the
   naomi-workloads image (`NAOMI_WORKLOADS_IMAGE`, the digest the stack deployed); Ray tasks take
   their RayJob shape from the plan (`workloads.common.flyte_tasks`);
3. registers one launch plan per `schedule` trigger with its cron and inputs, and activates it;
4. for each pipeline whose registered model has no `champion` in MLflow yet (a bare cluster),
   launches its default launch plan once with the stored dataset (`first-<pipeline>-<version>`:
   Flyte refuses a second execution of that name, so a re-run launches nothing); its promotion
   brings serving up.
Re-running with the same version is a no-op (already registered entities are skipped).

    python -m workloads.register --plan /etc/naomi/registration.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
from collections.abc import Sequence
from typing import Any

from workloads import catalogue
from workloads.common.flyte_tasks import PLAN_ENV

# Kept for callers that map pipeline names to workflows; the catalogue is the source.
WORKFLOWS = {p.name: p.workflow for p in catalogue.PIPELINES}


def workflow(name: str) -> Any:
    """The Flyte workflow function called `name` (imported from its pipeline's module)."""
    entry = catalogue.by_workflow(name)
    return getattr(importlib.import_module(entry.module), entry.workflow)


def scheduled_launch_plans(plan: dict[str, Any]) -> list[Any]:
    """One LaunchPlan per schedule: `<trigger name>` with its cron and default inputs."""
    from flytekit import CronSchedule, LaunchPlan

    plans = []
    for schedule in plan["schedules"]:
        if schedule["workflow"] not in catalogue.WORKFLOW_NAMES:
            raise ValueError(f"schedule {schedule['name']}: unknown workflow {schedule['workflow']!r}")
        plans.append(
            LaunchPlan.get_or_create(
                workflow=workflow(schedule["workflow"]),
                name=f"naomi.{schedule['name']}",
                schedule=CronSchedule(schedule=schedule["cron"]),
                default_inputs=dict(schedule["inputs"]),
            )
        )
    return plans


def first_trainings(plan: dict[str, Any], has_champion: Any) -> list[tuple[catalogue.Pipeline, str]]:
    """(pipeline, execution name) for every planned pipeline whose model has no champion yet."""
    version = str(plan["version"])
    return [
        (entry, f"first-{entry.name}-{version[:16]}")
        for entry in map(catalogue.pipeline, plan["pipelines"])
        if not has_champion(entry.model)
    ]


def mlflow_has_champion(model: str) -> bool:
    import mlflow
    from mlflow.exceptions import MlflowException

    from workloads.common.registry import CHAMPION, absent

    try:
        mlflow.MlflowClient().get_model_version_by_alias(model, CHAMPION)
    except MlflowException as error:
        if absent(error):
            return False
        raise
    return True


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    options = parser.parse_args(argv)
    with open(options.plan, encoding="utf-8") as stream:
        plan = json.load(stream)
    image = os.environ["NAOMI_WORKLOADS_IMAGE"]
    from workloads.version import VersionMismatch, check_registrable

    try:
        check_registrable(str(plan["version"]), image)
    except VersionMismatch as error:
        raise SystemExit(f"error: {error}") from None
    # Ray tasks read their RayJob shape when their module is imported: point them at the plan.
    os.environ[PLAN_ENV] = options.plan
    register(plan, image)


def register(plan: dict[str, Any], image: str) -> None:
    from flytekit.configuration import Config, ImageConfig, SerializationSettings
    from flytekit.exceptions.user import FlyteEntityAlreadyExistsException
    from flytekit.models.launch_plan import LaunchPlanState
    from flytekit.models.project import Project
    from flytekit.remote import FlyteRemote

    from workloads.triggers.launchers import FlyteLauncher

    project, domain, version = plan["project"], plan["domain"], plan["version"]
    endpoint = os.environ["FLYTE_ENDPOINT"]
    remote = FlyteRemote(
        Config.for_endpoint(endpoint, insecure=True), default_project=project, default_domain=domain
    )
    with contextlib.suppress(FlyteEntityAlreadyExistsException):  # registered by an earlier run
        remote.client.register_project(Project(id=project, name=project, description="naomi pipelines"))
    settings = SerializationSettings(
        image_config=ImageConfig.auto(img_name=image), project=project, domain=domain, version=version
    )
    for pipeline in plan["pipelines"]:
        entry = catalogue.pipeline(pipeline)
        registered = remote.register_workflow(
            workflow(entry.workflow), serialization_settings=settings, version=version
        )
        print(f"registered {registered.id.name} version {version}")
    for launch_plan in scheduled_launch_plans(plan):
        registered = remote.register_launch_plan(
            launch_plan, version=version, project=project, domain=domain, serialization_settings=settings
        )
        remote.client.update_launch_plan(registered.id, LaunchPlanState.ACTIVE)
        print(
            f"activated {registered.id.name} version {version} ({launch_plan.schedule.cron_schedule.schedule})"
        )
    launcher = FlyteLauncher(endpoint=endpoint, project=project, domain=domain, version=version)
    for entry, name in first_trainings(plan, mlflow_has_champion):
        execution = launcher.launch(
            entry.workflow, {"dataset": entry.dataset}, f"no {entry.model} champion yet", name
        )
        print(f"first training of {entry.name}: execution {execution} (no champion of {entry.model!r} yet)")


if __name__ == "__main__":
    main()
