"""Register the pipelines in Flyte from inside the cluster (the stack's registration Job).

Reads the plan the stack renders (`/etc/naomi/registration.json`: project, domain, version,
pipelines, schedules), registers each pipeline's workflow and default launch plan under that
version with the naomi-workloads image (`NAOMI_WORKLOADS_IMAGE`, the digest the stack deployed),
registers one launch plan per `schedule` trigger with its cron and inputs, and activates it.
Re-running with the same version is a no-op (already registered entities are skipped).

    python -m workloads.register --plan /etc/naomi/registration.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Sequence
from typing import Any

WORKFLOWS = {"qoe": "qoe_train", "mnist": "mnist_train"}


def workflow(name: str) -> Any:
    if name == "qoe_train":
        from workloads.qoe.workflow import qoe_train

        return qoe_train
    if name == "mnist_train":
        from workloads.mnist.workflow import mnist_train

        return mnist_train
    raise ValueError(f"unknown workflow {name!r}; known: {', '.join(sorted(WORKFLOWS.values()))}")


def scheduled_launch_plans(plan: dict[str, Any]) -> list[Any]:
    """One LaunchPlan per schedule: `<trigger name>` with its cron and default inputs."""
    from flytekit import CronSchedule, LaunchPlan

    plans = []
    for schedule in plan["schedules"]:
        if schedule["workflow"] not in WORKFLOWS.values():
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


def main(argv: Sequence[str] | None = None) -> None:
    from flytekit.configuration import Config, ImageConfig, SerializationSettings
    from flytekit.exceptions.user import FlyteEntityAlreadyExistsException
    from flytekit.models.launch_plan import LaunchPlanState
    from flytekit.models.project import Project
    from flytekit.remote import FlyteRemote

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    options = parser.parse_args(argv)
    with open(options.plan, encoding="utf-8") as stream:
        plan = json.load(stream)
    project, domain, version = plan["project"], plan["domain"], plan["version"]
    remote = FlyteRemote(
        Config.for_endpoint(os.environ["FLYTE_ENDPOINT"], insecure=True),
        default_project=project,
        default_domain=domain,
    )
    with contextlib.suppress(FlyteEntityAlreadyExistsException):  # registered by an earlier run
        remote.client.register_project(Project(id=project, name=project, description="naomi pipelines"))
    settings = SerializationSettings(
        image_config=ImageConfig.auto(img_name=os.environ["NAOMI_WORKLOADS_IMAGE"]),
        project=project,
        domain=domain,
        version=version,
    )
    for pipeline in plan["pipelines"]:
        registered = remote.register_workflow(
            workflow(WORKFLOWS[pipeline]), serialization_settings=settings, version=version
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


if __name__ == "__main__":
    main()
