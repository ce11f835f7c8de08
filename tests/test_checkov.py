"""checkov over the rendered manifests: no failure outside the commented allow-list."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from naomi.paths import PROJECT_DIR
from naomi.render.tree import Rendered, write
from tests.conftest import EXAMPLE_STACKS

CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"
ALLOWED: dict[str, str] = yaml.safe_load((Path(__file__).parent / "checkov-allowlist.yaml").read_text())


def _checkov(directory: Path) -> list[dict]:  # type: ignore[type-arg]
    if not CHECKOV.is_file():
        message = "checkov venv missing: bash .ci/run creates .venv-checkov from tools/checkov.lock"
        if os.environ.get("NAOMI_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "-o",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [check for report in reports for check in report["results"]["failed_checks"]]


def test_allow_list_entries_have_reasons() -> None:
    assert ALLOWED and all(len(reason) > 40 for reason in ALLOWED.values())


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_checkov_passes_outside_the_allow_list(
    renders: dict[str, Rendered], tmp_path: Path, stack: str
) -> None:
    write(renders[stack], tmp_path / stack)
    failed = _checkov(tmp_path / stack / "k8s")
    unexpected = sorted(
        {
            f"{c['check_id']} {c['resource']}: {c['check_name']}"
            for c in failed
            if c["check_id"] not in ALLOWED
        }
    )
    assert unexpected == []


def test_checkov_flags_a_privileged_pod(tmp_path: Path) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "naomi-platform"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]
        },
    }
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    failed = {c["check_id"] for c in _checkov(tmp_path)}
    assert "CKV_K8S_16" in failed  # "Container should not be privileged"
