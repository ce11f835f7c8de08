"""`naomi verify`: the render's claims tried on the real cluster after `pulumi up`.

The render is a model; this module owns the checks that ask the cluster itself, each a function
over a small interface so the logic runs locally against canned objects or a local Traefik:

- workloads (`check_workloads`, over `KubernetesApi`): every Deployment, StatefulSet and DaemonSet
  in the platform's namespaces rolled out and available, as `kubectl rollout status` judges it;
  RayClusters and RayServices ready by their KubeRay conditions; Jobs complete; every pod ready
  or finished; each Helm release of the render with its workloads on the cluster;
- gateway routes (`check_routes`, over `HttpClient`): through the real gateway URL with the
  exported CA, every route refuses without credentials where the gateway's basic auth is on,
  answers with them, reaches the service's own login otherwise, and carries the security headers;
- network flows (`check_flows`, over `KubernetesApi`): every declared cross-namespace pod-to-pod
  flow tried with a TCP connect from a short-lived probe pod carrying the flow's source labels, to
  a running destination pod's port, plus one connection the rendered policies deny
  (`naomi.cluster.netpol`), which must fail on the cluster too;
- admission webhooks (`check_webhooks`): the API server reaches prometheus-operator's webhooks
  (server-side dry runs of a valid and an invalid PrometheusRule);
- a smoke prediction (`check_smoke`) through the first served model's route.

`report_markdown` turns the results into a report to paste into an issue.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import ipaddress
import json
import re
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from naomi.cluster import netpol

Status = Literal["ok", "fail", "warn", "skip"]
SECTIONS = {
    "workloads": "Workloads",
    "routes": "Gateway routes",
    "flows": "Network flows",
    "webhooks": "Admission webhooks",
    "smoke": "Smoke prediction",
}

# The probe image: BusyBox's `nc -z -w` makes a bounded TCP connect and nothing else, the image
# is ~2 MB, multi-arch (amd64 and arm64 Pis) and needs no shell tools beyond BusyBox. Pinned by tag
# to the 1.37.0 release (docker.io/library/busybox, the official image); it runs as nobody.
PROBE_IMAGE = "docker.io/library/busybox:1.37.0"
PROBE_LABEL = "naomi.io/verify-probe"
PROBE_USER = 65534  # nobody in BusyBox's /etc/passwd
CONNECT_TIMEOUT_SECONDS = 3
# Labels a controller counts pods by: a probe carrying them would be taken for one of its pods
# (KubeRay reconciles a second "head" as an error and deletes surplus workers at random:
# ray-project/kuberay v1.7.0 ray-operator/controllers/ray/common/association.go and
# raycluster_controller.go reconcilePods). Flows from such sources are not probed.
CONTROLLER_LABELS = ("ray.io/cluster", "ray.io/group", "pod-template-hash", "controller-uid")
# Helm 3 stamps every object a release creates (helm/helm v3 pkg/action/validate.go setMetadataVisitor).
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"


@dataclass(frozen=True)
class Result:
    check: str  # a key of SECTIONS
    subject: str
    status: Status
    detail: str


# --- interfaces ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class HttpClient(Protocol):
    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> HttpResponse: ...


class KubernetesApi(Protocol):
    """The few API calls the checks make; objects are plain dicts as `kubectl get -o json` shows them."""

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of `kind` (Deployment, StatefulSet, DaemonSet, Job, Pod, RayCluster, RayService);
        `[]` when the kind's API is not installed."""
        ...

    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> None: ...

    def wait_for_pod(self, namespace: str, name: str, timeout_seconds: float) -> dict[str, Any]:
        """The pod once it has finished (phase Succeeded or Failed), or as it is at the deadline."""
        ...

    def pod_log(self, namespace: str, name: str) -> str: ...

    def delete_pod(self, namespace: str, name: str) -> None: ...

    def dry_run_create(self, kind: str, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """A server-side dry run of creating `manifest` (admission runs, nothing is stored): the
        object as it would be stored, or `KubernetesError` with the API server's refusal."""
        ...


class GatewayClient:
    """HTTPS to the gateway, trusting only `ca_pem` when given (else the system store); no redirects."""

    def __init__(self, ca_pem: str | None = None, timeout_seconds: float = 10.0) -> None:
        self._context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        self._timeout = timeout_seconds

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> HttpResponse:
        parts = urllib.parse.urlsplit(url)
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self._timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self._timeout)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            connection.request(method, path, body=body, headers=dict(headers or {}))
            response = connection.getresponse()
            return HttpResponse(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()


# --- readiness ---------------------------------------------------------------------------------


def _generation_observed(obj: Mapping[str, Any]) -> bool:
    generation = int((obj.get("metadata") or {}).get("generation") or 0)
    return generation <= int((obj.get("status") or {}).get("observedGeneration") or 0)


def deployment_ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """`kubectl rollout status` for a Deployment (kubernetes/kubectl v0.32.9
    pkg/polymorphichelpers/rollout_status.go DeploymentStatusViewer)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _generation_observed(obj):
        return False, "waiting for the spec update to be observed"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, "exceeded its progress deadline"
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return False, f"{updated} of {replicas} new replicas updated"
    if int(status.get("replicas") or 0) > updated:
        return False, f"{int(status.get('replicas') or 0) - updated} old replicas pending termination"
    if available < updated:
        return False, f"{available} of {updated} updated replicas available"
    return True, f"{available}/{replicas} available"


def statefulset_ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """`kubectl rollout status` for a StatefulSet (StatefulSetStatusViewer), plus available
    replicas; OnDelete sets are judged by readiness only (kubectl refuses them)."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not int(status.get("observedGeneration") or 0) or not _generation_observed(obj):
        return False, "waiting for the spec update to be observed"
    replicas = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if ready < replicas:
        return False, f"{ready}/{replicas} ready"
    if available < replicas:
        return False, f"{available}/{replicas} available"
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        if partition:
            if int(status.get("updatedReplicas") or 0) < replicas - partition:
                return False, "partitioned roll out not finished"
        elif status.get("updateRevision") != status.get("currentRevision"):
            return False, f"rolling update to {status.get('updateRevision')} not complete"
    return True, f"{available}/{replicas} available"


def daemonset_ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """`kubectl rollout status` for a DaemonSet (DaemonSetStatusViewer)."""
    status = obj.get("status") or {}
    if not _generation_observed(obj):
        return False, "waiting for the spec update to be observed"
    desired = int(status.get("desiredNumberScheduled") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    available = int(status.get("numberAvailable") or 0)
    if updated < desired:
        return False, f"{updated} of {desired} pods updated"
    if available < desired:
        return False, f"{available} of {desired} pods available"
    return True, f"{available}/{desired} available"


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def raycluster_ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """KubeRay v1.7.0 (ray-operator/apis/ray/v1/raycluster_types.go): with status conditions (the
    RayClusterStatusConditions gate, on by default) the head is `HeadPodReady` and all pods came up
    once (`RayClusterProvisioned`); the deprecated `state: ready` otherwise."""
    status = obj.get("status") or {}
    workers = f"{int(status.get('readyWorkerReplicas') or 0)}/{int(status.get('desiredWorkerReplicas') or 0)} workers ready"
    head = _condition(obj, "HeadPodReady")
    if head is not None:
        if head.get("status") != "True":
            return (
                False,
                f"head not ready ({head.get('reason') or head.get('message') or 'no reason'}); {workers}",
            )
        provisioned = _condition(obj, "RayClusterProvisioned")
        if provisioned is None or provisioned.get("status") != "True":
            return False, f"not all Ray pods have been ready yet; {workers}"
        return True, f"head ready; {workers}"
    if status.get("state") == "ready":
        return True, f"state ready; {workers}"
    return False, f"state {status.get('state') or 'unknown'}; {workers}"


def rayservice_ready(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """KubeRay v1.7.0 (ray-operator/apis/ray/v1/rayservice_types.go): condition `Ready` (serve
    endpoints > 0), which `serviceStatus: Running` mirrors in older versions."""
    ready = _condition(obj, "Ready")
    if ready is not None:
        if ready.get("status") == "True":
            return True, f"ready ({ready.get('reason') or 'serving'})"
        message = f": {ready['message']}" if ready.get("message") else ""
        return False, f"not ready ({ready.get('reason') or 'no reason'}{message})"
    if (obj.get("status") or {}).get("serviceStatus") == "Running":
        return True, "serviceStatus Running"
    return False, "no Ready condition yet"


def job_state(obj: Mapping[str, Any]) -> tuple[Status, str]:
    failed = _condition(obj, "Failed")
    if failed is not None and failed.get("status") == "True":
        return "fail", f"failed: {failed.get('reason') or 'no reason'}"
    complete = _condition(obj, "Complete")
    if complete is not None and complete.get("status") == "True":
        return "ok", "complete"
    return "warn", f"running ({int((obj.get('status') or {}).get('active') or 0)} active)"


def pod_state(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """Ready, or finished; else why not (the first waiting container's reason, e.g. CrashLoopBackOff)."""
    status = obj.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    if phase == "Succeeded":
        return True, "succeeded"
    ready = _condition(obj, "Ready")
    if phase == "Running" and ready is not None and ready.get("status") == "True":
        return True, "ready"
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting")
        terminated = (container.get("state") or {}).get("terminated")
        if waiting and waiting.get("reason") not in (None, "PodInitializing", "ContainerCreating"):
            return False, f"{phase}: container {container.get('name')} {waiting.get('reason')}"
        if terminated and terminated.get("exitCode"):
            return (
                False,
                f"{phase}: container {container.get('name')} exited {terminated.get('exitCode')} ({terminated.get('reason')})",
            )
    scheduled = _condition(obj, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        return False, f"{phase}: not scheduled ({scheduled.get('message') or scheduled.get('reason')})"
    return False, f"{phase}: not ready"


WORKLOAD_CHECKS: dict[str, Callable[[Mapping[str, Any]], tuple[bool, str]]] = {
    "Deployment": deployment_ready,
    "StatefulSet": statefulset_ready,
    "DaemonSet": daemonset_ready,
    "RayCluster": raycluster_ready,
    "RayService": rayservice_ready,
}


def _name(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _owned_by(obj: Mapping[str, Any], kinds: Iterable[str]) -> bool:
    wanted = set(kinds)
    return any(
        owner.get("kind") in wanted for owner in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def check_workloads(
    api: KubernetesApi,
    namespaces: Sequence[str],
    expected: Sequence[tuple[str, str, str]] = (),
    releases: Sequence[tuple[str, str]] = (),
) -> list[Result]:
    """Every workload in `namespaces` judged; `expected` (kind, namespace, name) from the render must
    exist; each Helm release (namespace, name) must own at least one workload."""
    results: list[Result] = []
    found: set[tuple[str, str, str]] = set()
    by_release: dict[tuple[str, str], list[bool]] = {}
    for namespace in namespaces:
        for kind, judge in WORKLOAD_CHECKS.items():
            for obj in sorted(api.list(kind, namespace), key=_name):
                name = _name(obj)[1]
                found.add((kind, namespace, name))
                ready, detail = judge(obj)
                release = ((obj.get("metadata") or {}).get("annotations") or {}).get(HELM_RELEASE_ANNOTATION)
                if release:
                    by_release.setdefault((namespace, str(release)), []).append(ready)
                    detail += f" (Helm release {release})"
                results.append(
                    Result("workloads", f"{kind} {namespace}/{name}", "ok" if ready else "fail", detail)
                )
        for job in sorted(api.list("Job", namespace), key=_name):
            state, detail = job_state(job)
            if _owned_by(job, ["CronJob"]) and state != "fail":
                continue  # a CronJob's runs come and go: only a failed one is news
            results.append(Result("workloads", f"Job {namespace}/{_name(job)[1]}", state, detail))
        ready_pods = 0
        for pod in sorted(api.list("Pod", namespace), key=_name):
            if _owned_by(pod, ["Job"]) and (pod.get("status") or {}).get("phase") == "Failed":
                continue  # a Job's retried attempts; the Job's own state is reported
            ready, detail = pod_state(pod)
            if ready:
                ready_pods += 1
            else:
                results.append(Result("workloads", f"Pod {namespace}/{_name(pod)[1]}", "fail", detail))
        results.append(Result("workloads", f"pods in {namespace}", "ok", f"{ready_pods} ready or finished"))
    for kind, namespace, name in expected:
        if (kind, namespace, name) not in found:
            results.append(
                Result("workloads", f"{kind} {namespace}/{name}", "fail", "in the render, not on the cluster")
            )
    for namespace, release in releases:
        states = by_release.get((namespace, release))
        if not states:
            results.append(
                Result(
                    "workloads",
                    f"Helm release {namespace}/{release}",
                    "fail",
                    "no workload of this release found",
                )
            )
        else:
            ready_count = sum(states)
            status: Status = "ok" if ready_count == len(states) else "fail"
            results.append(
                Result(
                    "workloads",
                    f"Helm release {namespace}/{release}",
                    status,
                    f"{ready_count}/{len(states)} workloads ready",
                )
            )
    return results


# --- gateway routes ------------------------------------------------------------------------------

_PATH_PREFIX = re.compile(r"(?:PathPrefix|Path)\(`([^`]*)`\)")


@dataclass(frozen=True)
class GatewayRoute:
    """One rendered IngressRoute as a user meets it: its prefixes and what the gateway does there."""

    name: str
    prefixes: tuple[str, ...]
    realm: str | None  # the basic-auth realm, None without gateway auth
    strip_prefixes: tuple[str, ...]
    removes_authorization: bool
    response_headers: Mapping[str, str]  # security headers the gateway adds to every answer
    service: str  # namespace/name:port

    @property
    def auth(self) -> bool:
        return self.realm is not None


def expected_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """Response headers a Traefik `headers` middleware sets, as unrolled/secure writes them
    (traefik/traefik v3.7.9 pkg/middlewares/headers/secure.go passes these options through)."""
    expected: dict[str, str] = {}
    if headers.get("stsSeconds"):
        value = f"max-age={int(headers['stsSeconds'])}"
        if headers.get("stsIncludeSubdomains"):
            value += "; includeSubDomains"
        if headers.get("stsPreload"):
            value += "; preload"
        expected["Strict-Transport-Security"] = value
    if headers.get("contentTypeNosniff"):
        expected["X-Content-Type-Options"] = "nosniff"
    if headers.get("customFrameOptionsValue"):
        expected["X-Frame-Options"] = str(headers["customFrameOptionsValue"])
    elif headers.get("frameDeny"):
        expected["X-Frame-Options"] = "DENY"
    if headers.get("referrerPolicy"):
        expected["Referrer-Policy"] = str(headers["referrerPolicy"])
    if headers.get("contentSecurityPolicy"):
        expected["Content-Security-Policy"] = str(headers["contentSecurityPolicy"])
    for name, value in (headers.get("customResponseHeaders") or {}).items():
        if value:
            expected[str(name)] = str(value)
    return expected


def gateway_routes(objects: Sequence[Mapping[str, Any]]) -> list[GatewayRoute]:
    """The rendered IngressRoutes with their middlewares resolved (path-prefix rules only)."""
    middlewares = {_name(obj): obj.get("spec") or {} for obj in objects if obj.get("kind") == "Middleware"}
    routes = []
    for obj in sorted((o for o in objects if o.get("kind") == "IngressRoute"), key=_name):
        namespace, name = _name(obj)
        for index, rule in enumerate((obj.get("spec") or {}).get("routes") or []):
            match = str(rule.get("match") or "")
            # `Path(/x) || PathPrefix(/x/)` (infra/gateway.py) is the route prefix /x.
            prefixes = tuple(dict.fromkeys(p.rstrip("/") or "/" for p in _PATH_PREFIX.findall(match)))
            if not prefixes or _PATH_PREFIX.sub("", match).replace("||", "").strip():
                raise ValueError(
                    f"IngressRoute {namespace}/{name}: only Path/PathPrefix rules joined by || are checked ({match})"
                )
            realm, strip, remove, headers = None, (), False, {}
            for reference in rule.get("middlewares") or []:
                spec = middlewares.get(
                    (str(reference.get("namespace") or namespace), str(reference["name"])), {}
                )
                if "basicAuth" in spec:
                    realm = str(spec["basicAuth"].get("realm") or "traefik")
                    remove = remove or bool(spec["basicAuth"].get("removeHeader"))
                if "stripPrefix" in spec:
                    strip = tuple(spec["stripPrefix"].get("prefixes") or ())
                if "headers" in spec:
                    headers.update(expected_headers(spec["headers"]))
            service = (rule.get("services") or [{}])[0]
            routes.append(
                GatewayRoute(
                    name=name if index == 0 else f"{name}#{index}",
                    prefixes=prefixes,
                    realm=realm,
                    strip_prefixes=strip,
                    removes_authorization=remove,
                    response_headers=headers,
                    service=f"{service.get('namespace') or namespace}/{service.get('name')}:{service.get('port')}",
                )
            )
    return routes


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _missing_headers(route: GatewayRoute, response: HttpResponse) -> list[str]:
    return [
        f"{name}: {value}" for name, value in route.response_headers.items() if response.header(name) != value
    ]


_UNREACHABLE = {502: "bad gateway", 503: "no ready backend", 504: "backend timed out"}


def check_routes(
    client: HttpClient, base_url: str, routes: Sequence[GatewayRoute], users: Mapping[str, str]
) -> list[Result]:
    """Every prefix of every route through the gateway: refused without (and with wrong)
    credentials where the gateway's auth is on, answered with them; without gateway auth the
    service itself must answer (its own login); security headers on every answer."""
    results = []
    user, password = sorted(users.items())[0] if users else ("", "")
    realms = {route.realm for route in routes if route.realm is not None}
    for route in routes:
        for prefix in route.prefixes:
            subject = f"{prefix} ({route.name} -> {route.service})"
            try:
                problems, seen = _route_problems(
                    client, base_url.rstrip("/") + prefix + "/", route, (user, password), realms
                )
            except (OSError, http.client.HTTPException) as error:
                problems, seen = [f"{type(error).__name__}: {_first_line(error)}"], []
            results.append(
                Result("routes", subject, "fail" if problems else "ok", "; ".join(problems or seen))
            )
    return results


def _route_problems(
    client: HttpClient, url: str, route: GatewayRoute, login: tuple[str, str], realms: set[str]
) -> tuple[list[str], list[str]]:
    user, password = login
    problems: list[str] = []
    seen: list[str] = []
    anonymous = client.request("GET", url)
    if route.auth:
        challenge = f'Basic realm="{route.realm}"'
        if anonymous.status != 401 or anonymous.header("WWW-Authenticate") != challenge:
            problems.append(f"without credentials: HTTP {anonymous.status} (expected 401 {challenge})")
        wrong = client.request("GET", url, headers=basic_auth(user, password + "-wrong"))
        if wrong.status != 401:
            problems.append(f"with a wrong password: HTTP {wrong.status} (expected 401)")
        if not user:
            problems.append("no gateway user in the stack outputs")
            return problems, seen
        answer = client.request("GET", url, headers=basic_auth(user, password))
        if answer.status == 401:
            problems.append(f"with {user}'s password: HTTP 401")
        seen.append(f"401 without credentials, HTTP {answer.status} as {user}")
    else:
        answer = anonymous
        if answer.status == 401 and answer.header("WWW-Authenticate") in {
            f'Basic realm="{r}"' for r in realms
        }:
            problems.append("the gateway asked for credentials on a route without gateway auth")
        seen.append(f"the service answered HTTP {answer.status} (its own login)")
    if answer.status in _UNREACHABLE:
        problems.append(f"HTTP {answer.status}: {_UNREACHABLE[answer.status]}")
    missing = _missing_headers(route, answer)
    if missing:
        # Traefik's own 404 (no router matched) carries none of the middleware's headers.
        problems.append(
            f"HTTP {answer.status} without {', '.join(missing)} (not routed through the middlewares?)"
        )
    return problems, seen


# --- smoke prediction ----------------------------------------------------------------------------


def smoke_request(health: Mapping[str, Any]) -> bytes:
    """A one-row request of the shape a serving app's `/healthz` describes (QoE windows, or the
    generic model server's `inputs` tensor), all zeros."""
    described = health.get("input") or {}
    if "window" in described and "features" in described:
        window = [[0.0] * int(described["features"]) for _ in range(int(described["window"]))]
        return json.dumps({"windows": [window]}).encode()
    if "shape" in described:
        shape = [1 if size in (-1, None) else int(size) for size in described["shape"]]
        value: Any = 0.0
        for size in reversed(shape[1:]):
            value = [value] * size
        return json.dumps({"inputs": [value]}).encode()
    raise ValueError(f"/healthz does not describe the input: {json.dumps(dict(health))[:200]}")


def check_smoke(client: HttpClient, base_url: str, route: GatewayRoute, users: Mapping[str, str]) -> Result:
    """GET <route>/healthz for the input shape, POST <route>/predict one row of zeros."""
    subject = f"{route.prefixes[0]}/predict"
    headers = basic_auth(*sorted(users.items())[0]) if users else {}
    base = base_url.rstrip("/") + route.prefixes[0]
    health = client.request("GET", f"{base}/healthz", headers=headers)
    if health.status == 503:
        return Result(
            "smoke",
            subject,
            "warn",
            f"serving is up without a model yet: {health.body[:200].decode(errors='replace')}",
        )
    if health.status != 200:
        return Result("smoke", subject, "fail", f"GET /healthz: HTTP {health.status}")
    try:
        body = smoke_request(json.loads(health.body))
    except ValueError as error:
        return Result("smoke", subject, "fail", str(error))
    answer = client.request(
        "POST", f"{base}/predict", headers={**headers, "Content-Type": "application/json"}, body=body
    )
    if answer.status != 200:
        return Result(
            "smoke",
            subject,
            "fail",
            f"POST /predict: HTTP {answer.status} {answer.body[:200].decode(errors='replace')}",
        )
    try:
        document = json.loads(answer.body)
        predictions = document["predictions"]
    except (ValueError, KeyError, TypeError):
        return Result("smoke", subject, "fail", "POST /predict: no predictions in the answer")
    return Result(
        "smoke",
        subject,
        "ok",
        f"model {document.get('model')} version {document.get('version')}: {json.dumps(predictions)[:80]}",
    )


# --- network flows -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodSide:
    namespace: str
    labels: Mapping[str, str]

    def describe(self) -> str:
        selector = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())) or "all pods"
        return f"{self.namespace} [{selector}]"

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.namespace, tuple(sorted(self.labels.items()))


@dataclass(frozen=True)
class ProbeTarget:
    """One TCP connect a probe makes; `expect_open` False for the undeclared connection."""

    flow: str
    ip: str
    port: int
    expect_open: bool = True


@dataclass
class Probe:
    namespace: str
    labels: dict[str, str]
    targets: list[ProbeTarget] = field(default_factory=list)
    run: str = ""  # one id per `naomi verify` run: a pod left by an earlier run never collides

    @property
    def name(self) -> str:
        digest = hashlib.sha256(json.dumps([self.namespace, sorted(self.labels.items())]).encode())
        return "-".join(part for part in ("naomi-verify", digest.hexdigest()[:10], self.run) if part)


def _side(raw: Mapping[str, Any]) -> PodSide | None:
    pods = raw.get("pods")
    return PodSide(str(pods["namespace"]), dict(pods.get("labels") or {})) if pods else None


def probe_script(targets: Sequence[ProbeTarget]) -> str:
    """One line per target: `naomi-probe <ip> <port> open|closed` (addresses validated first).

    `nc -z` (connect, send nothing, exit 0 when connected) is BusyBox's nc-1.10 compatible applet
    (networking/nc_bloaty.c, NC_110_COMPAT, on in defconfig, which the official image builds);
    builds without it (Debian's) refuse the option, and the probe says so instead of reporting
    every port closed."""
    lines = [
        "if nc -z -w 1 127.0.0.1 1 2>&1 | grep -q 'invalid option'; then"
        " echo 'naomi-probe-error: this nc has no -z'; exit 3; fi"
    ]
    for target in targets:
        ip = str(ipaddress.ip_address(target.ip))
        port = int(target.port)
        lines.append(
            f"if nc -z -w {CONNECT_TIMEOUT_SECONDS} {ip} {port}; then r=open; else r=closed; fi; "
            f'echo "naomi-probe {ip} {port} $r"'
        )
    return "\n".join(lines) + "\n"


def probe_pod(probe: Probe, image: str = PROBE_IMAGE) -> dict[str, Any]:
    """A Pod the restricted Pod Security level admits: non-root, no privilege escalation, no
    capabilities, RuntimeDefault seccomp, read-only root, requests and limits; never Ready (a
    readiness gate nobody sets), so no Service selecting its labels sends it traffic; gone after
    `activeDeadlineSeconds` even if this process dies."""
    script = probe_script(probe.targets)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": probe.name,
            "namespace": probe.namespace,
            "labels": {**probe.labels, PROBE_LABEL: "true"},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": 60 + len(probe.targets) * (CONNECT_TIMEOUT_SECONDS + 1),
            "readinessGates": [{"conditionType": "naomi.io/never-ready"}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": PROBE_USER,
                "runAsGroup": PROBE_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", script],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "100m", "memory": "32Mi"},
                    },
                }
            ],
        },
    }


@dataclass(frozen=True)
class ProbeLog:
    outcomes: Mapping[tuple[str, int], bool]  # (ip, port) -> connected
    error: str | None = None


def parse_probe_log(log: str) -> ProbeLog:
    outcomes: dict[tuple[str, int], bool] = {}
    for line in log.splitlines():
        if line.startswith("naomi-probe-error: "):
            return ProbeLog(outcomes, line.removeprefix("naomi-probe-error: "))
        parts = line.split()
        if len(parts) == 4 and parts[0] == "naomi-probe" and parts[2].isdigit():
            outcomes[(parts[1], int(parts[2]))] = parts[3] == "open"
    return ProbeLog(outcomes)


def _running_pod(api: KubernetesApi, side: PodSide) -> dict[str, Any] | None:
    pods = [
        pod
        for pod in api.list("Pod", side.namespace, side.labels)
        if (pod.get("status") or {}).get("phase") == "Running"
        and (pod.get("status") or {}).get("podIP")
        and PROBE_LABEL not in ((pod.get("metadata") or {}).get("labels") or {})
    ]
    return sorted(pods, key=_name)[0] if pods else None


def _pod_port(pod: Mapping[str, Any], port: int | str) -> int | None:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == port and (declared.get("protocol") or "TCP") == "TCP":
                return int(declared["containerPort"])
    return None


def _as_netpol_pod(pod: Mapping[str, Any]) -> netpol.Pod:
    namespace, name = _name(pod)
    ports = tuple(
        netpol.ContainerPort(int(p["containerPort"]), str(p.get("protocol") or "TCP"), p.get("name"))
        for container in (pod.get("spec") or {}).get("containers") or []
        for p in container.get("ports") or []
    )
    labels = {str(k): str(v) for k, v in ((pod.get("metadata") or {}).get("labels") or {}).items()}
    return netpol.Pod(namespace, name, labels, ports, ip=(pod.get("status") or {}).get("podIP"))


def plan_probes(
    api: KubernetesApi,
    flows: Sequence[Mapping[str, Any]],
    policies: netpol.PolicySet | None = None,
    namespaces: Sequence[str] = (),
    run: str = "",
) -> tuple[list[Probe], list[Result]]:
    """Probes for every declared cross-namespace pod-to-pod TCP flow and, when `policies` are
    given, one connection they deny: a probe without labels in one of `namespaces` (the stack's)
    to a destination of a declared flow. Results for the flows that cannot be tried."""
    probes: dict[tuple[str, tuple[tuple[str, str], ...]], Probe] = {}
    results: list[Result] = []
    destinations: list[tuple[dict[str, Any], int, str]] = []
    for flow in flows:
        source, destination = _side(flow["source"]), _side(flow["destination"])
        if source is None or destination is None or source.namespace == destination.namespace:
            continue
        subject = f"{source.describe()} -> {destination.describe()}"
        controlled = sorted(set(source.labels) & set(CONTROLLER_LABELS))
        if controlled:
            results.append(
                Result(
                    "flows",
                    subject,
                    "skip",
                    f"a probe labelled {', '.join(controlled)} would be taken for a controller's pod",
                )
            )
            continue
        pod = _running_pod(api, destination)
        if pod is None:
            results.append(
                Result(
                    "flows", subject, "warn", "no running destination pod to try (none selected right now)"
                )
            )
            continue
        for port in flow.get("ports") or []:
            label = f"{subject} {port['port']}/{port.get('protocol', 'TCP')}"
            if port.get("protocol", "TCP") != "TCP":
                results.append(
                    Result("flows", label, "skip", "only TCP is tried (a UDP send proves nothing)")
                )
                continue
            number = _pod_port(pod, port["port"])
            if number is None:
                results.append(
                    Result("flows", label, "fail", f"pod {_name(pod)[1]} declares no TCP port {port['port']}")
                )
                continue
            ip = str((pod.get("status") or {})["podIP"])
            probe = probes.setdefault(source.key, Probe(source.namespace, dict(source.labels), run=run))
            probe.targets.append(ProbeTarget(f"{label}: {flow.get('why')}", ip, number))
            destinations.append((pod, number, destination.namespace))
    if policies is not None:
        undeclared = _undeclared_probe(destinations, sorted(namespaces), policies)
        if undeclared is None:
            results.append(
                Result(
                    "flows",
                    "undeclared connection",
                    "warn",
                    "no connection the rendered policies deny was found to try",
                )
            )
        else:
            # A probe without labels is also the "all pods" source of its namespace (DNS flows).
            probe = probes.setdefault((undeclared.namespace, ()), Probe(undeclared.namespace, {}, run=run))
            probe.targets += undeclared.targets
    return list(probes.values()), results


def _undeclared_probe(
    destinations: Sequence[tuple[dict[str, Any], int, str]],
    namespaces: Sequence[str],
    policies: netpol.PolicySet,
) -> Probe | None:
    for pod, port, destination_namespace in destinations:
        target = _as_netpol_pod(pod)
        for namespace in namespaces:
            if namespace == destination_namespace:
                continue
            source = netpol.Pod(namespace, "naomi-verify-undeclared", {PROBE_LABEL: "true"})
            decision = policies.decide(source, target, port)
            if not decision.allowed:
                flow = f"undeclared: {namespace} [no labels] -> {destination_namespace}/{_name(pod)[1]} {port}/TCP (the model: denied)"
                return Probe(namespace, {}, [ProbeTarget(flow, str(target.ip), port, expect_open=False)])
    return None


def run_probes(api: KubernetesApi, probes: Sequence[Probe], image: str = PROBE_IMAGE) -> list[Result]:
    """Create every probe pod (they run side by side), wait for each to finish and read its log,
    then delete them all, whatever happened."""
    logs: dict[str, ProbeLog] = {}
    created: list[Probe] = []
    attempted: list[Probe] = []
    try:
        for probe in probes:
            attempted.append(probe)  # a create that timed out may still have made the pod
            try:
                api.create_pod(probe.namespace, probe_pod(probe, image))
                created.append(probe)
            except Exception as error:  # an API refusal (admission, quota) is this probe's result
                logs[probe.name] = ProbeLog({}, _first_line(error))
        for probe in created:
            deadline = float(probe_pod(probe, image)["spec"]["activeDeadlineSeconds"]) + 30
            try:
                phase = str(
                    (api.wait_for_pod(probe.namespace, probe.name, deadline).get("status") or {}).get("phase")
                )
                logs[probe.name] = (
                    parse_probe_log(api.pod_log(probe.namespace, probe.name))
                    if phase in ("Succeeded", "Failed")
                    else ProbeLog({}, f"still {phase} after {deadline:.0f} s")
                )
            except Exception as error:
                logs[probe.name] = ProbeLog({}, _first_line(error))
    finally:
        for probe in attempted:
            # Best effort: activeDeadlineSeconds ends the pod anyway.
            with contextlib.suppress(Exception):
                api.delete_pod(probe.namespace, probe.name)
    return [_probe_result(probe, target, logs[probe.name]) for probe in probes for target in probe.targets]


def _probe_result(probe: Probe, target: ProbeTarget, log: ProbeLog) -> Result:
    where = f"{target.ip}:{target.port}"
    connected = log.outcomes.get((target.ip, target.port))
    if log.error is not None or connected is None:
        reason = log.error or f"no line for {where} in its log"
        return Result("flows", target.flow, "fail", f"probe pod {probe.namespace}/{probe.name}: {reason}")
    if connected == target.expect_open:
        return Result(
            "flows",
            target.flow,
            "ok",
            f"{where} " + ("connected" if connected else "not reachable, as the policies say"),
        )
    if target.expect_open:
        return Result("flows", target.flow, "fail", f"{where} did not connect (refused or timed out)")
    return Result(
        "flows", target.flow, "fail", f"{where} connected: the cluster allows what the rendered policies deny"
    )


def check_flows(
    api: KubernetesApi,
    flows: Sequence[Mapping[str, Any]],
    policies: netpol.PolicySet | None = None,
    namespaces: Sequence[str] = (),
    *,
    image: str = PROBE_IMAGE,
    run: str | None = None,
) -> list[Result]:
    probes, results = plan_probes(
        api, flows, policies, namespaces, secrets.token_hex(3) if run is None else run
    )
    return [*results, *run_probes(api, probes, image)]


# --- admission webhooks --------------------------------------------------------------------------

# prometheus-operator v0.93.1 (kube-prometheus-stack 88.5.3) pkg/admission/admission.go: the
# mutating webhook stamps this annotation on every PrometheusRule it sees, the validating one
# refuses rules Prometheus could not load. Both are failurePolicy Ignore in the chart, so an
# unreachable webhook is silent: the API server stores whatever it gets.
VALIDATED_ANNOTATION = "prometheus-operator-validated"


def webhook_rule(namespace: str, expression: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "naomi-verify-webhook", "namespace": namespace},
        "spec": {
            "groups": [{"name": "naomi-verify", "rules": [{"alert": "NaomiVerify", "expr": expression}]}]
        },
    }


