"""Deploying needs the core only: the stack program renders in an environment without the
workloads extra (a real venv built from uv.lock), and the Ray dashboards it deploys come from a
committed file that the pinned Ray regenerates identically.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from naomi.paths import PROJECT_DIR
from naomi.render.diff import read_tree
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS
from tests.test_lock import _uv

ML_MODULES = ("ray", "torch", "mlflow", "flytekit", "numpy", "pandas")

# Runs inside the core-only venv: no ML module can be found, then every example stack renders.
CORE_RENDER = """
import importlib.util, sys
from pathlib import Path
found = [m for m in sys.argv[2].split(",") if importlib.util.find_spec(m) is not None]
assert not found, f"the core environment has {found}"
from naomi.render.engine import evaluate_stack
from naomi.render.tree import render, write
project, out = Path(sys.argv[1]), Path(sys.argv[3])
for stack in sys.argv[4:]:
    write(render(evaluate_stack(project, stack)), out / stack)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2].split(","))
assert not loaded, loaded
"""


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, PROJECT_DIR / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ray_dashboards_file_is_what_the_pinned_ray_generates() -> None:
    pytest.importorskip("ray")
    generator = _script("ray_dashboards")
    committed = generator.DASHBOARDS_FILE.read_text()
    assert committed == generator.text(generator.generate()), (
        "stale: run .venv/bin/python scripts/ray_dashboards.py"
    )


def test_a_ray_upgrade_without_new_dashboards_stops_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import monitoring

    monkeypatch.setattr(monitoring, "RAY_VERSION", "2.61.0")
    with pytest.raises(RuntimeError) as raised:
        monitoring.ray_dashboards()
    assert str(raised.value) == (
        "ray.json holds the dashboards of Ray 2.60.0 but the cluster runs 2.61.0: "
        "run .venv/bin/python scripts/ray_dashboards.py"
    )


@pytest.mark.slow
def test_every_stack_renders_the_same_without_the_workloads_extra(
    tmp_path: Path, renders: dict[str, Rendered]
) -> None:
    venv = tmp_path / "core"
    # Offline from uv's cache (tests run without network); the cache holds every core wheel
    # once the project is installed. Bytecode is compiled as in every install (TOOLING.md).
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_COMPILE_BYTECODE": "1"}
    sync = subprocess.run(
        [_uv(), "sync", "--frozen", "--offline", "--no-install-project", "--python", sys.executable],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if sync.returncode != 0 and "wasn't found in the cache" in sync.stderr:
        message = f"uv's cache ({_uv()} cache dir) lacks core wheels; set UV_CACHE_DIR to the install's cache"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert sync.returncode == 0, sync.stderr
    out = tmp_path / "out"
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            CORE_RENDER,
            str(PROJECT_DIR),
            ",".join(ML_MODULES),
            str(out),
            *EXAMPLE_STACKS,
        ],
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for stack in EXAMPLE_STACKS:
        assert read_tree(out / stack) == renders[stack].files, stack
