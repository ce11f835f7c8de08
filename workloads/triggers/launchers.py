"""Launchers behind the trigger receiver: Flyte on the cluster, a local runner on a laptop.

`FlyteLauncher` starts the registered launch plan of the workflow (same version the stack
registered, `NAOMI_WORKLOADS_VERSION`) through FlyteRemote on the in-cluster Flyte endpoint;
`LocalLauncher` runs the workflow function itself (flytekit local execution) in a thread.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Workflow name -> its module path (flytekit registers workflows under "<module>.<function>").
WORKFLOW_MODULES = {"qoe_train": "workloads.qoe.workflow", "mnist_train": "workloads.mnist.workflow"}


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

    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str) -> str:
        from flytekit.configuration import Config
        from flytekit.remote import FlyteRemote

        remote = FlyteRemote(
            Config.for_endpoint(self.endpoint, insecure=True),
            default_project=self.project,
            default_domain=self.domain,
        )
        plan = remote.fetch_launch_plan(name=f"{WORKFLOW_MODULES[workflow]}.{workflow}", version=self.version)
        execution = remote.execute(plan, inputs=dict(inputs), wait=False, tags=["naomi-trigger"])
        return str(execution.id.name)


@dataclass
class LocalLauncher:
    """Runs workflows in-process (one at a time), for laptops and tests."""

    workflows: Mapping[str, Callable[..., Any]]
    results: dict[str, Any] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def launch(self, workflow: str, inputs: Mapping[str, Any], reason: str) -> str:
        run = self.workflows[workflow]
        execution = f"local-{next(self._ids)}"

        def target() -> None:
            with self._lock:
                self.results[execution] = run(**inputs)

        thread = threading.Thread(target=target, name=execution, daemon=True)
        self._threads.append(thread)
        thread.start()
        return execution

    def wait(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
