"""naomi.cluster.admission against the upstream Pod Security conformance fixtures (k8s.io/pod-security-admission
v0.32.9, test/testdata/{baseline,restricted}/v1.32, read in place from ../shared) and a few platform cases
with the controller's exact messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from naomi.cluster.admission import (
    CHECK_IDS,
    Violation,
    denial_message,
    enforced_level,
    evaluate_manifest,
    evaluate_pod,
)
from tests.conftest import require_shared

# test/fixtures.go registerFixtureGenerator / fixtures_test.go: a fixture file is named after the check
# whose generator made it, strings.ToLower(checkID) + index ("runasnonroot0", "capabilities_restricted1").
CHECK_BY_STEM = {check.lower(): check for check in CHECK_IDS}

# The checks registered with Level: api.LevelBaseline in policy/check_*.go.
BASELINE_CHECKS = {
    "appArmorProfile",
    "capabilities_baseline",
    "hostNamespaces",
    "hostPathVolumes",
    "hostPorts",
    "privileged",
    "procMount",
    "seLinuxOptions",
    "seccompProfile_baseline",
    "sysctls",
    "windowsHostProcess",
}

# registry.go populate with the OverrideCheckIDs of policy/check_capabilities_restricted.go,
# check_restrictedVolumes.go and check_seccompProfile_restricted.go: at restricted these baseline checks
# do not run; the restricted check that replaces them rejects the same pods.
OVERRIDDEN_AT_RESTRICTED = {
    "capabilities_baseline": "capabilities_restricted",
    "hostPathVolumes": "restrictedVolumes",
    "seccompProfile_baseline": "seccompProfile_restricted",
}

# Fail fixtures whose generator changes more than the named check's field, so the controller reports a
# second check as well. Each is the generator's own doing, not a choice of ours:
EXTRA_CHECKS = {
    # test/fixtures_windowsHostProcess.go: "HostNetwork is required to be true for HostProcess pods".
    ("baseline", "windowshostprocess0"): {"hostNamespaces"},
    ("baseline", "windowshostprocess1"): {"hostNamespaces"},
    ("restricted", "windowshostprocess0"): {"hostNamespaces"},
    ("restricted", "windowshostprocess1"): {"hostNamespaces"},
    # test/fixtures_privileged.go sets AllowPrivilegeEscalation = nil (API validation forbids
    # allowPrivilegeEscalation=false with privileged=true), which restricted also rejects.
    ("restricted", "privileged0"): {"allowPrivilegeEscalation"},
    ("restricted", "privileged1"): {"allowPrivilegeEscalation"},
    # test/fixtures_allowPrivilegeEscalation.go "nil security context" drops capabilities.drop=[ALL] too.
    ("restricted", "allowprivilegeescalation3"): {"capabilities_restricted"},
}

# test/fixtures_*.go expectErrorSubstring (the check ID where unset): test/run.go requires the
# controller's rejection to contain it.
UPSTREAM_ERROR_SUBSTRING = {
    "appArmorProfile": "forbidden AppArmor profile",
    "capabilities_baseline": "capabilities",
    "capabilities_restricted": "unrestricted capabilities",
    "hostNamespaces": "host namespaces",
    "hostPathVolumes": "hostPath",
    "hostPorts": "hostPort",
    "procMount": "procMount",
    "restrictedVolumes": "restricted volume types",
    "seLinuxOptions": "seLinuxOptions",
    "seccompProfile_baseline": "seccompProfile",
    "seccompProfile_restricted": "seccompProfile",
    "sysctls": "forbidden sysctl",
    "windowsHostProcess": "hostProcess",
}


class Fixture:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.level: Any = path.parts[-4]
        self.outcome = path.parts[-2]
        self.name = path.stem
        self.pod: dict[str, Any] = yaml.safe_load(path.read_text())

    @property
    def named_check(self) -> str:
        return CHECK_BY_STEM[self.name.rstrip("0123456789")]

    def __repr__(self) -> str:
        return f"{self.level}/{self.outcome}/{self.name}"


@pytest.fixture(scope="module")
def fixtures() -> list[Fixture]:
    root = require_shared("reference/pod-security")
    return [Fixture(path) for path in sorted(root.glob("*/v1.32/*/*.yaml"))]


def _checks(violations: list[Violation]) -> set[str]:
    return {violation.check for violation in violations}


def _expected_checks(fixture: Fixture) -> set[str]:
    check = fixture.named_check
    if fixture.level == "restricted":
        check = OVERRIDDEN_AT_RESTRICTED.get(check, check)
    return {check} | EXTRA_CHECKS.get((fixture.level, fixture.name), set())


def test_the_fixture_set_is_the_upstream_v1_32_one(fixtures: list[Fixture]) -> None:
    counts: dict[str, int] = {}
    for fixture in fixtures:
        key = f"{fixture.level}/{fixture.outcome}"
        counts[key] = counts.get(key, 0) + 1
    assert counts == {"baseline/fail": 29, "baseline/pass": 11, "restricted/fail": 69, "restricted/pass": 19}
    assert all(fixture.pod["kind"] == "Pod" for fixture in fixtures)


def test_every_fixture_gets_the_controllers_verdict_and_check(fixtures: list[Fixture]) -> None:
    disagreements = []
    for fixture in fixtures:
        violations = evaluate_manifest(fixture.pod, fixture.level)
        if fixture.outcome == "pass":
            if violations:
                disagreements.append(f"{fixture}: rejected with {denial_message(violations, fixture.level)}")
            continue
        if _checks(violations) != _expected_checks(fixture):
            disagreements.append(
                f"{fixture}: fired {_checks(violations)}, expected {_expected_checks(fixture)}"
            )
        expected_text = UPSTREAM_ERROR_SUBSTRING.get(fixture.named_check, fixture.named_check)
        if expected_text not in denial_message(violations, fixture.level):
            disagreements.append(
                f"{fixture}: {expected_text!r} not in {denial_message(violations, fixture.level)}"
            )
    assert disagreements == []
    assert len(fixtures) == 128


def test_restricted_includes_baseline(fixtures: list[Fixture]) -> None:
    """registry.go populate: restricted runs every baseline check (but the overridden ones, replaced by
    stricter restricted checks), so what restricted admits baseline admits and what baseline rejects
    restricted rejects, for the same (or the overriding) check."""
    problems = []
    for fixture in fixtures:
        if (fixture.level, fixture.outcome) == ("restricted", "pass") and evaluate_manifest(
            fixture.pod, "baseline"
        ):
            problems.append(f"{fixture} passes restricted but not baseline")
        if fixture.level == "baseline" and fixture.outcome == "fail":
            expected = OVERRIDDEN_AT_RESTRICTED.get(fixture.named_check, fixture.named_check)
            if expected not in _checks(evaluate_manifest(fixture.pod, "restricted")):
                problems.append(f"{fixture} fails baseline but restricted does not fire {expected}")
        if fixture.level == "baseline" and fixture.outcome == "pass":
            # Passing baseline, it can only fail restricted's own checks (a replaced baseline check's
            # restricted successor is one of those).
            fired = _checks(evaluate_manifest(fixture.pod, "restricted")) & BASELINE_CHECKS
            if fired:
                problems.append(f"{fixture} passes baseline but fires baseline checks {fired} at restricted")
    assert problems == []


def _by_name(fixtures: list[Fixture], name: str) -> dict[str, Any]:
    (fixture,) = [f for f in fixtures if repr(f) == name]
    return copy.deepcopy(fixture.pod)


def test_the_baseline_minimal_pod_fails_restricted_on_exactly_what_the_restricted_one_adds(
    fixtures: list[Fixture],
) -> None:
    """test/fixtures.go builds the minimal restricted pod from the minimal baseline one with four tweaks,
    one per restricted requirement (runAsNonRoot 1.0, allowPrivilegeEscalation 1.8, seccompProfile 1.19,
    capabilities 1.22): the baseline pod fails restricted on those four checks and nothing else."""
    baseline, restricted = (
        _by_name(fixtures, "baseline/pass/base"),
        _by_name(fixtures, "restricted/pass/base"),
    )
    tweaked = copy.deepcopy(baseline)
    tweaked["spec"]["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in tweaked["spec"]["containers"] + tweaked["spec"]["initContainers"]:
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert tweaked["spec"] == restricted["spec"]

    violations = evaluate_manifest(baseline, "restricted")
    assert [v.check for v in violations] == [
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "runAsNonRoot",
        "seccompProfile_restricted",
    ]
    assert denial_message(violations, "restricted") == (
        'violates PodSecurity "restricted:v1.32": allowPrivilegeEscalation != false (containers "initcontainer1", '
        '"container1" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(containers "initcontainer1", "container1" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or containers "initcontainer1", "container1" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or containers "initcontainer1", "container1" '
        'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    assert evaluate_manifest(baseline, "privileged") == []


def test_windows_pods_are_exempt_from_the_linux_only_restricted_checks_from_1_25(
    fixtures: list[Fixture],
) -> None:
    windows = _by_name(fixtures, "restricted/pass/base_windows")
    assert evaluate_manifest(windows, "restricted") == []
    # Before 1.25 (the revisions without the spec.os exemption) the same pod fails them.
    assert _checks(evaluate_manifest(windows, "restricted", "1.24")) == {
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "seccompProfile_restricted",
    }
    windows["spec"]["os"]["name"] = "linux"
    assert _checks(evaluate_manifest(windows, "restricted")) == {
        "allowPrivilegeEscalation",
        "capabilities_restricted",
        "seccompProfile_restricted",
    }
    # runAsNonRoot has no exemption: a Windows pod still needs it.
    del windows["spec"]["securityContext"]
    windows["spec"]["os"]["name"] = "windows"
    assert _checks(evaluate_manifest(windows, "restricted")) == {"runAsNonRoot"}


def _restricted_pod(fixtures: list[Fixture]) -> dict[str, Any]:
    return _by_name(fixtures, "restricted/pass/base")


def test_checks_apply_from_and_until_their_policy_versions(fixtures: list[Fixture]) -> None:
    pod = _restricted_pod(fixtures)
    pod["spec"]["securityContext"]["sysctls"] = [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]
    assert evaluate_manifest(pod, "restricted", "1.32") == []
    assert evaluate_manifest(pod, "restricted", "latest") == []
    assert evaluate_manifest(pod, "restricted", "v1.40") == []  # newer than any check: evaluated as 1.32
    assert [v.message for v in evaluate_manifest(pod, "baseline", "1.31")] == [
        "forbidden sysctls (net.ipv4.tcp_rmem)"
    ]

    pod = _restricted_pod(fixtures)
    pod["spec"]["securityContext"]["runAsUser"] = 0
    assert _checks(evaluate_manifest(pod, "restricted", "1.23")) == {"runAsUser"}
    assert evaluate_manifest(pod, "restricted", "1.22") == []  # runAsUser applies from 1.23

    pod = _restricted_pod(fixtures)
    pod["spec"]["containers"][0]["securityContext"]["seLinuxOptions"] = {"type": "container_engine_t"}
    assert evaluate_manifest(pod, "baseline", "1.31") == []
    assert _checks(evaluate_manifest(pod, "baseline", "1.30")) == {"seLinuxOptions"}

    # Before 1.19 seccomp was judged by the alpha annotations only.
    pod = _restricted_pod(fixtures)
    pod["metadata"]["annotations"] = {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
    assert evaluate_manifest(pod, "baseline", "1.19") == []
    assert [v.message for v in evaluate_manifest(pod, "baseline", "1.18")] == [
        'seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    ]

    # Before capabilities_restricted (1.22) restricted still ran capabilities_baseline.
    pod = _restricted_pod(fixtures)
    pod["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_RAW"]
    assert _checks(evaluate_manifest(pod, "restricted", "1.21")) == {"capabilities_baseline"}
    assert _checks(evaluate_manifest(pod, "restricted", "1.22")) == {"capabilities_restricted"}


# --- the platform's cases, with the controller's exact words ---------------------------------------


def _secure_container(name: str, port: int | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": "rayproject/ray:2.60.0",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if port is not None:
        container["ports"] = [{"name": "dashboard", "containerPort": port}]
    return container


def test_host_network_in_a_restricted_namespace() -> None:
    """hostNetwork fails host namespaces, and the API server's defaulting turns each declared port into a
    hostPort before admission (defaultHostNetworkPorts), so the controller names that too."""
    spec = {"hostNetwork": True, "containers": [_secure_container("ray-head", 8265)]}
    violations = evaluate_pod({"name": "ray-head"}, spec, "restricted")
    assert violations == [
        Violation("hostNamespaces", "host namespaces (hostNetwork=true)", (), ("spec.hostNetwork",)),
        Violation(
            "hostPorts",
            'hostPort (container "ray-head" uses hostPort 8265)',
            ("ray-head",),
            ("spec.containers[ray-head].ports[0].hostPort",),
        ),
    ]
    assert denial_message(violations, "restricted") == (
        'violates PodSecurity "restricted:v1.32": host namespaces (hostNetwork=true), '
        'hostPort (container "ray-head" uses hostPort 8265)'
    )


def test_run_as_user_without_run_as_non_root_is_rejected() -> None:
    """The flyte-binary case: a non-zero runAsUser does not stand in for runAsNonRoot=true."""
    spec = {
        "securityContext": {"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001},
        "containers": [_secure_container("flyte")],
    }
    del spec["containers"][0]["securityContext"]["runAsNonRoot"]
    violations = evaluate_pod({}, spec, "restricted")
    assert violations == [
        Violation(
            "runAsNonRoot",
            'runAsNonRoot != true (pod or container "flyte" must set securityContext.runAsNonRoot=true)',
            ("flyte",),
            ("spec.containers[flyte].securityContext.runAsNonRoot",),
        )
    ]
    spec["securityContext"]["runAsNonRoot"] = True  # type: ignore[index]
    assert evaluate_pod({}, spec, "restricted") == []


def test_an_injected_container_without_security_context_fails_restricted() -> None:
    """The KubeRay autoscaler case: the operator adds a sidecar with no securityContext to a head pod
    whose own container is restricted; only a pod-level setting would cover it."""
    spec: dict[str, Any] = {
        "containers": [
            _secure_container("ray-head"),
            {"name": "autoscaler", "image": "rayproject/ray:2.60.0"},
        ]
    }
    violations = evaluate_pod({}, spec, "restricted")
    assert [(v.check, v.message, v.containers) for v in violations] == [
        (
            "allowPrivilegeEscalation",
            'allowPrivilegeEscalation != false (container "autoscaler" must set '
            "securityContext.allowPrivilegeEscalation=false)",
            ("autoscaler",),
        ),
        (
            "capabilities_restricted",
            'unrestricted capabilities (container "autoscaler" must set securityContext.capabilities.drop=["ALL"])',
            ("autoscaler",),
        ),
        (
            "runAsNonRoot",
            'runAsNonRoot != true (pod or container "autoscaler" must set securityContext.runAsNonRoot=true)',
            ("autoscaler",),
        ),
        (
            "seccompProfile_restricted",
            'seccompProfile (pod or container "autoscaler" must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")',
            ("autoscaler",),
        ),
    ]
    # Pod-level runAsNonRoot and seccompProfile are inherited; the other two are per-container only.
    spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert [v.check for v in evaluate_pod({}, spec, "restricted")] == [
        "allowPrivilegeEscalation",
        "capabilities_restricted",
    ]
    assert evaluate_pod({}, spec, "baseline") == []


def test_ephemeral_containers_are_judged_and_named() -> None:
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_secure_container("app", 8080)],
        "ephemeralContainers": [
            {
                "name": "debugger",
                "image": "busybox:1.36",
                "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}},
            }
        ],
    }
    (violation,) = evaluate_pod({}, spec, "baseline")
    assert violation == Violation(
        "capabilities_baseline",
        'non-default capabilities (container "debugger" must not include "SYS_PTRACE" in '
        "securityContext.capabilities.add)",
        ("debugger",),
        ("spec.ephemeralContainers[debugger].securityContext.capabilities.add",),
    )


def test_volumes_as_the_controller_sees_them_after_defaulting() -> None:
    base = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}
    containers = [_secure_container("app")]
    no_source = {**base, "containers": containers, "volumes": [{"name": "scratch"}]}
    assert evaluate_pod({}, no_source, "restricted") == []  # SetDefaults_Volume: an emptyDir
    image = {**base, "containers": containers, "volumes": [{"name": "model", "image": {"reference": "m:1"}}]}
    assert [v.message for v in evaluate_pod({}, image, "restricted")] == [
        'restricted volume types (volume "model" uses restricted volume type "unknown")'
    ]
    assert evaluate_pod({}, image, "baseline") == []


def test_annotation_values_are_quoted_as_go_does() -> None:
    metadata = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": 'un"confined\n'}}
    (violation,) = evaluate_pod(metadata, {"containers": [{"name": "app"}]}, "baseline")
    assert violation.message == (
        "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
        r'"container.apparmor.security.beta.kubernetes.io/app="un\"confined\n"")'
    )
    assert violation.containers == ("app",)


def test_enforced_level_reads_the_namespace_labels_as_the_controller_does() -> None:
    enforce, version = "pod-security.kubernetes.io/enforce", "pod-security.kubernetes.io/enforce-version"
    assert enforced_level({}) == ("privileged", "1.32")
    assert enforced_level({"pod-security.kubernetes.io/warn": "restricted"}) == ("privileged", "1.32")
    assert enforced_level({enforce: "restricted"}) == ("restricted", "1.32")
    assert enforced_level({enforce: "baseline", version: "v1.29"}) == ("baseline", "1.29")
    assert enforced_level({enforce: "restricted", version: "latest"}) == ("restricted", "1.32")
    # api/helpers.go ParseLevel fails closed (restricted); ParseVersion falls back to latest.
    assert enforced_level({enforce: "strict"}) == ("restricted", "1.32")
    assert enforced_level({enforce: "baseline", version: "1.29"}) == ("baseline", "1.32")


def test_objects_the_api_server_would_not_decode_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^spec\.hostNetwork: expected a boolean, got 'true'$"):
        evaluate_pod({}, {"hostNetwork": "true", "containers": []}, "baseline")
    with pytest.raises(
        ValueError,
        match=r"^spec\.containers\[app\]\.securityContext\.runAsUser: expected an integer, got '0'$",
    ):
        evaluate_pod(
            {}, {"containers": [{"name": "app", "securityContext": {"runAsUser": "0"}}]}, "restricted"
        )
    with pytest.raises(ValueError, match=r"^expected a Pod object, got kind 'Deployment'$"):
        evaluate_manifest({"kind": "Deployment", "spec": {}}, "restricted")
    with pytest.raises(ValueError, match=r"""^policy version '2\.0': must be "latest", "v1\.x" or "1\.x"$"""):
        evaluate_pod({}, {}, "restricted", "2.0")
    # Pulumi hands numbers over as floats.
    floats = {"containers": [{"name": "app", "ports": [{"containerPort": 80.0, "hostPort": 8080.0}]}]}
    assert [v.message for v in evaluate_pod({}, floats, "baseline")] == [
        'hostPort (container "app" uses hostPort 8080)'
    ]


def test_host_ports_are_listed_in_the_controllers_order() -> None:
    """policy/check_hostPorts.go lists the ports with sets.String.List(): sorted as strings."""
    ports = [{"containerPort": 8080, "hostPort": 8080}, {"containerPort": 10000, "hostPort": 10000}]
    spec = {
        "containers": [
            {"name": "gateway", "ports": ports},
            {"name": "metrics", "ports": [{"hostPort": 9100}]},
        ]
    }
    (violation,) = evaluate_pod({}, spec, "baseline")
    assert violation.message == 'hostPort (containers "gateway", "metrics" use hostPorts 10000, 8080, 9100)'
    assert violation.fields == (
        "spec.containers[gateway].ports[0].hostPort",
        "spec.containers[gateway].ports[1].hostPort",
        "spec.containers[metrics].ports[0].hostPort",
    )