def check_webhooks(api: KubernetesApi, namespace: str) -> list[Result]:
    """The API server reaches prometheus-operator's admission webhooks (through the CNI, from the
    control plane's host network): a dry-run PrometheusRule comes back annotated by the mutating
    one, and an invalid one is refused by the validating one (the API server words a webhook's
    refusal `admission webhook "<name>" denied the request`, k8s.io/apiserver
    pkg/admission/plugin/webhook/errors/statuserror.go, only when the webhook answered)."""
    subject = f"prometheus-operator webhooks (dry-run PrometheusRule in {namespace})"
    try:
        stored = api.dry_run_create("PrometheusRule", namespace, webhook_rule(namespace, "vector(1)"))
    except KubernetesError as error:
        if error.status == 404:
            return [Result("webhooks", subject, "skip", "no PrometheusRule API (monitoring not installed)")]
        return [Result("webhooks", subject, "fail", f"a valid rule was refused: {error}")]
    results = []
    annotations = (stored.get("metadata") or {}).get("annotations") or {}
    if annotations.get(VALIDATED_ANNOTATION) == "true":
        results.append(
            Result("webhooks", f"{subject}: mutate", "ok", f"the rule came back with {VALIDATED_ANNOTATION}")
        )
    else:
        results.append(
            Result(
                "webhooks",
                f"{subject}: mutate",
                "fail",
                f"no {VALIDATED_ANNOTATION} annotation: the API server did not reach the webhook",
            )
        )
    try:
        api.dry_run_create("PrometheusRule", namespace, webhook_rule(namespace, "rate("))
    except KubernetesError as error:
        if "denied the request" in str(error):
            results.append(
                Result("webhooks", f"{subject}: validate", "ok", "an invalid rule was refused by the webhook")
            )
        else:
            results.append(
                Result(
                    "webhooks", f"{subject}: validate", "fail", f"refused, but not by the webhook: {error}"
                )
            )
    else:
        results.append(
            Result(
                "webhooks",
                f"{subject}: validate",
                "fail",
                "an invalid rule (expr 'rate(') was accepted: the API server did not reach the webhook",
            )
        )
    return results


