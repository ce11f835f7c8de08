"""Launchers behind the trigger receiver (and the registration Job's first training): Flyte on the
cluster, a local runner on a laptop.

`FlyteLauncher` starts the registered launch plan of the workflow (same version the stack
registered, `NAOMI_WORKLOADS_VERSION`) through FlyteRemote on the in-cluster Flyte endpoint,
under the execution name it is given: Flyte refuses a second execution of one name in a project
and domain, and flytekit then returns the existing one (flytekit 1.16.31 `FlyteRemote._execute`
catches FlyteEntityAlreadyExistsException), so a name launches at most once. `LocalLauncher`
runs the workflow function itself (flytekit local execution) in a thread, once per name.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workloads import catalogue


@dataclass
class FlyteLauncher:
    endpoint: str
    project: str
    domain: str
    version: str

    @staticmethod
    def from_environment() -> FlyteLauncher:
        return FlyteLauncher(
            endpoint=os.environ["FLYTE_ENDPOINT"],
            project=os.environ.get("FLYTE_PROJECT", "naomi"),
            domain=os.environ.get("FLYTE_DOMAIN", "production"),
            version=os.environ["NAOMI_WORKLOADS_VERSION"],
        )

    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str, name: str) -> str:
        from flytekit.configuration import Config
        from flytekit.remote import FlyteRemote

        remote = FlyteRemote(
            Config.for_endpoint(self.endpoint, insecure=True),
            default_project=self.project,
            default_domain=self.domain,
        )
        plan = remote.fetch_launch_plan(name=catalogue.by_workflow(workflow).flyte_name, version=self.version)
        execution = remote.execute(
            plan, inputs=dict(inputs), execution_name=name, wait=False, tags=["naomi-trigger"]
        )
        return str(execution.id.name)


@dataclass
class LocalLauncher:
    """Runs workflows in-process (one at a time, each name once), for laptops and tests."""

    workflows: Mapping[str, Callable[..., Any]]
    results: dict[str, Any] = field(default_factory=dict)
    launched: list[str] = field(default_factory=list)  # execution names, in launch order
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str, name: str) -> str:
        if name in self.launched:
            return name  # as Flyte: the existing execution
        run = self.workflows[workflow]
        self.launched.append(name)

        def target() -> None:
            with self._lock:
                self.results[name] = run(**inputs)

        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return name

    def wait(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
