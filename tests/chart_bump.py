"""A chart version bump as a pull request makes it, rendered once per test session.

kube-prometheus-stack 88.5.3 -> 88.6.0 in a scratch copy of the project (`infra/versions.py`), with
an 88.6.0 archive built here from a copy of the cached 88.5.3 one: its Chart.yaml says 88.6.0 and
its PodMonitor CRD gains a printer column (what a new prometheus-operator release does to its
CRDs). The scratch chart cache holds that archive and links to the other cached ones; nothing is
written into ../shared. Used by tests/test_crds_upgrade.py and the upgrade runbook's check in
tests/test_docs.py.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import helm_python

from naomi.paths import PROJECT_DIR, shared_dir
from naomi.render.diff import read_tree
from tests.project_copy import copy_project

CHART = "kube-prometheus-stack"
OLD, NEW = "88.5.3", "88.6.0"
CRD_FILE = f"{CHART}/charts/crds/crds/crd-podmonitors.yaml"
# A printer column on PodMonitor v1: a change an upgraded CRD carries and the old one lacks.
PRINTER_COLUMN = "  - additionalPrinterColumns:\n    - jsonPath: .metadata.creationTimestamp\n      name: Age\n      type: date\n    name: v1\n"


@dataclass(frozen=True)
class Bump:
    project: Path  # the scratch project with the bumped pin
    cache: Path  # the scratch chart cache: 88.6.0 built here, the rest linked
    files: dict[str, str]  # the render of edge-lab from the bumped project


def build_archive(source: Path, target_dir: Path) -> Path:
    """`source` (the 88.5.3 archive) unpacked, bumped to 88.6.0 with the CRD edit, repackaged."""
    unpacked = target_dir / "unpacked"
    with tarfile.open(source) as tar:
        tar.extractall(unpacked, filter="data")
    chart_yaml = unpacked / CHART / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace(f"\nversion: {OLD}\n", f"\nversion: {NEW}\n"))
    crd = unpacked / CRD_FILE
    text = crd.read_text()
    assert "  versions:\n  - name: v1\n" in text
    crd.write_text(text.replace("  versions:\n  - name: v1\n", f"  versions:\n{PRINTER_COLUMN}", 1))
    packaged = Path(helm_python.package(unpacked / CHART, destination=target_dir))
    assert packaged.name == f"{CHART}-{NEW}.tgz", packaged
    return packaged


def render(project: Path, stack: str, cache: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """`naomi render` of `project`'s own code, with `cache` as its chart cache."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "naomi.cli",
            "render",
            "--stack",
            stack,
            "--charts",
            str(cache),
            "--out",
            str(out),
        ],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        capture_output=True,
        text=True,
        check=False,
    )


def set_crds(project: Path, stack: str, crds: str) -> None:
    """Set `naomi:charts.crds` to `crds` in `project`'s stack file."""
    stack_file = project / "stacks" / f"Pulumi.{stack}.yaml"
    text = stack_file.read_text()
    assert "naomi:charts:" not in text and "\nconfig:\n" in f"\n{text}"
    stack_file.write_text(text.replace("config:\n", f"config:\n  naomi:charts: {{crds: {crds}}}\n", 1))


@functools.cache
def bumped(crds: str = "program") -> Bump:
    """The bump rendered with `naomi:charts.crds` as `crds` (the default: program)."""
    shared = shared_dir()
    assert shared is not None, "../shared is required (tests call require_shared first)"
    archives = shared / "reference" / "chart-archives"
    workdir = Path(tempfile.mkdtemp(prefix=f"naomi-chart-bump-{crds}-"))
    atexit.register(shutil.rmtree, workdir, True)
    cache = workdir / "charts"
    cache.mkdir()
    for archive in archives.glob("*.tgz"):
        (cache / archive.name).symlink_to(archive)
    shutil.move(build_archive(archives / f"{CHART}-{OLD}.tgz", workdir), cache)
    project = copy_project(workdir / "project")
    versions = project / "infra" / "versions.py"
    text = versions.read_text()
    assert f'version="{OLD}"' in text
    versions.write_text(text.replace(f'version="{OLD}"', f'version="{NEW}"'))
    if crds != "program":
        set_crds(project, "edge-lab", crds)
    result = render(project, "edge-lab", cache, workdir / "render")
    assert result.returncode == 0, result.stderr[-1500:]
    assert project != PROJECT_DIR
    return Bump(project=project, cache=cache, files=read_tree(workdir / "render"))