# --- report --------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def report_markdown(stack: str, results: Sequence[Result], notes: Sequence[str] = ()) -> str:
    """The results as Markdown: a summary line, then one table per check."""
    counts = {
        status: sum(1 for r in results if r.status == status) for status in ("ok", "fail", "warn", "skip")
    }
    lines = [
        f"# naomi verify: {stack}",
        "",
        f"{len(results)} checks: {counts['ok']} ok, {counts['fail']} failed, {counts['warn']} warnings, {counts['skip']} skipped",
    ]
    lines += [f"- {note}" for note in notes]
    for check, title in SECTIONS.items():
        section = [r for r in results if r.check == check]
        if not section:
            continue
        lines += ["", f"## {title}", "", "| status | what | detail |", "|---|---|---|"]
        lines += [f"| {r.status} | {_cell(r.subject)} | {_cell(r.detail)} |" for r in section]
    return "\n".join(lines) + "\n"


def failed(results: Iterable[Result]) -> bool:
    return any(result.status == "fail" for result in results)


# --- stack outputs and the cluster -------------------------------------------------------------


class VerifyError(RuntimeError):
    """A one-line reason `naomi verify` cannot start (exit code 2)."""


def read_stack_outputs(
    stack: str,
    project_dir: Path,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    *,
    reader: str = "naomi verify",
    error: type[Exception] = VerifyError,
) -> dict[str, Any]:
    """`pulumi stack output --stack X --show-secrets --json`, as `naomi credentials` reads it;
    a problem raises `error` in one line naming `reader` (the command that needs the outputs)."""
    pulumi_cli = shutil.which("pulumi")
    if pulumi_cli is None:
        raise error(
            f"pulumi CLI not found; {reader} reads: pulumi stack output --stack {stack} --show-secrets --json"
        )
    result = run(
        [pulumi_cli, "stack", "output", "--stack", stack, "--show-secrets", "--json"],
        cwd=project_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        text = (result.stderr or result.stdout or "").strip().splitlines()
        raise error(f"pulumi stack output failed: {text[0] if text else f'exit code {result.returncode}'}")
    try:
        outputs = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise error("pulumi stack output did not print JSON") from None
    if not isinstance(outputs, dict):
        raise error("pulumi stack output did not print a JSON object")
    return outputs


def kubeconfig_text(outputs: Mapping[str, Any], path: Path | None) -> str:
    if path is not None:
        if not path.is_file():
            raise VerifyError(f"--kubeconfig: no such file: {path}")
        return path.read_text()
    exported = outputs.get("kubeconfig")
    if isinstance(exported, str) and exported.strip():
        return exported
    raise VerifyError("no kubeconfig: the stack exports none and --kubeconfig was not given")


def gateway_base_url(outputs: Mapping[str, Any]) -> str:
    """scheme://host:port of the gateway, from the exported URLs (all share it)."""
    urls = [str(url) for url in (outputs.get("urls") or {}).values()]
    if outputs.get("mlflowTrackingUri"):
        urls.append(str(outputs["mlflowTrackingUri"]))
    bases = {f"{p.scheme}://{p.netloc}" for p in map(urllib.parse.urlsplit, urls) if p.scheme and p.netloc}
    if len(bases) != 1:
        raise VerifyError(
            f"cannot tell the gateway URL from the stack outputs (urls: {sorted(bases) or 'none'})"
        )
    return bases.pop()


RESOURCE_PATHS = {  # kind -> the API path of its namespaced collection
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{namespace}/statefulsets",
    "DaemonSet": "/apis/apps/v1/namespaces/{namespace}/daemonsets",
    "Job": "/apis/batch/v1/namespaces/{namespace}/jobs",
    "Pod": "/api/v1/namespaces/{namespace}/pods",
    "RayCluster": "/apis/ray.io/v1/namespaces/{namespace}/rayclusters",
    "RayService": "/apis/ray.io/v1/namespaces/{namespace}/rayservices",
    "PrometheusRule": "/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules",
}


class KubernetesError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ClusterApi:
    """`KubernetesApi` over the REST API, with the official Python client (an optional dependency)
    for kubeconfig handling, authentication and TLS. Plain paths and JSON rather than the typed
    API classes, whose signatures changed between client generations (kubernetes 37 is generated
    with pydantic models)."""

    def __init__(self, kubeconfig: str) -> None:
        import yaml

        try:
            from kubernetes import config
        except ImportError:
            raise VerifyError(
                "the kubernetes Python client is not installed: pip install 'kubernetes>=31' "
                "(or install naomi with the workloads extra)"
            ) from None
        try:
            self._client: Any = config.new_client_from_config_dict(yaml.safe_load(kubeconfig))  # type: ignore[no-untyped-call]
        except Exception as error:
            raise VerifyError(f"kubeconfig not usable: {_first_line(error)}") from None

    def _call(
        self, method: str, path: str, *, query: Mapping[str, str] | None = None, body: Any = None
    ) -> bytes:
        request = self._client.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            # The client's own calls (read_namespaced_pod_log too) pick application/json.
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*request, _request_timeout=30)
        data = bytes(response.read() or b"")
        if not 200 <= int(response.status) < 300:
            try:
                message = str(json.loads(data).get("message") or "")
            except ValueError:
                message = data[:200].decode(errors="replace")
            raise KubernetesError(int(response.status), message or str(response.reason))
        return data

    def list(
        self, kind: str, namespace: str, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
        try:
            data = self._call(
                "GET",
                RESOURCE_PATHS[kind].format(namespace=namespace),
                query={"labelSelector": selector} if selector else None,
            )
        except KubernetesError as error:
            if error.status == 404:
                return []  # the kind's API (a CRD) is not installed
            raise
        return list(json.loads(data).get("items") or [])

    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        self._call("POST", RESOURCE_PATHS["Pod"].format(namespace=namespace), body=dict(manifest))

    def _pod(self, namespace: str, name: str) -> str:
        return RESOURCE_PATHS["Pod"].format(namespace=namespace) + "/" + urllib.parse.quote(name)

    def wait_for_pod(self, namespace: str, name: str, timeout_seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_seconds
        while True:
            pod: dict[str, Any] = json.loads(self._call("GET", self._pod(namespace, name)))
            if (pod.get("status") or {}).get("phase") in (
                "Succeeded",
                "Failed",
            ) or time.monotonic() > deadline:
                return pod
            time.sleep(1)  # polling the API server, bounded by the deadline

    def pod_log(self, namespace: str, name: str) -> str:
        return self._call("GET", self._pod(namespace, name) + "/log").decode(errors="replace")

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call("DELETE", self._pod(namespace, name), body={"gracePeriodSeconds": 0})

    def dry_run_create(self, kind: str, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        path = RESOURCE_PATHS[kind].format(namespace=namespace)
        stored: dict[str, Any] = json.loads(
            self._call("POST", path, query={"dryRun": "All"}, body=dict(manifest))
        )
        return stored


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- the whole run -------------------------------------------------------------------------------

NETWORK_POLICIES = "naomi:platform:NetworkPolicies"


@dataclass(frozen=True)
class Expectations:
    """What the render says the cluster holds (evaluated in-process, as `naomi render` does)."""

    namespaces: tuple[str, ...]
    workloads: tuple[tuple[str, str, str], ...]  # (kind, namespace, name) of our own workloads
    releases: tuple[tuple[str, str], ...]  # (namespace, release) of the Helm releases
    routes: tuple[GatewayRoute, ...]
    flows: tuple[Mapping[str, Any], ...]
    policies: netpol.PolicySet
    served_models: tuple[str, ...]  # serving.models[].name in config order
    rule_namespace: str | None  # where the stack renders a PrometheusRule (monitoring on)
    notes: tuple[str, ...] = ()  # for the report: what the render could not say

    def smoke_route(self) -> GatewayRoute | None:
        for model in self.served_models:
            for route in self.routes:
                if f"/serving/{model}" in route.prefixes:
                    return route
        return None


def expectations(evaluation: Any, rendered: Any) -> Expectations:
    """From an `Evaluation` and its `Rendered` tree (typed loosely: the render engine imports Pulumi)."""
    from naomi.cluster.checks import cluster_model

    objects: list[Mapping[str, Any]] = list(rendered.kubernetes)
    model = cluster_model(rendered)  # ours, the charts' (when the render has them), the operators'
    namespaces = tuple(sorted(_name(obj)[1] for obj in objects if obj.get("kind") == "Namespace"))
    workloads = tuple(
        sorted(
            {
                (item.kind, item.namespace, item.name)
                for item in model.objects
                if item.kind in WORKLOAD_CHECKS and not item.origin.startswith("operator:")
            }
        )
    )
    missing = list(getattr(rendered, "charts_missing", None) or [])
    notes = (
        (f"charts not in the render (not cached): {', '.join(missing)}; their workloads are judged as found",)
        if missing
        else ()
    )
    releases = tuple(sorted((str(doc.get("namespace")), str(doc.get("release"))) for doc in rendered.helm))
    flows = tuple(
        flow for outputs in evaluation.outputs_of(NETWORK_POLICIES) for flow in outputs.get("flows") or []
    )
    serving = json.loads(evaluation.config.get("naomi:serving") or "{}")
    return Expectations(
        namespaces=namespaces,
        workloads=workloads,
        releases=releases,
        routes=tuple(gateway_routes(objects)),
        flows=flows,
        policies=netpol.PolicySet(model.network_policies, model.namespaces),
        served_models=tuple(str(m["name"]) for m in serving.get("models") or []),
        rule_namespace=next((_name(o)[0] for o in objects if o.get("kind") == "PrometheusRule"), None),
        notes=notes,
    )


def _guarded(check: str, run: Callable[[], list[Result]]) -> list[Result]:
    """A check that cannot run (API or network error) is one failed row, not a traceback."""
    try:
        return run()
    except Exception as error:
        return [Result(check, "check could not run", "fail", f"{type(error).__name__}: {_first_line(error)}")]


def verify(
    expected: Expectations,
    api: KubernetesApi,
    client: HttpClient,
    base_url: str,
    users: Mapping[str, str],
    *,
    flows: bool = True,
    probe_image: str = PROBE_IMAGE,
) -> list[Result]:
    """Every check, in report order."""
    results = _guarded(
        "workloads", lambda: check_workloads(api, expected.namespaces, expected.workloads, expected.releases)
    )
    results += _guarded("routes", lambda: check_routes(client, base_url, expected.routes, users))
    if flows:
        results += _guarded(
            "flows",
            lambda: check_flows(
                api, expected.flows, expected.policies, expected.namespaces, image=probe_image
            ),
        )
    else:
        results.append(Result("flows", "network flows", "skip", "--no-flows: no probe pods created"))
    if expected.rule_namespace is None:
        results.append(
            Result("webhooks", "admission webhooks", "skip", "the stack renders no PrometheusRule")
        )
    else:
        namespace = expected.rule_namespace
        results += _guarded("webhooks", lambda: check_webhooks(api, namespace))
    route = expected.smoke_route()
    if route is None:
        results.append(Result("smoke", "served model", "skip", "the stack serves no model"))
    else:
        results += _guarded("smoke", lambda: [check_smoke(client, base_url, route, users)])
    return results
