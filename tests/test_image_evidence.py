"""Every image that will run has evidence it exists for where its pods land and has the shells its
commands run (issue 13, defect 10); `naomi images check` against a fake registry on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.versions import (
    EVIDENCE_STRENGTHS,
    IMAGE_EVIDENCE,
    RAY_IMAGES,
    ImageEvidence,
    arm64_capable,
    image_evidence,
    normalise_image_ref,
)
from naomi import images
from naomi.cli import app
from naomi.cluster.checks import cluster_model, inventory
from naomi.cluster.model import ClusterModel, ModelObject
from naomi.cluster.placement import InventoryNode
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS, require_shared

OLD_MINIO_CLIENT = "docker.io/pgsty/mc:RELEASE.2025-08-13T08-35-41Z"  # main's MINIO_CLIENT_IMAGE


@pytest.fixture(scope="module")
def uses(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> dict[str, list[images.ImageUse]]:
    require_shared("reference/chart-archives")  # chart images are only in the model with the charts
    return {
        stack: images.image_uses(cluster_model(renders[stack]), inventory(evaluations[stack]))
        for stack in EXAMPLE_STACKS
    }


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_image_that_will_run_has_an_evidence_entry(
    uses: dict[str, list[images.ImageUse]], stack: str
) -> None:
    assert images.missing_evidence(uses[stack]) == []
    origins = {use.origin.split(":", 1)[0] for use in uses[stack]}
    assert {"pulumi", "helm", "operator"} <= origins  # ours, the charts', the operators'


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_image_has_evidence_for_each_architecture_its_pods_may_land_on(
    uses: dict[str, list[images.ImageUse]], stack: str
) -> None:
    assert images.architecture_problems(uses[stack]) == []


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_containers_that_run_a_shell_use_an_image_recorded_with_it(
    uses: dict[str, list[images.ImageUse]], stack: str
) -> None:
    assert images.shell_problems(uses[stack]) == []
    assert any(use.shells for use in uses[stack])


def test_pods_without_an_amd64_selector_may_land_on_the_pis(uses: dict[str, list[images.ImageUse]]) -> None:
    by_owner = {(use.owner, use.container): use.architectures for use in uses["lab-ha"]}
    assert by_owner[("Deployment naomi-monitoring/monitoring-grafana", "grafana")] == ("amd64", "arm64")
    assert by_owner[("StatefulSet naomi-platform/postgres", "postgres")] == ("amd64",)
    assert by_owner[("Pod naomi-ray/ray-pi-worker-00000", "ray-worker")] == ("arm64",)


def _pod(container: dict[str, Any], node_selector: dict[str, str] | None = None) -> ModelObject:
    spec: dict[str, Any] = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    template = {"metadata": {"labels": {"app": "x"}}, "spec": spec}
    job = {
        "kind": "Job",
        "metadata": {"name": "x", "namespace": "naomi-platform"},
        "spec": {"template": template},
    }
    return ModelObject("pulumi", job)


def test_the_check_fails_on_mains_object_store_client_image(evaluations: dict[str, Evaluation]) -> None:
    """main's bucket Job and backup upload ran `/bin/sh -c` in pgsty/mc at a tag that repository
    never published, with no node selector on a cluster with Raspberry Pis."""
    upload = {"name": "upload", "image": OLD_MINIO_CLIENT, "command": ["/bin/sh", "-c", "mc cp ..."]}
    model = ClusterModel([_pod(upload)])
    found = images.image_uses(model, inventory(evaluations["edge-lab"]))
    assert images.evidence_problems(found) == [
        f"Job naomi-platform/x container upload: may land on amd64 nodes but the evidence for {OLD_MINIO_CLIENT} "
        "(none) shows no platform",
        f"Job naomi-platform/x container upload: may land on arm64 nodes but the evidence for {OLD_MINIO_CLIENT} "
        "(none) shows no platform",
        f"Job naomi-platform/x container upload: runs sh (command) but image {OLD_MINIO_CLIENT} has no recorded shells",
    ]


def test_a_shell_in_a_distroless_image_or_bash_on_alpine_is_caught() -> None:
    distroless = {"name": "a", "image": "quay.io/kuberay/operator:v1.7.0", "command": ["sh", "-c", "true"]}
    alpine = {
        "name": "b",
        "image": "docker.io/library/redis:7.4.6-alpine",
        "args": ["/usr/bin/env", "bash", "-c", "true"],
        "readinessProbe": {"exec": {"command": ["/bin/sh", "-c", "redis-cli ping"]}},
    }
    unknown = {"name": "c", "image": "docker.io/library/redis:7.4.7-alpine"}
    model = ClusterModel([_pod(distroless, {"kubernetes.io/arch": "amd64"}), _pod(alpine), _pod(unknown)])
    found = images.image_uses(model, [InventoryNode("x86", {"kubernetes.io/arch": "amd64"})])
    assert images.evidence_problems(found) == [
        "Job naomi-platform/x container c: image docker.io/library/redis:7.4.7-alpine has no evidence entry "
        "(infra/versions.py IMAGE_EVIDENCE)",
        "Job naomi-platform/x container a: runs sh (command) but image quay.io/kuberay/operator:v1.7.0 has no shell",
        "Job naomi-platform/x container b: runs bash (args) but image docker.io/library/redis:7.4.6-alpine has sh",
    ]


def test_landing_architectures_follow_selectors_affinity_and_the_inventory() -> None:
    nodes = [
        InventoryNode("x86", {"kubernetes.io/arch": "amd64", "naomi.io/storage": "true"}),
        InventoryNode("pi", {"kubernetes.io/arch": "arm64"}),
    ]
    not_arm = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["arm64"]}
                            ]
                        }
                    ]
                }
            }
        }
    }
    assert images.landing_architectures({}, nodes) == ("amd64", "arm64")
    assert images.landing_architectures({"nodeSelector": {"naomi.io/storage": "true"}}, nodes) == ("amd64",)
    assert images.landing_architectures(not_arm, nodes) == ("amd64",)
    assert images.landing_architectures({}, nodes[:1]) == ("amd64",)
    # An existing cluster (no inventory): only the arch constraints count.
    assert images.landing_architectures({"nodeSelector": {"naomi.io/storage": "true"}}, None) == (
        "amd64",
        "arm64",
    )
    assert images.landing_architectures(not_arm, None) == ("amd64",)
    assert images.landing_architectures({"nodeSelector": {"kubernetes.io/arch": "arm64"}}, None) == ("arm64",)


def test_shell_uses_read_command_args_probes_and_hooks() -> None:
    assert images.shell_uses({"command": ["/bin/bash", "-c", "--"], "args": ["ray start"]}) == (
        ("command", "bash"),
    )
    assert images.shell_uses({"command": ["/manager"], "args": ["sh"]}) == ()
    assert images.shell_uses({"args": ["sh", "-ec", "until pg_isready; do sleep 1; done"]}) == (
        ("args", "sh"),
    )
    assert images.shell_uses(
        {
            "command": ["python"],
            "livenessProbe": {"exec": {"command": ["sh", "-c", "true"]}},
            "lifecycle": {"postStart": {"exec": {"command": ["/usr/bin/env", "-i", "A=1", "bash", "x.sh"]}}},
        }
    ) == (("livenessProbe", "sh"), ("postStart", "bash"))


def test_references_are_normalised_as_the_runtime_resolves_them() -> None:
    assert normalise_image_ref("postgres:17.6-bookworm") == "docker.io/library/postgres:17.6-bookworm"
    assert normalise_image_ref("docker.io/traefik:v3.7.11") == "docker.io/library/traefik:v3.7.11"
    assert normalise_image_ref("index.docker.io/pgsty/mc:x") == "docker.io/pgsty/mc:x"
    assert normalise_image_ref("busybox") == "docker.io/library/busybox:latest"
    assert normalise_image_ref("localhost:32000/naomi-ray@sha256:ab") == "localhost:32000/naomi-ray@sha256:ab"
    assert normalise_image_ref("Registry/x:1") == "Registry/x:1"  # upper case: a registry host
    assert all(normalise_image_ref(key) == key for key in IMAGE_EVIDENCE)


def test_arm64_capable_decides_from_the_evidence() -> None:
    assert not arm64_capable(RAY_IMAGES["amd64"])
    assert arm64_capable(RAY_IMAGES["arm64"])
    assert arm64_capable("quay.io/prometheus/alertmanager:v0.34.0")  # a chart's image is judged too
    assert arm64_capable("registry.lab:5000/naomi-ray:0.1.0-abc@sha256:00")  # our build, any registry
    assert not arm64_capable(OLD_MINIO_CLIENT)  # an entry that shows nothing
    assert not arm64_capable("quay.io/someone/else:1.0")  # no entry


def test_every_entry_says_where_and_when_it_was_checked() -> None:
    for ref, evidence in IMAGE_EVIDENCE.items():
        assert evidence.strength in EVIDENCE_STRENGTHS, ref
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", evidence.checked), ref
        assert " @ " in evidence.source, f"{ref}: name the repository and the tag or commit read"
        assert (evidence.strength == "none") == (evidence.platforms == ()), ref
    with pytest.raises(ValueError, match="unknown evidence strength 'guess'"):
        ImageEvidence(platforms=(), shells=None, source="x @ y", strength="guess")


# --- the online check against a fake registry ----------------------------------------------------

INDEX = "application/vnd.oci.image.index.v1+json"
LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _index(media_type: str, *platforms: dict[str, str]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": f"sha256:{i:064x}", "platform": p}
            for i, p in enumerate(platforms)
        ],
    }


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
ATTESTATION = {"os": "unknown", "architecture": "unknown"}
CONFIG_DIGEST = "sha256:" + "c" * 64
# (repository, reference) -> (media type, manifest); anything else is MANIFEST_UNKNOWN.
MANIFESTS: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("library/postgres", "17.6-bookworm"): (INDEX, _index(INDEX, AMD64, ARM64, ATTESTATION)),
    ("library/traefik", "v3.7.11"): (INDEX, _index(INDEX, AMD64)),
    ("kuberay/operator", "v1.7.0"): (LIST, _index(LIST, AMD64, ARM64)),
    ("kube-state-metrics/kube-state-metrics", "v2.20.0"): (LIST, _index(LIST, AMD64, ARM64)),
    ("rayproject/ray", "2.60.0-py311-cpu"): (
        DOCKER_MANIFEST,
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": {"digest": CONFIG_DIGEST}, "layers": []},
    ),
}


class FakeRegistry(BaseHTTPRequestHandler):
    """A registry with the anonymous token flow: 401 with a Bearer challenge, a token endpoint,
    blobs redirected to storage that refuses requests carrying the registry's token, and (as
    registry.k8s.io does) kube-state-metrics answered by a backend the front redirects to."""

    seen: list[tuple[str, str, str]] = []  # (path, Accept, Authorization)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: dict[str, Any], content_type: str = "application/json", **headers: str
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        accept, authorization = self.headers.get("Accept", ""), self.headers.get("Authorization", "")
        self.seen.append((self.path, accept, authorization))
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/token?"):
            scope = re.search(r"scope=repository%3A([^&]+)%3Apull", self.path)
            assert scope and "service=fake.registry" in self.path, self.path
            return self._send(200, {"token": f"token-for-{scope.group(1)}"})
        if self.path.startswith("/storage/"):
            if authorization:
                return self._send(400, {"error": "only one auth mechanism allowed"})
            return self._send(200, {"os": "linux", "architecture": "amd64"})
        if self.path.startswith("/v2/kube-state-metrics/"):
            self.send_response(307)
            self.send_header("Location", f"{host}/backend{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        match = re.fullmatch(r"(?:/backend)?/v2/(.+)/(manifests|blobs)/([^/]+)", self.path)
        assert match, self.path
        repository, kind, reference = match.groups()
        if authorization != f"Bearer token-for-{repository.replace('/', '%2F')}":
            challenge = (
                f'Bearer realm="{host}/token",service="fake.registry",scope="repository:{repository}:pull"'
            )
            return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]}, WWW_Authenticate=challenge)
        if kind == "blobs":
            self.send_response(307)
            self.send_header("Location", f"{host}/storage/{reference}?signature=x")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if (repository, reference) not in MANIFESTS:
            return self._send(404, {"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        media_type, manifest = MANIFESTS[(repository, reference)]
        if media_type in (INDEX, LIST) and media_type not in accept:
            # A client that does not accept indexes gets one platform's manifest, as registries do.
            return self._send(200, MANIFESTS[("rayproject/ray", "2.60.0-py311-cpu")][1], DOCKER_MANIFEST)
        return self._send(200, manifest, media_type)


@pytest.fixture
def registry() -> Iterator[str]:
    FakeRegistry.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_client_reads_an_index_a_single_manifest_and_a_missing_tag(registry: str) -> None:
    client = images.RegistryClient({"docker.io": registry, "quay.io": registry}, timeout=5)
    assert client.platforms("postgres:17.6-bookworm") == ("linux/amd64", "linux/arm64/v8")
    assert client.platforms("quay.io/kuberay/operator:v1.7.0") == ("linux/amd64", "linux/arm64/v8")
    assert client.platforms(RAY_IMAGES["amd64"]) == ("linux/amd64",)
    ksm = "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"
    assert images.RegistryClient({"registry.k8s.io": registry}, 5).platforms(ksm) == (
        "linux/amd64",
        "linux/arm64/v8",
    )
    with pytest.raises(
        images.ImageNotFound, match=r"/v2/pgsty/mc/manifests/RELEASE.2025-08-13T08-35-41Z: not found"
    ):
        client.platforms(OLD_MINIO_CLIENT)
    first_path, first_accept, first_authorization = FakeRegistry.seen[0]
    assert first_path == "/v2/library/postgres/manifests/17.6-bookworm" and first_authorization == ""
    assert INDEX in first_accept and LIST in first_accept
    assert FakeRegistry.seen[2][2] == "Bearer token-for-library%2Fpostgres"
    backend = [auth for path, _, auth in FakeRegistry.seen if path.startswith("/backend/")]
    assert backend == ["", "Bearer token-for-kube-state-metrics%2Fkube-state-metrics"]  # challenged there
    # The blob's redirect to storage went without the token (the storage refuses it otherwise).
    assert [auth for path, _, auth in FakeRegistry.seen if path.startswith("/storage/")] == [""]


def test_an_unreachable_registry_is_an_error_not_a_mismatch() -> None:
    results = images.check_online(
        {"docker.io/library/busybox:1.37.0": ()},
        images.RegistryClient({"docker.io": "http://127.0.0.1:9"}, 2),
    )
    assert [(r.status, r.failed) for r in results] == [("error", False)]


def test_images_check_prints_the_platforms_against_the_evidence_and_fails_on_a_mismatch(
    registry: str,
) -> None:
    runner = CliRunner()
    refs = ["postgres:17.6-bookworm", RAY_IMAGES["amd64"], "docker.io/traefik:v3.7.11", OLD_MINIO_CLIENT]
    arguments = ["images", "check", "--endpoint", f"docker.io={registry}", "--timeout", "5"]
    result = runner.invoke(app, [*arguments, *(a for ref in refs for a in ("--image", ref))])
    assert result.exit_code == 1, result.output
    postgres = image_evidence("postgres:17.6-bookworm")
    traefik = image_evidence("docker.io/traefik:v3.7.11")
    assert postgres is not None and traefik is not None
    assert result.output.splitlines() == [
        "postgres:17.6-bookworm: ok",
        "  registry: linux/amd64, linux/arm64/v8",
        f"  evidence (official-images): {', '.join(postgres.platforms)}",
        f"{RAY_IMAGES['amd64']}: ok",
        "  registry: linux/amd64",
        "  evidence (release-config-elsewhere): linux/amd64",
        "docker.io/traefik:v3.7.11: mismatch",
        "  registry: linux/amd64",
        f"  evidence (official-images): {', '.join(traefik.platforms)}",
        "  the evidence shows linux/arm64, the registry has none",
        f"{OLD_MINIO_CLIENT}: missing",
        "  evidence (none): no platform",
        f"  {registry}/v2/pgsty/mc/manifests/RELEASE.2025-08-13T08-35-41Z: not found",
        "4 images: 2 ok, 1 mismatch, 1 missing",
    ]
    passing = runner.invoke(app, [*arguments, "--image", "postgres:17.6-bookworm"])
    assert passing.exit_code == 0, passing.output


def test_images_check_offline_names_images_without_evidence() -> None:
    result = CliRunner().invoke(app, ["images", "check", "--offline", "--image", OLD_MINIO_CLIENT])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == f"problem: {OLD_MINIO_CLIENT}: the evidence shows no platform"
    bad = CliRunner().invoke(app, ["images", "check", "--endpoint", "docker.io"])
    assert bad.exit_code == 2
    assert "error: --endpoint 'docker.io': expected REGISTRY=URL" in bad.output
