"""The GitHub workflows: valid structure, pinned actions, shellcheck-clean run steps, and the
render-diff step run locally on two revisions printing the object-level changes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.versions import IMAGE_PLATFORMS, NAOMI_IMAGES
from naomi.paths import PROJECT_DIR
from tests.conftest import EXAMPLE_STACKS

WORKFLOWS = sorted((PROJECT_DIR / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((PROJECT_DIR / ".github" / "actions").glob("*/action.yml"))


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _steps(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in document:
        return list(document["runs"]["steps"])
    return [step for job in document["jobs"].values() for step in job["steps"]]


def test_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} == {
        "ci.yml",
        "render-diff.yml",
        "preview.yml",
        "images.yml",
        "mutation.yml",
    }


@pytest.mark.parametrize(
    "path", WORKFLOWS + ACTIONS, ids=[p.parent.name + "/" + p.name for p in WORKFLOWS + ACTIONS]
)
def test_structure_and_pinned_actions(path: Path) -> None:
    document = _load(path)
    if path in WORKFLOWS:
        triggers = document[True] if True in document else document["on"]  # YAML 1.1 reads `on` as True
        assert triggers, path
        for name, job in document["jobs"].items():
            assert job["runs-on"].startswith("ubuntu-"), name
            assert 0 < job["timeout-minutes"] <= 120, name
            assert job["steps"], name
    for step in _steps(document):
        assert ("uses" in step) != ("run" in step), step
        uses = step.get("uses")
        if uses is None:
            continue
        if uses.startswith("./"):
            assert (PROJECT_DIR / uses / "action.yml").is_file(), uses
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", uses), f"{uses}: pin a released major version"


@pytest.mark.parametrize(
    "path", WORKFLOWS + ACTIONS, ids=[p.parent.name + "/" + p.name for p in WORKFLOWS + ACTIONS]
)
def test_run_steps_are_shellcheck_clean(path: Path, tmp_path: Path) -> None:
    beside_python = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside_python) if beside_python.is_file() else shutil.which("shellcheck")
    assert shellcheck is not None
    for index, step in enumerate(s for s in _steps(_load(path)) if "run" in s):
        script = tmp_path / f"step-{index}.sh"
        # GitHub expressions are substituted before the shell runs: stand in a plain word.
        body = re.sub(r"\$\{\{[^}]*\}\}", "EXPRESSION", step["run"])
        script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + body, encoding="utf-8")
        result = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{path.name} step {step.get('name')}: {result.stdout}"


def test_preview_covers_every_stack_with_the_policy_pack() -> None:
    job = _load(PROJECT_DIR / ".github" / "workflows" / "preview.yml")["jobs"]["preview"]
    assert tuple(job["strategy"]["matrix"]["stack"]) == EXAMPLE_STACKS
    (pulumi,) = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policy"
    assert (
        pulumi["with"]["comment-on-pr"] is True and pulumi["if"] == "steps.backend.outputs.enabled == 'true'"
    )


def test_images_workflow_builds_every_image_for_both_platforms() -> None:
    job = _load(PROJECT_DIR / ".github" / "workflows" / "images.yml")["jobs"]["build"]
    assert {entry["name"] for entry in job["strategy"]["matrix"]["include"]} == set(NAOMI_IMAGES)
    (build,) = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action@")]
    assert tuple(build["with"]["platforms"].split(",")) == IMAGE_PLATFORMS


def test_render_diff_step_on_two_revisions_prints_object_changes(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "__pycache__", ".*_cache", ".naomi", "out", ".hypothesis", ".ci"
        ),
    )

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    stack = project / "stacks" / "Pulumi.edge-lab.yaml"
    stack.write_text(
        stack.read_text(encoding="utf-8").replace("model: qoe, version: 1,", "model: qoe, version: 2,"),
        encoding="utf-8",
    )
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "deploy qoe v2 on the Pis")
    naomi = tmp_path / "naomi"
    naomi.write_text(f'#!/usr/bin/env bash\nexec {sys.executable} -m naomi.cli "$@"\n', encoding="utf-8")
    naomi.chmod(0o755)
    result = subprocess.run(
        ["bash", "scripts/render-diff.sh", "HEAD~1"],
        cwd=project,
        env={
            **os.environ,
            "NAOMI": str(naomi),
            "PYTHONPATH": str(project),
            "RENDER_OUT": str(tmp_path / "out"),
        },
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    sections = result.stdout.split("### ")
    edge = next(s for s in sections if s.startswith("naomi render diff: edge-lab"))
    assert "0 added, 0 removed, 1 changed" in edge
    assert "- changed `k8s/naomi-serving/Deployment-qoe-edge.yaml`" in edge
    assert "+        - models:/qoe/2" in edge and "-        - models:/qoe/1" in edge
    for other in ("dev", "lab-ha"):
        assert "No changes." in next(s for s in sections if s.startswith(f"naomi render diff: {other}"))
