"""checkov over the rendered manifests, ours and the charts': no failure outside the commented
allow-list, and no allow-list entry that nothing needs any more."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from naomi.paths import PROJECT_DIR
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS, require_shared

CHECKOV = PROJECT_DIR / ".venv-checkov" / "bin" / "checkov"
ALLOW_LIST: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "checkov-allowlist.yaml").read_text())
OURS: dict[str, str] = ALLOW_LIST["ours"]
CHARTS: dict[str, dict[str, Any]] = ALLOW_LIST["charts"]


def _checkov(directory: Path) -> list[dict[str, Any]]:
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


@pytest.fixture(scope="module")
def failures(renders: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """One checkov run over the k8s/ objects of every example stack (checkov's start-up is most
    of its time): each failure with its stack and origin ("pulumi" or "helm:<ns>/<release>")."""
    root = tmp_path_factory.mktemp("checkov")
    origin_of: dict[str, str] = {}
    for stack, rendered in renders.items():
        for path, text in rendered.files.items():
            if path.startswith("k8s/"):
                target = root / stack / path.removeprefix("k8s/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                origin_of[f"{stack}/{path.removeprefix('k8s/')}"] = _origin(text)
    found = []
    for check in _checkov(root):
        relative = check["file_path"].lstrip("/")
        found.append({**check, "stack": relative.split("/", 1)[0], "origin": origin_of[relative]})
    shutil.rmtree(root)
    return found


def _origin(text: str) -> str:
    """The origin a render file states: `# helm release <ns>/<release>: ...`, else ours."""
    if text.startswith("# helm release "):
        return "helm:" + text.removeprefix("# helm release ").split(":", 1)[0]
    return "pulumi"


def _allowed(check: dict[str, Any]) -> bool:
    if check["origin"] == "pulumi":
        return check["check_id"] in OURS
    entry = CHARTS.get(check["check_id"])
    return entry is not None and ("*" in entry["resources"] or check["resource"] in entry["resources"])


def test_allow_list_entries_have_reasons() -> None:
    assert OURS and CHARTS
    assert all(len(reason) > 40 for reason in OURS.values())
    assert all(len(entry["reason"]) > 40 and entry["resources"] for entry in CHARTS.values())


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_checkov_passes_outside_the_allow_list(failures: list[dict[str, Any]], stack: str) -> None:
    unexpected = sorted(
        {
            f"{c['check_id']} {c['resource']} ({c['origin']}): {c['check_name']}"
            for c in failures
            if c["stack"] == stack and not _allowed(c)
        }
    )
    assert unexpected == []


def test_chart_objects_are_scanned(renders: dict[str, Rendered], failures: list[dict[str, Any]]) -> None:
    require_shared("reference/chart-archives")
    assert all(not rendered.charts_missing for rendered in renders.values())
    origins = {c["origin"] for c in failures}
    assert {"helm:naomi-gateway/traefik", "helm:naomi-monitoring/monitoring"} <= origins


def _used(failures: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    for check in failures:
        if check["origin"] == "pulumi":
            yield check["check_id"], "ours"
        else:
            yield check["check_id"], check["resource"]


def test_no_stale_allow_list_entries(failures: list[dict[str, Any]]) -> None:
    require_shared("reference/chart-archives")  # without the charts, their entries look unused
    used = set(_used(failures))
    stale = [f"ours: {check}" for check in OURS if (check, "ours") not in used]
    for check, entry in CHARTS.items():
        if "*" in entry["resources"]:
            stale += [f"charts: {check} *"] if not any(c == check and r != "ours" for c, r in used) else []
        else:
            stale += [f"charts: {check} {r}" for r in entry["resources"] if (check, r) not in used]
    assert stale == []


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
