"""The objects KubeRay 1.7.0 and Flyte 1.16.8 create from our resources, as plain manifests.

Pure functions over manifests (dicts), no I/O. `expand_ray_cluster`, `expand_ray_service` and
`expand_ray_job` return what the KubeRay operator creates for a custom resource: the head Pod and
one Pod per worker replica (labels, the generated `ray start` command line, injected env, ports,
probes, the `wait-gcs-ready` init container, the autoscaler sidecar), the head and serve Services,
the autoscaler's ServiceAccount/Role/RoleBinding, the auth-token Secret and, for a RayJob, the
submitter Job. `flyte_ray_job` returns the RayJob that Flyte's Ray plugin builds for a task of a
given Ray shape and `flyte_task_pod` the Pod of a plain container task, both from the platform's
Flyte plugin configuration. Every modelled behaviour names its upstream source (repository, path,
function, tag); what the model leaves out is refused with `NotImplementedError` rather than
guessed. Names the API server or the operator randomises carry a stand-in suffix of digits
(`00000`, then `00001`... for further worker replicas): Kubernetes' random alphabet has no `0`,
so a stand-in never collides with a real name.

Sources: github.com/ray-project/kuberay at tag v1.7.0 (`ray-operator/controllers/ray/...`, below
"kuberay:<path>") and github.com/flyteorg/flyte at tag v1.16.8 (`flyteplugins/go/tasks/...`,
below "flyte:<path>"). The operator runs with the kuberay-operator 1.7.0 chart's defaults (no
`env`, `defaultContainerEnvs`, sidecars or default pod labels; feature gates as in its
values.yaml: RayMultiHostIndexing on, RayClusterMTLS, RayClusterHistoryServer and
RayClusterNetworkPolicy off), which is what `infra.ray.operator_values` leaves them at.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

Manifest = dict[str, Any]

KUBERAY_VERSION = "v1.7.0"  # kuberay:utils/constant.go KUBERAY_VERSION
STAND_IN_SUFFIX = "00000"  # in place of rand.String(5) / the API server's generateName suffix
CLUSTER_DOMAIN = "cluster.local"  # kuberay:utils/util.go DefaultDomainName (CLUSTER_DOMAIN unset)

# kuberay:utils/constant.go
GCS_PORT = 6379
DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
METRICS_PORT = 8080
SERVE_PORT = 8000
DASHBOARD_AGENT_PORT = 52365
RAY_CONTAINER = 0  # RayContainerIndex: the Ray container is the first container
BASH = ["/bin/bash", "-c", "--"]  # utils.GetContainerCommand([]) without ENABLE_LOGIN_SHELL
WGET_HEALTH = "wget --tries 1 -T {} -q -O- http://localhost:{}/{} | grep success"  # BaseWgetHealthCommand
PYTHON_HEALTH = (  # BasePythonHealthCommand
    "python -c \"import urllib.request; r=urllib.request.urlopen('{}', timeout={}); "
    "exit(0 if b'success' in r.read() else 1)\""
)
AUTOSCALER_START = (
    "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) --cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
)


class OperatorRefusal(ValueError):
    """The operator refuses the resource (KubeRay records an Invalid*Spec event and creates nothing)."""


# ---------------------------------------------------------------------------------------------
# Quantities and Go formatting


_SUFFIXES: dict[str, Fraction] = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(?:[eE]([+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


def quantity(value: str | int | float) -> Fraction:
    """A Kubernetes quantity (`500m`, `4Gi`, `1e3`) as an exact number (k8s.io/apimachinery resource)."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise ValueError(f"quantities must match the regular expression of resource.Quantity: {value!r}")
    number, exponent, suffix = match.groups()
    scale = Fraction(10) ** int(exponent) if exponent is not None else _SUFFIXES[suffix or ""]
    return Fraction(number) * scale


def quantity_value(value: str | int | float) -> int:
    """`Quantity.Value()`: the value rounded up to an integer (away from zero)."""
    exact = quantity(value)
    return math.ceil(exact) if exact >= 0 else math.floor(exact)


def _go_float(number: float) -> str:
    """encoding/json's float64 text for the numbers we meet (integral values print without `.0`)."""
    if number == int(number) and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def _go_json_resources(resources: Mapping[str, float]) -> str:
    """json.Marshal(map[string]float64): keys sorted, no spaces."""
    return "{" + ",".join(f"{json.dumps(k)}:{_go_float(v)}" for k, v in sorted(resources.items())) + "}"


def _go_quote(text: str) -> str:
    """strconv.Quote for printable text (the runtime env and messages we pass)."""
    return json.dumps(text, ensure_ascii=False)


def check_name(name: str) -> str:
    """kuberay:utils/util.go CheckName: at most 50 characters (the start is cut), no leading digit."""
    if len(name) > 50:
        name = name[len(name) - 50 :]
    if name[0].isdigit() or not name[0].isalnum():
        name = "r" + name[1:]
    return name


def _check_label(value: str) -> str:
    """kuberay:utils/util.go CheckLabel: at most 63 characters (the start is cut)."""
    if len(value) > 63:
        value = value[len(value) - 63 :]
    if not value[0].isalnum():
        value = "r" + value[1:]
    return value


def _env_exists(name: str, env: Sequence[Mapping[str, Any]]) -> bool:
    return any(entry.get("name") == name for entry in env)


def _field_env(name: str, path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


# ---------------------------------------------------------------------------------------------
# The `ray start` command line (kuberay:common/pod.go)


def _update_start_params_resources(params: dict[str, str], group_resources: Mapping[str, str]) -> None:
    """updateRayStartParamsResources: the group-level `resources` field, JSON single-quoted for bash."""
    custom: dict[str, float] = {}
    for name, value in group_resources.items():
        lowered = name.lower()
        if lowered == "cpu":
            params["num-cpus"] = str(quantity_value(value))
        elif lowered == "memory":
            params["memory"] = str(quantity_value(value))
        elif _is_gpu(lowered):
            params["num-gpus"] = str(quantity_value(value))
        else:
            custom[name] = float(quantity(value))
    if custom:
        params["resources"] = f"'{_go_json_resources(custom)}'"


def _is_gpu(key: str) -> bool:
    """kuberay:utils/resources.go IsGPUResourceKey."""
    return key.endswith("gpu") or re.search(r"nvidia\.com/mig-\d+g\.\d+gb$", key) is not None


def _update_start_params_labels(params: dict[str, str], group_labels: Mapping[str, str]) -> None:
    """updateRayStartParamsLabels: the group-level `labels` field becomes `--labels=k=v,...`."""
    if group_labels:
        params["labels"] = ",".join(f"{k}={group_labels[k]}" for k in sorted(group_labels))


def _set_missing_start_params(params: dict[str, str], node_type: str, head_port: str, fqdn: str) -> None:
    """setMissingRayStartParams."""
    if node_type == "worker" and "address" not in params:
        params["address"] = f"{fqdn}:{head_port}"
    if node_type == "head" and "dashboard-host" not in params:
        params["dashboard-host"] = "0.0.0.0"
    params.setdefault("metrics-export-port", str(METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(DASHBOARD_AGENT_PORT))


def _convert_param_map(params: Mapping[str, str]) -> str:
    """convertParamMap: sorted flags; `true` is a bare switch, `false` drops the flag (but for three)."""
    explicit_booleans = ("log-color", "include-dashboard", "include-log-monitor")
    flags = ""
    for option in sorted(params):
        argument = params[option]
        if argument.lower() in ("true", "false") and option not in explicit_booleans:
            if argument.lower() == "true":
                flags += f" --{option} "
        else:
            flags += f" --{option}={argument} "
    return flags


def _generate_ray_start(node_type: str, params: dict[str, str], resources: Mapping[str, Any]) -> str:
    """generateRayStartCommand: num-cpus and memory from the Ray container's limits (cpu falls back
    to the request), num-gpus from GPU limits."""
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if "num-cpus" not in params:
        cpu = limits.get("cpu") or requests.get("cpu")
        if cpu is not None and quantity(cpu) != 0:
            params["num-cpus"] = str(quantity_value(cpu))
    if "memory" not in params and limits.get("memory") is not None and quantity(limits["memory"]) != 0:
        params["memory"] = str(quantity_value(limits["memory"]))
    for key in sorted(limits):  # addWellKnownAcceleratorResources
        if key in ("aws.amazon.com/neuroncore", "google.com/tpu"):
            raise NotImplementedError(f"custom accelerator {key} is not modelled")
        if "num-gpus" not in params and _is_gpu(key) and quantity(limits[key]) != 0:
            params["num-gpus"] = str(quantity_value(limits[key]))
    prefix = "ray start --head" if node_type == "head" else "ray start"
    return f"{prefix} {_convert_param_map(params)}"


# ---------------------------------------------------------------------------------------------
# Validation (kuberay:utils/validation.go)


DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


def _validate_group(group_name: str, group: Mapping[str, Any]) -> None:
    """validateRayGroupResources and validateRayGroupLabels."""
    params = group.get("rayStartParams") or {}
    if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
        raise OperatorRefusal(
            f"resource fields should not be set in both rayStartParams and Resources for {group_name} group; "
            "please use only one"
        )
    if "labels" in params:
        raise OperatorRefusal(
            f"rayStartParams['labels'] is not supported for {group_name} group; please use the top-level "
            "Labels field instead"
        )


def _validate_cluster(name: str, spec: Mapping[str, Any], annotations: Mapping[str, str]) -> None:
    """ValidateRayClusterMetadata, then ValidateRayClusterSpec in its order, as far as our
    resources can reach it."""
    if len(name) > 53:
        raise OperatorRefusal("RayCluster name should be no more than 53 characters")
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        raise OperatorRefusal(f"RayCluster name should be a valid DNS1035 label: [{DNS1035}]")
    head = spec["headGroupSpec"]
    if not head["template"]["spec"].get("containers"):
        raise OperatorRefusal("headGroupSpec should have at least one container")
    _validate_group("Head", head)
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    for group in spec.get("workerGroupSpecs") or []:
        group_name = group["groupName"]
        if not group["template"]["spec"].get("containers"):
            raise OperatorRefusal("workerGroupSpec should have at least one container")
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if not autoscaling and (low is None or high is None):
            raise OperatorRefusal(
                f"worker group {group_name} must set both minReplicas and maxReplicas when autoscaling is disabled"
            )
        if low is not None and high is not None and low > high:
            raise OperatorRefusal(
                f"worker group {group_name} has minReplicas {low} greater than maxReplicas {high}"
            )
        _validate_group(group_name, group)
    head_env = head["template"]["spec"]["containers"][RAY_CONTAINER].get("env") or []
    if spec.get("gcsFaultToleranceOptions") is not None:
        if (head.get("rayStartParams") or {}).get("redis-password"):
            raise OperatorRefusal(
                "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions is enabled - "
                "use GcsFaultToleranceOptions.RedisPassword instead"
            )
        if _env_exists("REDIS_PASSWORD", head_env):
            raise OperatorRefusal(
                "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions is enabled - "
                "use GcsFaultToleranceOptions.RedisPassword instead"
            )
        if (spec["gcsFaultToleranceOptions"].get("backend") or "redis").lower() != "redis":
            raise NotImplementedError("embedded (RocksDB) GCS fault tolerance is not modelled")
    elif _env_exists("RAY_REDIS_ADDRESS", head_env) or annotations.get("ray.io/ft-enabled"):
        raise NotImplementedError("GCS fault tolerance through env or annotation is not modelled")


# ---------------------------------------------------------------------------------------------
# Pods (kuberay:common/pod.go DefaultHeadPodTemplate, DefaultWorkerPodTemplate, BuildPod)


@dataclass(frozen=True)
class _Cluster:
    """A RayCluster as KubeRay reads it: name, namespace, spec, who created it."""

    name: str
    namespace: str
    spec: Mapping[str, Any]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def creator(self) -> str:
        """getCreatorCRDType: RayCluster, RayJob or RayService (label ray.io/originated-from-crd)."""
        value = self.labels.get("ray.io/originated-from-crd", "RayCluster")
        return value if value in ("RayCluster", "RayJob", "RayService") else "RayCluster"

    @property
    def head_service(self) -> str:
        """GenerateHeadServiceName(RayClusterCRD, ...)."""
        return f"{self.name}-head-svc"

    @property
    def fqdn(self) -> str:
        """GenerateFQDNServiceName."""
        return f"{self.head_service}.{self.namespace}.svc.{CLUSTER_DOMAIN}"

    @property
    def head_port(self) -> str:
        """GetHeadPort."""
        return str((self.spec["headGroupSpec"].get("rayStartParams") or {}).get("port", GCS_PORT))

    @property
    def autoscaling(self) -> bool:
        return bool(self.spec.get("enableInTreeAutoscaling"))

    @property
    def auth(self) -> bool:
        """IsAuthEnabled: authOptions.mode token."""
        return (self.spec.get("authOptions") or {}).get("mode") == "token"

    @property
    def k8s_auth(self) -> bool:
        return bool((self.spec.get("authOptions") or {}).get("enableK8sTokenAuth"))

    @property
    def gcs_fault_tolerance(self) -> Mapping[str, Any] | None:
        options: Mapping[str, Any] | None = self.spec.get("gcsFaultToleranceOptions")
        return options

    @property
    def head_service_account(self) -> str:
        """GetHeadGroupServiceAccountName: the head template's, else the cluster's name."""
        named: str = self.spec["headGroupSpec"]["template"]["spec"].get("serviceAccountName") or ""
        return named or self.name


def _set_token_auth_env(cluster: _Cluster, container: Manifest) -> None:
    """SetContainerTokenAuthEnvVars: RAY_AUTH_MODE and the token from `<cluster>` Secret (auth_token)."""
    env = container.setdefault("env", [])
    if not _env_exists("RAY_AUTH_MODE", env):
        env.append({"name": "RAY_AUTH_MODE", "value": "token"})
    if cluster.k8s_auth:
        raise NotImplementedError("Kubernetes token authentication (enableK8sTokenAuth) is not modelled")
    secret = (cluster.spec.get("authOptions") or {}).get("secretName") or check_name(cluster.name)
    if not _env_exists("RAY_AUTH_TOKEN", env):
        env.append(
            {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "auth_token"}}}
        )


def _configure_token_auth(cluster: _Cluster, spec: Manifest) -> None:
    """configureTokenAuth: the Ray container and the wait-gcs-ready init container."""
    _set_token_auth_env(cluster, spec["containers"][RAY_CONTAINER])
    for init in spec.get("initContainers") or []:
        if init["name"] == "wait-gcs-ready":
            _set_token_auth_env(cluster, init)


def _configure_gcs_fault_tolerance(
    cluster: _Cluster, template: Manifest, node_type: str, params: dict[str, str]
) -> None:
    """configureGCSFaultTolerance with the Redis backend (configureRedisFT); on the head it adds
    `redis-password: $REDIS_PASSWORD` to the start params (one shared map in KubeRay)."""
    annotations = template["metadata"].setdefault("annotations", {})
    options = cluster.gcs_fault_tolerance
    if node_type == "head":
        annotations["ray.io/ft-enabled"] = "true" if options is not None else "false"
    if options is None:
        return
    container = template["spec"]["containers"][RAY_CONTAINER]
    env = container.setdefault("env", [])
    if node_type == "worker":
        if not _env_exists("RAY_gcs_rpc_server_reconnect_timeout_s", env):
            env.append({"name": "RAY_gcs_rpc_server_reconnect_timeout_s", "value": "600"})
        return
    namespace = options.get("externalStorageNamespace") or f"<uid of RayCluster {cluster.name}>"
    annotations["ray.io/external-storage-namespace"] = namespace
    if not _env_exists("RAY_external_storage_namespace", env):
        env.append({"name": "RAY_external_storage_namespace", "value": namespace})
    env.append({"name": "RAY_REDIS_ADDRESS", "value": options.get("redisAddress", "")})
    for option, variable, param in (
        ("redisUsername", "REDIS_USERNAME", "redis-username"),
        ("redisPassword", "REDIS_PASSWORD", "redis-password"),
    ):
        if options.get(option) is not None:
            params[param] = f"${variable}"
            env.append({"name": variable, **copy.deepcopy(options[option])})


def _autoscaler_container(cluster: _Cluster, image: str) -> Manifest:
    """BuildAutoscalerContainer, token auth env, then mergeAutoscalerOverrides (autoscalerOptions)."""
    container: Manifest = {
        "name": "autoscaler",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            _field_env("RAY_CLUSTER_NAME", "metadata.labels['ray.io/cluster']"),
            _field_env("RAY_CLUSTER_NAMESPACE", "metadata.namespace"),
            _field_env("RAY_HEAD_POD_NAME", "metadata.name"),
            {"name": "KUBERAY_CRD_VER", "value": "v1"},
            {"name": "KUBERAY_GEN_AUTOSCALER_START_CMD", "value": AUTOSCALER_START},
        ],
        "command": list(BASH),
        "args": [AUTOSCALER_START],
        "resources": {
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "500m", "memory": "512Mi"},
        },
    }
    if cluster.auth:
        _set_token_auth_env(cluster, container)
    options = cluster.spec.get("autoscalerOptions") or {}
    for key in ("resources", "image", "imagePullPolicy", "securityContext", "command", "args"):
        if options.get(key):
            container[key] = copy.deepcopy(options[key])
    for key in ("env", "envFrom", "volumeMounts"):
        if options.get(key):
            container.setdefault(key, []).extend(copy.deepcopy(options[key]))
    # Only what autoscalerOptions carries reaches the sidecar: no securityContext there, none here.
    return container


def _label_pod(
    node_type: str, cluster: str, group: str, template_labels: Mapping[str, str]
) -> dict[str, str]:
    """labelPod: KubeRay's labels; the template's override all but node-type, group and cluster."""
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": _check_label(f"{cluster}-{node_type}"),
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    for key, value in template_labels.items():
        if key not in ("ray.io/node-type", "ray.io/group", "ray.io/cluster"):
            labels[key] = value
    return labels


def _add_metrics_port(container: Manifest) -> None:
    ports = container.setdefault("ports", [])
    if not any(port.get("name") == "metrics" for port in ports):
        ports.append({"name": "metrics", "containerPort": METRICS_PORT})


def _head_template(cluster: _Cluster) -> tuple[Manifest, dict[str, str]]:
    """DefaultHeadPodTemplate: the head template and its completed rayStartParams."""
    head = cluster.spec["headGroupSpec"]
    template = copy.deepcopy(head["template"])
    metadata = template.setdefault("metadata", {})
    metadata.pop("name", None)
    # PodName(name, head, !ENABLE_DETERMINISTIC_HEAD_POD_NAME): a generated name.
    metadata["generateName"] = f"{cluster.name[:50]}-head-".lower()
    metadata["namespace"] = cluster.namespace
    params = dict(head.get("rayStartParams") or {})
    _update_start_params_resources(params, head.get("resources") or {})
    _update_start_params_labels(params, head.get("labels") or {})
    merged = {**(metadata.get("labels") or {}), **(head.get("labels") or {})}
    metadata["labels"] = _label_pod("head", cluster.name, "headgroup", merged)
    _set_missing_start_params(params, "head", cluster.head_port, "")
    spec = template["spec"]
    if cluster.autoscaling:
        params["no-monitor"] = "true"
        spec["serviceAccountName"] = check_name(cluster.head_service_account)
        autoscaler = _autoscaler_container(cluster, spec["containers"][RAY_CONTAINER]["image"])
        spec["containers"].append(autoscaler)
        version = (cluster.spec.get("autoscalerOptions") or {}).get("version")
        if version in ("v1", "v2"):
            spec["containers"][RAY_CONTAINER].setdefault("env", []).append(
                {"name": "RAY_enable_autoscaler_v2", "value": "true" if version == "v2" else "false"}
            )
            if version == "v2":
                spec["restartPolicy"] = "Never"
    _configure_gcs_fault_tolerance(cluster, template, "head", params)
    _add_metrics_port(spec["containers"][RAY_CONTAINER])
    if cluster.auth:
        _configure_token_auth(cluster, spec)
    return template, params


def _wait_gcs_ready(container: Mapping[str, Any], fqdn: str, port: str) -> Manifest:
    """The init container DefaultWorkerPodTemplate injects (ENABLE_INIT_CONTAINER_INJECTION unset)."""
    script = f"""
					SECONDS=0
					while true; do
						if (( SECONDS <= 120 )); then
							if ray health-check --address {fqdn}:{port} > /dev/null 2>&1; then
								echo "GCS is ready."
								break
							fi
							echo "$SECONDS seconds elapsed: Waiting for GCS to be ready."
						else
							if ray health-check --address {fqdn}:{port}; then
								echo "GCS is ready. Any error messages above can be safely ignored."
								break
							fi
							echo "$SECONDS seconds elapsed: Still waiting for GCS to be ready. For troubleshooting, refer to the FAQ at https://docs.ray.io/en/master/cluster/kubernetes/troubleshooting.html."
						fi
						sleep 5
					done
				"""
    init: Manifest = {
        "name": "wait-gcs-ready",
        "image": container["image"],
        "command": list(BASH),
        "args": [script],
        "resources": {
            "limits": {"cpu": "200m", "memory": "256Mi"},
            "requests": {"cpu": "200m", "memory": "256Mi"},
        },
    }
    if container.get("imagePullPolicy"):
        init["imagePullPolicy"] = container["imagePullPolicy"]
    if container.get("securityContext") is not None:
        init["securityContext"] = copy.deepcopy(container["securityContext"])
    if container.get("env"):
        init["env"] = copy.deepcopy(container["env"])
    if container.get("volumeMounts"):
        init["volumeMounts"] = copy.deepcopy(container["volumeMounts"])
    return init


def _worker_template(
    cluster: _Cluster, group: Mapping[str, Any], index: int
) -> tuple[Manifest, dict[str, str]]:
    """DefaultWorkerPodTemplate for replica `index` of `group`."""
    template = copy.deepcopy(group["template"])
    metadata = template.setdefault("metadata", {})
    metadata["generateName"] = f"{cluster.name}-{group['groupName']}"[:50].lower() + "-worker-"
    metadata["namespace"] = cluster.namespace
    metadata.pop("name", None)
    spec = template["spec"]
    ray = spec["containers"][RAY_CONTAINER]
    spec.setdefault("initContainers", []).append(_wait_gcs_ready(ray, cluster.fqdn, cluster.head_port))
    params = dict(group.get("rayStartParams") or {})
    _update_start_params_resources(params, group.get("resources") or {})
    _update_start_params_labels(params, group.get("labels") or {})
    merged = {**(metadata.get("labels") or {}), **(group.get("labels") or {})}
    labels = _label_pod("worker", cluster.name, group["groupName"], merged)
    labels["ray.io/worker-group-replica-index"] = str(index)  # RayMultiHostIndexing (chart default: on)
    metadata["labels"] = labels
    _set_missing_start_params(params, "worker", cluster.head_port, cluster.fqdn)
    _configure_gcs_fault_tolerance(cluster, template, "worker", params)
    _add_metrics_port(ray)
    if cluster.autoscaling and (cluster.spec.get("autoscalerOptions") or {}).get("version") == "v2":
        spec["restartPolicy"] = "Never"
    if cluster.auth:
        _configure_token_auth(cluster, spec)
    return template, params


def _add_empty_dir(pod: Manifest, container: Manifest, name: str, path: str, medium: str) -> None:
    """addEmptyDir: nothing if `path` is already mounted; a Memory volume is sized to the container."""
    mounts = container.setdefault("volumeMounts", [])
    if any(mount.get("mountPath") == path for mount in mounts):
        return
    volumes = pod["spec"].setdefault("volumes", [])
    if not any(volume.get("name") == name for volume in volumes):
        empty_dir: Manifest = {"medium": medium} if medium else {}
        if medium == "Memory":
            resources = container.get("resources") or {}
            size = (resources.get("limits") or {}).get("memory") or (resources.get("requests") or {}).get(
                "memory"
            )
            if size is not None:
                empty_dir["sizeLimit"] = size
        volumes.append({"name": name, "emptyDir": empty_dir})
    mounts.append({"mountPath": path, "name": name})


def _probes(
    container: Manifest, node_type: str, creator: str, params: Mapping[str, str], version: str
) -> None:
    """initLivenessAndReadinessProbe (ENABLE_PROBES_INJECTION unset): HTTP /api/healthz on the
    dashboard agent from Ray 2.53.0, else `wget` exec probes; RayService workers also check the
    Serve proxy."""

    def port(key: str, default: int) -> int:
        value = params.get(key, "")
        return int(value) if value.isdigit() else default

    agent = port("dashboard-agent-listen-port", DASHBOARD_AGENT_PORT)
    commands = [WGET_HEALTH.format(2, agent, "api/local_raylet_healthz")]
    if node_type == "head":
        commands.append(WGET_HEALTH.format(10, port("dashboard-port", DASHBOARD_PORT), "api/gcs_healthz"))
    http = _ray_at_least(version, (2, 53, 0))
    action: Manifest = (
        {"httpGet": {"path": "/api/healthz", "port": agent}}
        if http
        else {"exec": {"command": ["bash", "-c", " && ".join(commands)]}}
    )
    timeout = 5 if node_type == "head" else 2
    if container.get("livenessProbe") is None:
        container["livenessProbe"] = {
            "initialDelaySeconds": 30,
            "timeoutSeconds": timeout,
            "periodSeconds": 5,
            "successThreshold": 1,
            "failureThreshold": 120,
            **action,
        }
    if container.get("readinessProbe") is None:
        readiness: Manifest = {
            "initialDelaySeconds": 10,
            "timeoutSeconds": timeout,
            "periodSeconds": 5,
            "successThreshold": 1,
            "failureThreshold": 10,
            **action,
        }
        if creator == "RayService" and node_type == "worker":
            serve = find_container_port(container, "serve", SERVE_PORT)
            commands.append(WGET_HEALTH.format(10, serve, "-/healthz"))
            readiness.pop("httpGet", None)
            readiness["failureThreshold"] = 1
            readiness["exec"] = {"command": ["bash", "-c", " && ".join(commands)]}
        container["readinessProbe"] = readiness


def find_container_port(container: Mapping[str, Any], name: str, default: int) -> int:
    """utils.FindContainerPort: the container's port named `name`, else `default`."""
    for port in container.get("ports") or []:
        if port.get("name") == name and port.get("containerPort") is not None:
            return int(port["containerPort"])
    return default


def _ray_at_least(version: str, minimum: tuple[int, int, int]) -> bool:
    """supportsUnifiedHealthCheck: version.ParseGeneric; an unset or unparsable rayVersion is old."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", version or "")
    if match is None:
        return False
    found = (int(match[1]), int(match[2]), int(match[3] or 0))
    return found >= minimum


def _build_pod(
    cluster: _Cluster, template: Manifest, node_type: str, params: dict[str, str], name: str
) -> Manifest:
    """BuildPod: /dev/shm and /tmp/ray volumes, the generated command, KubeRay's env, probes."""
    labels = template["metadata"]["labels"]
    if cluster.creator == "RayService":
        labels["ray.io/serve"] = "false" if node_type == "head" else "true"
    pod: Manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": name},
        "spec": template["spec"],
    }
    containers = pod["spec"]["containers"]
    ray = containers[RAY_CONTAINER]
    if "plasma-directory" not in params:
        _add_empty_dir(pod, ray, "shared-mem", "/dev/shm", "Memory")
    if node_type == "head" and cluster.autoscaling:
        autoscaler = next(c for c in containers if c["name"] == "autoscaler")
        _add_empty_dir(pod, ray, "ray-logs", "/tmp/ray", "")
        _add_empty_dir(pod, autoscaler, "ray-logs", "/tmp/ray", "")
    command = "".join(f" {part} " for part in [*(ray.get("command") or []), *(ray.get("args") or [])])
    ray_start = _generate_ray_start(node_type, params, ray.get("resources") or {})
    overwrite = (template["metadata"].get("annotations") or {}).get("ray.io/overwrite-container-cmd", "")
    if overwrite.lower() != "true" and "ray start" not in command:
        generated = f"ulimit -n ${{RAY_START_ULIMIT_OPEN_FILES:-65536}}; {ray_start}"
        ray["command"] = list(BASH)
        ray["args"] = [f"{command} && {generated}" if command else generated]
    for init in pod["spec"].get("initContainers") or []:  # setInitContainerEnvVars
        init.setdefault("env", []).extend(
            [{"name": "FQ_RAY_IP", "value": cluster.fqdn}, {"name": "RAY_IP", "value": cluster.head_service}]
        )
    _set_container_env(cluster, ray, node_type, ray_start)
    _probes(ray, node_type, cluster.creator, params, str(cluster.spec.get("rayVersion") or ""))
    return pod


def _set_container_env(cluster: _Cluster, container: Manifest, node_type: str, ray_start: str) -> None:
    """setContainerEnvVars (the chart sets no defaultContainerEnvs)."""
    env = container.setdefault("env", [])
    ip = "127.0.0.1"
    if node_type == "worker":
        ip = cluster.fqdn
        env.extend([{"name": "FQ_RAY_IP", "value": ip}, {"name": "RAY_IP", "value": cluster.head_service}])
    env.extend(
        [
            _field_env("RAY_CLUSTER_NAME", "metadata.labels['ray.io/cluster']"),
            _field_env("RAY_CLUSTER_NAMESPACE", "metadata.namespace"),
            _field_env("RAY_CLOUD_INSTANCE_ID", "metadata.name"),
            _field_env("RAY_NODE_TYPE_NAME", "metadata.labels['ray.io/group']"),
            {"name": "KUBERAY_GEN_RAY_START_CMD", "value": ray_start},
        ]
    )
    defaults: list[tuple[str, str]] = [("RAY_PORT", cluster.head_port)]
    if cluster.creator == "RayService":
        defaults += [
            ("RAY_timeout_ms_task_wait_for_death_info", "0"),
            ("RAY_gcs_server_request_timeout_seconds", "5"),
            ("RAY_SERVE_KV_TIMEOUT_S", "5"),
        ]
    defaults += [("RAY_ADDRESS", f"{ip}:{cluster.head_port}"), ("RAY_USAGE_STATS_KUBERAY_IN_USE", "1")]
    for name, value in defaults:
        if not _env_exists(name, env):
            env.append({"name": name, "value": value})
    if node_type == "head":
        env.append(
            {
                "name": "RAY_USAGE_STATS_EXTRA_TAGS",
                "value": f"kuberay_version={KUBERAY_VERSION};kuberay_crd={cluster.creator}",
            }
        )
    if not _env_exists("RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", env):
        env.append({"name": "RAY_DASHBOARD_ENABLE_K8S_DISK_USAGE", "value": "1"})


def _desired_replicas(group: Mapping[str, Any]) -> int:
    """GetWorkerGroupDesiredReplicas: replicas clamped to [minReplicas, maxReplicas] (CRD defaults)."""
    if group.get("suspend"):
        return 0
    if int(group.get("numOfHosts", 1)) > 1:
        raise NotImplementedError("multi-host worker groups (numOfHosts > 1) are not modelled")
    low = int(group.get("minReplicas", 0))
    high = int(group.get("maxReplicas", 2147483647))
    replicas = group.get("replicas")
    if replicas is None or int(replicas) < low:
        return low
    return min(int(replicas), high)


# ---------------------------------------------------------------------------------------------
# Other objects (kuberay:common/service.go, common/rbac.go, raycluster_controller.go)


def _service_ports(head_spec: Mapping[str, Any]) -> dict[str, int]:
    """getServicePorts: the head container's ports (defaults when it has none) plus metrics."""
    ports = {
        port.get("name") or f"{port['containerPort']}-port": int(port["containerPort"])
        for port in head_spec["template"]["spec"]["containers"][RAY_CONTAINER].get("ports") or []
    }
    if not ports:
        ports = {
            "client": CLIENT_PORT,
            "gcs-server": GCS_PORT,
            "dashboard": DASHBOARD_PORT,
            "metrics": METRICS_PORT,
            "serve": SERVE_PORT,
        }
    ports.setdefault("metrics", METRICS_PORT)
    return ports


def _head_service(cluster: _Cluster, *, template_name: bool = True) -> Manifest:
    """BuildServiceForHeadPod: headless when ClusterIP (ENABLE_RAY_HEAD_CLUSTER_IP_SERVICE unset).
    Only the RayCluster controller passes the head template's app.kubernetes.io/name into the
    selector (reconcileHeadService); the RayService and RayJob controllers pass no labels."""
    head = cluster.spec["headGroupSpec"]
    if head.get("headService"):
        raise NotImplementedError("headGroupSpec.headService overrides are not modelled")
    selector = {
        "ray.io/cluster": cluster.name,
        "ray.io/node-type": "head",
        "ray.io/identifier": _check_label(f"{cluster.name}-head"),
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    name_label = ((head["template"].get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name")
    if template_name and name_label is not None:
        selector["app.kubernetes.io/name"] = name_label
    service_type = head.get("serviceType") or ""
    spec: Manifest = {
        "selector": dict(selector),
        "ports": [
            {"name": name, "port": port, "appProtocol": "tcp"}
            for name, port in sorted(_service_ports(head).items())
        ],
    }
    if service_type:
        spec["type"] = service_type
    if service_type in ("", "ClusterIP"):
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    metadata: Manifest = {
        "name": cluster.head_service,
        "namespace": cluster.namespace,
        "labels": dict(selector),
    }
    if cluster.spec.get("headServiceAnnotations"):
        metadata["annotations"] = dict(cluster.spec["headServiceAnnotations"])
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def _serve_service(cluster: _Cluster, owner: str | None) -> Manifest:
    """BuildServeService: the `serve`/`serve-*` head ports; for a RayService `<owner>-serve-svc`
    selecting pods labelled ray.io/serve=true (no custom serveService, no incremental upgrade)."""
    head = cluster.spec["headGroupSpec"]
    ports = [
        {"name": n, "port": p}
        for n, p in _service_ports(head).items()
        if n == "serve" or n.startswith("serve-")
    ]
    if not ports:
        raise OperatorRefusal(
            "Please specify a port named 'serve' (or with the prefix 'serve-', e.g. 'serve-grpc') in the "
            "Ray head container; otherwise, the Kubernetes service for Ray Serve will not be created."
        )
    name = owner or cluster.name
    selector = {"ray.io/cluster": cluster.name}
    if owner is not None:
        selector["ray.io/serve"] = "true"
    spec: Manifest = {"selector": selector, "ports": ports}
    if head.get("serviceType"):
        spec["type"] = head["serviceType"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": f"{name}-serve-svc",
            "namespace": cluster.namespace,
            "labels": {
                "ray.io/originated-from-cr-name": name,
                "ray.io/originated-from-crd": "RayService" if owner is not None else "RayCluster",
                "ray.io/serve": f"{name}-serve",
            },
        },
        "spec": spec,
    }


def _autoscaler_rbac(cluster: _Cluster) -> list[Manifest]:
    """reconcileAutoscalerServiceAccount/Role/RoleBinding (BuildServiceAccount, BuildRole,
    BuildRoleBinding). A service account named in the head template is the user's to create."""
    labels = {
        "ray.io/cluster": cluster.name,
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    account = check_name(cluster.head_service_account)
    metadata = {"namespace": cluster.namespace, "labels": labels}
    objects: list[Manifest] = []
    if not cluster.spec["headGroupSpec"]["template"]["spec"].get("serviceAccountName"):
        objects.append(
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, **metadata}}
        )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": check_name(cluster.name), **copy.deepcopy(metadata)},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
                {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
                {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
            ],
        }
    )
    objects.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": check_name(cluster.name), **copy.deepcopy(metadata)},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": cluster.namespace}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": check_name(cluster.name),
            },
        }
    )
    return objects


def _auth_secret(cluster: _Cluster) -> list[Manifest]:
    """reconcileAuthSecret: `<cluster>` Secret with a random `auth_token` unless secretName is set."""
    options = cluster.spec.get("authOptions") or {}
    if not cluster.auth or cluster.k8s_auth or options.get("secretName"):
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": check_name(cluster.name),
                "namespace": cluster.namespace,
                "labels": {"ray.io/cluster": cluster.name},
            },
            "stringData": {"auth_token": "<32 random bytes, base64: generated by kuberay-operator>"},
        }
    ]


def _cluster(obj: Mapping[str, Any]) -> _Cluster:
    metadata = obj.get("metadata") or {}
    spec = copy.deepcopy(obj["spec"])
    # setDefaults, then the CRD's defaults for replicas and numOfHosts.
    spec["headGroupSpec"].setdefault("rayStartParams", {})
    for group in spec.get("workerGroupSpecs") or []:
        group.setdefault("rayStartParams", {})
    cluster = _Cluster(
        name=metadata["name"],
        namespace=metadata.get("namespace") or "default",
        spec=spec,
        labels=metadata.get("labels") or {},
        annotations=metadata.get("annotations") or {},
    )
    if spec.get("managedBy") not in (None, "", "ray.io/kuberay-operator"):
        raise NotImplementedError(f"RayCluster {cluster.name} is managed by {spec['managedBy']}")
    if spec.get("headGroupSpec", {}).get("enableIngress"):
        raise NotImplementedError("enableIngress is not modelled")
    _validate_cluster(cluster.name, spec, cluster.annotations)
    return cluster


def expand_ray_cluster(obj: Mapping[str, Any]) -> list[Manifest]:
    """What KubeRay creates for a RayCluster (rayClusterReconcile's reconcile functions in order):
    autoscaler ServiceAccount/Role/RoleBinding, auth Secret, head Service, serve Service (only with
    the ray.io/enable-serve-service annotation), the head Pod and one Pod per desired worker."""
    cluster = _cluster(obj)
    objects: list[Manifest] = []
    if cluster.autoscaling:
        objects += _autoscaler_rbac(cluster)
    objects += _auth_secret(cluster)
    objects.append(_head_service(cluster))
    if cluster.annotations.get("ray.io/enable-serve-service") == "true":
        objects.append(_serve_service(cluster, None))
    if cluster.spec.get("suspend"):
        return objects
    template, params = _head_template(cluster)
    head = _build_pod(
        cluster, template, "head", params, template["metadata"]["generateName"] + STAND_IN_SUFFIX
    )
    # createHeadPod: the spec hash for the upgrade strategy and the operator's version.
    head["metadata"]["annotations"]["ray.io/upgrade-strategy-recreate-hash"] = "<hash of the cluster spec>"
    head["metadata"]["annotations"]["ray.io/kuberay-version"] = KUBERAY_VERSION
    objects.append(head)
    for group in cluster.spec.get("workerGroupSpecs") or []:
        for index in range(_desired_replicas(group)):
            template, params = _worker_template(cluster, group, index)
            name = template["metadata"]["generateName"] + f"{index:05d}"
            objects.append(_build_pod(cluster, template, "worker", params, name))
    return objects


def redis_cleanup_job(obj: Mapping[str, Any]) -> Manifest | None:
    """The Job KubeRay starts when a RayCluster with Redis GCS fault tolerance is deleted
    (buildRedisCleanupJob): the head Pod's Ray container alone, running Ray's Redis cleanup."""
    cluster = _cluster(obj)
    if cluster.gcs_fault_tolerance is None:
        return None
    template, params = _head_template(cluster)
    pod = _build_pod(
        cluster, template, "head", params, template["metadata"]["generateName"] + STAND_IN_SUFFIX
    )
    pod["metadata"]["labels"]["ray.io/node-type"] = "redis-cleanup"
    ray = pod["spec"]["containers"][RAY_CONTAINER]
    pod["spec"]["containers"] = [ray]
    ray["command"] = list(BASH)
    ray["args"] = [
        'echo "To get more information about manually deleting the storage namespace in Redis and removing '
        "the RayCluster's finalizer, please check https://docs.ray.io/en/master/cluster/kubernetes/user-guides/"
        'kuberay-gcs-ft.html for more details." && python -c "from ray._private.gcs_utils import '
        'cleanup_redis_storage; ..."'
    ]
    ray.pop("livenessProbe", None)
    ray.pop("readinessProbe", None)
    ray["env"] += [
        {"name": "RAY_redis_db_connect_retries", "value": "120"},
        {"name": "RAY_redis_db_connect_wait_milliseconds", "value": "500"},
    ]
    ray["resources"] = {
        "limits": {"cpu": "200m", "memory": "256Mi"},
        "requests": {"cpu": "200m", "memory": "256Mi"},
    }
    pod["spec"]["restartPolicy"] = "Never"
    metadata = pod["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": _check_label(f"{cluster.name}-redis-cleanup"),
            "namespace": cluster.namespace,
            "labels": dict(metadata["labels"]),
            "annotations": dict(metadata.get("annotations") or {}),
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 300,
            "template": {"metadata": metadata, "spec": pod["spec"]},
        },
    }


def _child_cluster(
    owner: Mapping[str, Any],
    kind: str,
    spec: Mapping[str, Any],
    extra_labels: Mapping[str, str],
    extra_annotations: Mapping[str, str],
) -> Manifest:
    """The RayCluster a RayService or RayJob creates: `<owner>-<random5>`, the owner's labels and
    annotations plus ray.io/originated-from-* (rayservice_controller.go
    constructRayClusterForRayService, rayjob_controller.go constructRayClusterForRayJob,
    utils.GenerateRayClusterName)."""
    metadata = owner.get("metadata") or {}
    labels = {
        **(metadata.get("labels") or {}),
        "ray.io/originated-from-cr-name": metadata["name"],
        "ray.io/originated-from-crd": kind,
        **extra_labels,
    }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayCluster",
        "metadata": {
            "name": f"{metadata['name']}-{STAND_IN_SUFFIX}",
            "namespace": metadata.get("namespace") or "default",
            "labels": labels,
            "annotations": {**(metadata.get("annotations") or {}), **extra_annotations},
        },
        "spec": copy.deepcopy(dict(spec)),
    }


def _ray_service_cluster(obj: Mapping[str, Any]) -> Manifest:
    spec = obj["spec"]["rayClusterConfig"]
    annotations = {
        "ray.io/hash-without-replicas-and-workers-to-delete": "<hash of the cluster spec>",
        "ray.io/num-worker-groups": str(len(spec.get("workerGroupSpecs") or [])),
        "ray.io/kuberay-version": KUBERAY_VERSION,
    }
    return _child_cluster(obj, "RayService", spec, {}, annotations)


def _owner_head_service(cluster: _Cluster, kind: str, owner: str) -> Manifest:
    """BuildHeadServiceForRayService / BuildHeadServiceForRayJob (common/service.go, common/job.go):
    `<owner>-head-svc` with BuildServiceForHeadPod's selector built without the template's labels."""
    service = _head_service(cluster, template_name=False)
    service["metadata"]["name"] = f"{owner}-head-svc"
    service["metadata"]["labels"] = {
        "ray.io/originated-from-cr-name": owner,
        "ray.io/originated-from-crd": kind,
        "ray.io/node-type": "head",
        "ray.io/identifier": _check_label(f"{owner}-head"),
    }
    service["metadata"].pop("annotations", None)
    return service


def expand_ray_service(obj: Mapping[str, Any]) -> list[Manifest]:
    """A RayService's RayCluster (`<name>-00000`) expanded, then the RayService's own Services once
    that cluster is ready: `<name>-head-svc` and `<name>-serve-svc`. The serve Service is left out
    when KubeRay cannot build it (see `reconcile_errors`)."""
    name = obj["metadata"]["name"]
    upgrade = (obj["spec"].get("upgradeStrategy") or {}).get("type")
    if upgrade == "NewClusterWithIncrementalUpgrade":
        raise NotImplementedError("incremental upgrades (Gateway API routes) are not modelled")
    if (obj["spec"]["rayClusterConfig"].get("authOptions") or {}).get("enableK8sTokenAuth"):
        raise OperatorRefusal(
            "The RayService spec is invalid: K8s token auth mode is currently not supported for RayService"
        )
    if obj["spec"].get("serveService"):
        raise NotImplementedError("a custom serveService is not modelled")
    child = _ray_service_cluster(obj)
    objects = [child, *expand_ray_cluster(child)]
    cluster = _cluster(child)
    objects.append(_owner_head_service(cluster, "RayService", name))
    with contextlib.suppress(OperatorRefusal):  # KubeRay logs it and requeues: no Service
        objects.append(_serve_service(cluster, name))
    return objects


def reconcile_errors(obj: Mapping[str, Any]) -> list[str]:
    """What KubeRay keeps failing on (logged and requeued, no Event) after creating the pods: today,
    a RayService whose head container has no `serve` port never gets its serve Service."""
    if obj.get("kind") != "RayService":
        return []
    cluster = _cluster(_ray_service_cluster(obj))
    try:
        _serve_service(cluster, obj["metadata"]["name"])
    except OperatorRefusal as refusal:
        return [str(refusal)]
    return []


def _job_submit_command(job: Mapping[str, Any], job_id: str, dashboard_url: str) -> list[str]:
    """common/job.go BuildJobSubmitCommand in K8sJobMode."""
    spec = job["spec"]
    address = dashboard_url if dashboard_url.startswith("http://") else f"http://{dashboard_url}"
    health = PYTHON_HEALTH.format(f"{address}/api/gcs_healthz", 10)
    cmd = ["until", health, ">/dev/null", "2>&1", ";", "do", "echo"]
    cmd += [_go_quote(f"Waiting for Ray Dashboard GCS to become healthy at {address} ..."), ";"]
    cmd += ["sleep", "2", ";", "done", ";"]
    cmd += [
        "if",
        "!",
        "ray",
        "job",
        "status",
        "--address",
        address,
        job_id,
        ">/dev/null",
        "2>&1",
        ";",
        "then",
    ]
    cmd += ["ray", "job", "submit", "--address", address, "--no-wait"]
    if spec.get("runtimeEnvYAML"):
        raise NotImplementedError("runtimeEnvYAML (YAML to JSON in the submit command) is not modelled")
    if spec.get("metadata"):
        cmd += [
            "--metadata-json",
            _go_quote(json.dumps(spec["metadata"], separators=(",", ":"), sort_keys=True)),
        ]
    cmd += ["--submission-id", job_id]
    if spec.get("entrypointNumCpus"):
        cmd += ["--entrypoint-num-cpus", f"{float(spec['entrypointNumCpus']):f}"]
    if spec.get("entrypointNumGpus"):
        cmd += ["--entrypoint-num-gpus", f"{float(spec['entrypointNumGpus']):f}"]
    if spec.get("entrypointResources"):
        cmd += ["--entrypoint-resources", _go_quote(spec["entrypointResources"])]
    cmd += ["--", str(spec.get("entrypoint") or "").strip(), ";", "fi", ";"]
    cmd += ["ray", "job", "logs", "--address", address, "--follow", job_id]
    return cmd


def expand_ray_job(obj: Mapping[str, Any]) -> list[Manifest]:
    """A RayJob's RayCluster (`<name>-00000`) expanded, the RayJob's head Service and, in K8sJobMode
    (the CRD default), the submitter Job running `ray job submit` against the cluster's dashboard
    (rayjob_controller.go getSubmitterTemplate, configureSubmitterContainer, createNewK8sJob)."""
    metadata = obj["metadata"]
    name, spec = metadata["name"], obj["spec"]
    mode = spec.get("submissionMode") or "K8sJobMode"
    if mode != "K8sJobMode":
        raise NotImplementedError(f"submissionMode {mode} is not modelled")
    if spec.get("clusterSelector"):
        raise NotImplementedError("RayJobs on an existing cluster (clusterSelector) are not modelled")
    cluster_spec = spec.get("rayClusterSpec")
    if cluster_spec is None:
        raise OperatorRefusal(
            "The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set"
        )
    if (cluster_spec.get("authOptions") or {}).get("enableK8sTokenAuth"):
        raise OperatorRefusal(
            "The RayJob spec is invalid: K8s token auth mode is currently not supported for RayJob"
        )
    child = _child_cluster(obj, "RayJob", cluster_spec, {"ray.io/job-submission-mode": mode}, {})
    objects = [child, *expand_ray_cluster(child)]
    cluster = _cluster(child)
    objects.append(_owner_head_service(cluster, "RayJob", name))

    # FetchHeadServiceURL: the cluster's head Service and its `dashboard` port.
    ports = _service_ports(cluster.spec["headGroupSpec"])
    if "dashboard" not in ports:
        raise OperatorRefusal("dashboard port is not found")
    dashboard_url = f"{cluster.fqdn}:{ports['dashboard']}"
    job_id = spec.get("jobId") or f"{name}-{STAND_IN_SUFFIX}"  # GenerateRayJobId
    template = copy.deepcopy(spec.get("submitterPodTemplate")) or {
        "spec": {
            "containers": [
                {
                    "name": "ray-job-submitter",
                    "image": cluster.spec["headGroupSpec"]["template"]["spec"]["containers"][RAY_CONTAINER][
                        "image"
                    ],
                    "resources": {
                        "limits": {"cpu": "1", "memory": "1Gi"},
                        "requests": {"cpu": "500m", "memory": "200Mi"},
                    },
                }
            ],
            "restartPolicy": "Never",
        }
    }
    submitter = template["spec"]["containers"][RAY_CONTAINER]
    if not submitter.get("command"):
        submitter["command"] = ["/bin/bash", "-ce", "--"]
        submitter["args"] = [" ".join(_job_submit_command(obj, job_id, dashboard_url))]
    submitter.setdefault("env", []).extend(
        [
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "RAY_DASHBOARD_ADDRESS", "value": dashboard_url},
            {"name": "RAY_JOB_SUBMISSION_ID", "value": job_id},
        ]
    )
    if cluster.auth:
        _set_token_auth_env(cluster, submitter)
    template_metadata = template.setdefault("metadata", {})
    template_metadata["labels"] = {
        **(template_metadata.get("labels") or {}),
        "ray.io/originated-from-cr-name": name,
        "ray.io/originated-from-crd": "RayJob",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    backoff = (spec.get("submitterConfig") or {}).get("backoffLimit", 2)
    objects.append(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": cluster.namespace,
                "labels": {
                    "ray.io/originated-from-cr-name": name,
                    "ray.io/originated-from-crd": "RayJob",
                    "app.kubernetes.io/created-by": "kuberay-operator",
                },
            },
            "spec": {"backoffLimit": backoff, "template": template},
        }
    )
    return objects


def expand(obj: Mapping[str, Any]) -> list[Manifest]:
    """`expand_ray_cluster`, `expand_ray_service` or `expand_ray_job` by kind; [] for other kinds."""
    expanders = {"RayCluster": expand_ray_cluster, "RayService": expand_ray_service, "RayJob": expand_ray_job}
    expander = expanders.get(str(obj.get("kind")))
    return expander(obj) if expander is not None else []


def pod_templates(objects: Sequence[Mapping[str, Any]]) -> list[Manifest]:
    """The Pods among `objects`, and the pod of every Job, as Pod manifests."""
    found: list[Manifest] = []
    for obj in objects:
        if obj.get("kind") == "Pod":
            found.append(dict(obj))
        elif obj.get("kind") == "Job":
            template = obj["spec"]["template"]
            metadata = {**(template.get("metadata") or {}), "namespace": obj["metadata"]["namespace"]}
            metadata.setdefault("name", f"{obj['metadata']['name']}-{STAND_IN_SUFFIX}")
            found.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
    return found


def token_mounted(pod_spec: Mapping[str, Any], service_account: Mapping[str, Any] | None = None) -> bool:
    """Whether the ServiceAccount admission plugin mounts an API token: the pod's
    automountServiceAccountToken wins, then the service account's, else yes (kubernetes/kubernetes
    plugin/pkg/admission/serviceaccount/admission.go shouldAutomount)."""
    if pod_spec.get("automountServiceAccountToken") is not None:
        return bool(pod_spec["automountServiceAccountToken"])
    if service_account is not None and service_account.get("automountServiceAccountToken") is not None:
        return bool(service_account["automountServiceAccountToken"])
    return True


# ---------------------------------------------------------------------------------------------
# Flyte 1.16.8: the task pod and the RayJob of a Ray task


# flyte:plugins/k8s/ray/config.go defaultConfig (json names), what `plugins.ray` values override.
FLYTE_RAY_DEFAULTS: Manifest = {
    "shutdownAfterJobFinishes": True,
    "ttlSecondsAfterFinished": 3600,
    "enableIngress": False,
    "serviceType": "NodePort",
    "includeDashboard": True,
    "dashboardHost": "0.0.0.0",
    "enableUsageStats": False,
    "serviceAccount": "",
    "defaults": {
        "headNode": {"startParameters": {"disable-usage-stats": "true"}, "ipAddress": "$MY_POD_IP"},
        "workerNode": {"startParameters": {"disable-usage-stats": "true"}, "ipAddress": "$MY_POD_IP"},
    },
}
# flyte:pluginmachinery/flytek8s/config/config.go defaultK8sConfig, the parts that reach pods.
FLYTE_K8S_DEFAULTS: Manifest = {
    "default-annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "default-cpus": "1000m",
    "default-memory": "1024Mi",
}
FLYTE_TASK_ARGS = (  # what flytekit 1.16 registers for a Python task (templated by propeller)
    "pyflyte-execute",
    "--inputs",
    "{{.input}}",
    "--output-prefix",
    "{{.outputPrefix}}",
    "--raw-output-data-prefix",
    "{{.rawOutputDataPrefix}}",
    "--checkpoint-path",
    "{{.checkpointOutputPrefix}}",
    "--prev-checkpoint",
    "{{.prevCheckpointPrefix}}",
    "--resolver",
    "flytekit.core.python_auto_container.default_task_resolver",
    "--",
    "task-module",
    "<module>",
    "task-name",
    "<task>",
)


@dataclass(frozen=True, kw_only=True)
class FlyteExecution:
    """Who runs the task: what propeller knows about the execution (stand-ins unless given)."""

    project: str = "naomi"
    domain: str = "production"
    execution_id: str = "<execution-id>"
    task_name: str = "<task>"
    task_version: str = "<version>"
    attempt: int = 0
    service_account: str = ""  # the execution's k8s service account (none: the namespace default)
    labels: Mapping[str, str] = field(default_factory=dict)  # propeller's execution labels
    args: Sequence[str] = FLYTE_TASK_ARGS
    env: Mapping[str, str] = field(default_factory=dict)  # the task's own environment


def _with_defaults(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> Manifest:
    """flytestdlib config: values decoded over the registered defaults, section by section."""
    merged = copy.deepcopy(dict(defaults))
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _with_defaults(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _string_map(value: Any) -> dict[str, str]:
    """A map[string]string config field; Flyte's chart examples give it as a list of one-key maps,
    which mapstructure's weak decoding merges."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    merged: dict[str, str] = {}
    for entry in value or []:
        merged.update({str(k): str(v) for k, v in entry.items()})
    return merged


def _task_resources(
    requested: Mapping[str, Any], platform: Mapping[str, Any], k8s: Mapping[str, Any]
) -> Manifest:
    """flyte:pluginmachinery/flytek8s/container_helper.go ApplyResourceOverrides (the primary
    container, assignIfUnset): a request defaults to the limit, then the platform default (admin's
    task_resources.defaults, else default-cpus/default-memory); a limit defaults to the request;
    both are capped at the platform limit (task_resources.limits)."""
    requests = dict(requested.get("requests") or {})
    limits = dict(requested.get("limits") or {})
    platform_requests = {
        "cpu": (platform.get("defaults") or {}).get("cpu", k8s["default-cpus"]),
        "memory": (platform.get("defaults") or {}).get("memory", k8s["default-memory"]),
    }
    platform_limits = platform.get("limits") or {}
    for name in ("cpu", "memory"):
        request, limit = requests.get(name), limits.get(name)
        if request is None or quantity(request) == 0:
            request = limit if limit is not None and quantity(limit) != 0 else platform_requests[name]
        if limit is None or quantity(limit) == 0:
            limit = request
        cap = platform_limits.get(name)
        if cap is not None:
            request = cap if quantity(request) > quantity(cap) else request
            limit = cap if quantity(limit) > quantity(cap) else limit
        request = limit if quantity(request) > quantity(limit) else request
        requests[name], limits[name] = str(request), str(limit)
    return {"limits": limits, "requests": requests}


def _task_pod_spec(
    *,
    image: str,
    k8s: Mapping[str, Any],
    name: str,
    execution: FlyteExecution,
    resources: Manifest,
) -> tuple[Manifest, Manifest]:
    """flyte:pluginmachinery/flytek8s/pod_helper.go ToK8sPodSpec for a container task: BuildRawPod
    (container_helper.go BuildRawContainer), ApplyFlytePodConfiguration (DecorateEnvVars in
    k8s_resource_adds.go, UpdatePod, default-security-context on the primary container)."""
    env = [{"name": k, "value": v} for k, v in execution.env.items()]
    env += [  # GetExecutionEnvVars
        {"name": "FLYTE_INTERNAL_EXECUTION_ID", "value": execution.execution_id},
        {"name": "FLYTE_INTERNAL_EXECUTION_PROJECT", "value": execution.project},
        {"name": "FLYTE_INTERNAL_EXECUTION_DOMAIN", "value": execution.domain},
        {"name": "FLYTE_ATTEMPT_NUMBER", "value": str(execution.attempt)},
        {"name": "FLYTE_INTERNAL_TASK_PROJECT", "value": execution.project},
        {"name": "FLYTE_INTERNAL_TASK_DOMAIN", "value": execution.domain},
        {"name": "FLYTE_INTERNAL_TASK_NAME", "value": execution.task_name},
        {"name": "FLYTE_INTERNAL_TASK_VERSION", "value": execution.task_version},
    ]
    # Go map iteration: the order of default env vars varies between runs; sorted here.
    env += [{"name": k, "value": v} for k, v in sorted(_string_map(k8s.get("default-env-vars")).items())]
    env_from = [
        {"secretRef": {"name": secret, "optional": True}}
        for secret in k8s.get("default-env-from-secrets") or []
    ]
    env_from += [
        {"configMapRef": {"name": config_map, "optional": True}}
        for config_map in k8s.get("default-env-from-configmaps") or []
    ]
    container: Manifest = {
        "name": name,  # the pod's generated name when it is a DNS-1123 label
        "image": image,
        "args": list(execution.args),
        "env": env,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": resources,
    }
    if env_from:
        container["envFrom"] = env_from
    if k8s.get("image-pull-policy"):
        container["imagePullPolicy"] = k8s["image-pull-policy"]
    if k8s.get("default-security-context") is not None:
        container["securityContext"] = copy.deepcopy(k8s["default-security-context"])
    spec: Manifest = {"containers": [container], "restartPolicy": "Never"}
    if k8s.get("default-tolerations"):
        spec["tolerations"] = copy.deepcopy(k8s["default-tolerations"])
    if execution.service_account:
        spec["serviceAccountName"] = execution.service_account
    if k8s.get("scheduler-name"):
        spec["schedulerName"] = k8s["scheduler-name"]
    if k8s.get("default-node-selector"):
        spec["nodeSelector"] = dict(k8s["default-node-selector"])
    if k8s.get("default-affinity"):
        spec["affinity"] = copy.deepcopy(k8s["default-affinity"])
    if k8s.get("default-pod-security-context") is not None:
        spec["securityContext"] = copy.deepcopy(k8s["default-pod-security-context"])
    if k8s.get("enable-host-networking-pod") is not None:
        spec["hostNetwork"] = bool(k8s["enable-host-networking-pod"])
    if k8s.get("default-pod-dns-config"):
        spec["dnsConfig"] = copy.deepcopy(k8s["default-pod-dns-config"])
    if k8s.get("default-pod-template-name"):
        raise NotImplementedError("default-pod-template-name (a base PodTemplate) is not modelled")
    metadata: Manifest = {
        "labels": {**_string_map(k8s.get("default-labels")), **execution.labels},
        "annotations": _string_map(k8s.get("default-annotations")),
    }
    return metadata, spec


def flyte_task_pod(
    *,
    task_image: str,
    k8s_plugin_config: Mapping[str, Any],
    namespace: str,
    name: str,
    task_resources: Mapping[str, Any] | None = None,
    platform_resources: Mapping[str, Any] | None = None,
    execution: FlyteExecution | None = None,
) -> Manifest:
    """The Pod propeller creates for a plain container task (flyte:plugins/k8s/pod/plugin.go builds
    it with flytek8s.ToK8sPodSpec). `task_resources` is the task's {requests, limits};
    `platform_resources` admin's `task_resources` ({defaults, limits})."""
    k8s = _with_defaults(FLYTE_K8S_DEFAULTS, k8s_plugin_config)
    execution = execution or FlyteExecution()
    resources = _task_resources(task_resources or {}, platform_resources or {}, k8s)
    metadata, spec = _task_pod_spec(
        image=task_image, k8s=k8s, name=name, execution=execution, resources=resources
    )
    # plugin.go BuildResource: a Python task's single container is marked primary.
    metadata["annotations"]["primary_container_name"] = name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": spec,
    }


def ray_task_custom(shape: Mapping[str, Any]) -> Manifest:
    """The task template's `custom` for a Ray task of this shape, as flytekitplugins-ray 1.16.31
    serialises it (RayFunctionTask.get_custom: MessageToDict of the flyteidl RayJob, so zero values
    are left out): head and worker resources (and a worker's arch as a nodeSelector) travel as
    K8sPod pod specs whose container is named ray-head / ray-worker."""

    def pod(container: str, resources: Mapping[str, Any], arch: str | None) -> Manifest:
        spec: Manifest = {
            "containers": [
                {
                    "resources": {
                        "requests": {"cpu": resources["cpu"], "memory": resources["memory"]},
                        "limits": {"cpu": resources["cpuLimit"], "memory": resources["memoryLimit"]},
                    },
                    "name": container,
                }
            ]
        }
        if arch is not None:
            spec["nodeSelector"] = {"kubernetes.io/arch": arch}
        return {"metadata": {}, "podSpec": spec, "primaryContainerName": "primary"}

    head: Manifest = {}
    if shape.get("headStartParams"):
        head["rayStartParams"] = dict(shape["headStartParams"])
    head["k8sPod"] = pod("ray-head", shape["head"], None)
    workers = []
    for worker in shape["workers"]:
        replicas = int(worker["replicas"])
        group: Manifest = {"groupName": worker["group"]}
        # flytekitplugins/ray/models.py WorkerGroupSpec: min/max widened to include replicas.
        low = min(replicas, int(worker["min"])) if worker.get("min") is not None else replicas
        high = max(replicas, int(worker["max"])) if worker.get("max") is not None else replicas
        for key, value in (("replicas", replicas), ("minReplicas", low), ("maxReplicas", high)):
            if value:
                group[key] = value
        if worker.get("startParams"):
            group["rayStartParams"] = dict(worker["startParams"])
        group["k8sPod"] = pod("ray-worker", worker, worker.get("arch"))
        workers.append(group)
    cluster: Manifest = {"headGroupSpec": head, "workerGroupSpec": workers}
    if shape.get("autoscaling"):
        cluster["enableAutoscaling"] = True
    custom: Manifest = {"rayCluster": cluster}
    if shape.get("shutdownAfterJobFinishes", True):
        custom["shutdownAfterJobFinishes"] = True
    if shape.get("ttlSecondsAfterFinished"):
        custom["ttlSecondsAfterFinished"] = int(shape["ttlSecondsAfterFinished"])
    return custom


def _mergo(base: Any, overlay: Any) -> Any:
    """mergo.Merge(WithOverride, WithAppendSlice) on JSON values: non-zero overlay values win, maps
    merge, lists append."""
    if isinstance(base, dict) and isinstance(overlay, Mapping):
        merged = dict(base)
        for key, value in overlay.items():
            if value in (None, "", 0, False, {}, []):
                continue
            merged[key] = _mergo(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(overlay, list):
        return base + copy.deepcopy(overlay)
    return copy.deepcopy(overlay)


def _merge_custom_pod_spec(base: Manifest, k8s_pod: Mapping[str, Any] | None) -> Manifest:
    """flyte:plugins/k8s/ray/ray.go mergeCustomPodSpec with pod_helper.go
    MergeOverlayPodSpecOntoBase: containers merge by name; overlay containers without a namesake
    are dropped."""
    overlay = (k8s_pod or {}).get("podSpec")
    if not overlay:
        return base
    merged: Manifest = _mergo(
        base, {k: v for k, v in overlay.items() if k not in ("containers", "initContainers")}
    )
    for key in ("containers", "initContainers"):
        if key not in base:
            continue
        merged[key] = [
            _merge_named(container, [c for c in overlay.get(key) or [] if c.get("name") == container["name"]])
            for container in base[key]
        ]
    return merged


def _merge_named(container: Manifest, overlays: Sequence[Mapping[str, Any]]) -> Manifest:
    merged = copy.deepcopy(container)
    for overlay in overlays:
        merged = _mergo(merged, overlay)
    return dict(merged)


def _ray_ports() -> list[Manifest]:
    """The ports buildHeadPodTemplate and buildWorkerPodTemplate give the Ray container."""
    return [
        {"name": "redis", "containerPort": 6379},
        {"name": "head", "containerPort": 10001},
        {"name": "dashboard", "containerPort": 8265},
    ]


def _group_template(
    base: Manifest, k8s_pod: Mapping[str, Any] | None, metadata: Manifest, execution: FlyteExecution
) -> Manifest:
    spec = _merge_custom_pod_spec(base, k8s_pod)
    labels = {**metadata["labels"], **(((k8s_pod or {}).get("metadata") or {}).get("labels") or {})}
    annotations = {
        **metadata["annotations"],
        **(((k8s_pod or {}).get("metadata") or {}).get("annotations") or {}),
    }
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}


def flyte_ray_job(
    shape: Mapping[str, Any],
    *,
    task_image: str,
    plugin_config: Mapping[str, Any],
    k8s_plugin_config: Mapping[str, Any],
    namespace: str,
    name: str,
    task_resources: Mapping[str, Any] | None = None,
    platform_resources: Mapping[str, Any] | None = None,
    execution: FlyteExecution | None = None,
) -> Manifest:
    """The RayJob Flyte's Ray plugin creates for a task of this Ray shape
    (flyte:plugins/k8s/ray/ray.go BuildResource, constructRayJob, buildHeadPodTemplate,
    buildWorkerPodTemplate, buildSubmitterPodTemplate, buildAutoscalerOptions).
    `plugin_config` is `configuration.inline.plugins.ray`, `k8s_plugin_config` `.plugins.k8s`."""
    return flyte_ray_job_from_custom(
        ray_task_custom(shape),
        task_image=task_image,
        plugin_config=plugin_config,
        k8s_plugin_config=k8s_plugin_config,
        namespace=namespace,
        name=name,
        task_resources=task_resources,
        platform_resources=platform_resources,
        execution=execution,
    )


def flyte_ray_job_from_custom(
    custom: Mapping[str, Any],
    *,
    task_image: str,
    plugin_config: Mapping[str, Any],
    k8s_plugin_config: Mapping[str, Any],
    namespace: str,
    name: str,
    task_resources: Mapping[str, Any] | None = None,
    platform_resources: Mapping[str, Any] | None = None,
    execution: FlyteExecution | None = None,
) -> Manifest:
    """`flyte_ray_job` from a task template's serialised `custom` (the flyteidl RayJob as JSON)."""
    config = _with_defaults(FLYTE_RAY_DEFAULTS, plugin_config)
    k8s = _with_defaults(FLYTE_K8S_DEFAULTS, k8s_plugin_config)
    execution = execution or FlyteExecution()
    if config.get("logsSidecar"):
        raise NotImplementedError("the Ray logs sidecar (plugins.ray.logsSidecar) is not modelled")
    resources = _task_resources(task_resources or {}, platform_resources or {}, k8s)
    metadata, task_spec = _task_pod_spec(
        image=task_image, k8s=k8s, name=name, execution=execution, resources=resources
    )
    service_account = config.get("serviceAccount") or execution.service_account
    task_spec.pop("serviceAccountName", None)
    if service_account:
        task_spec["serviceAccountName"] = service_account
    ray_cluster = custom.get("rayCluster") or {}
    head_group = ray_cluster.get("headGroupSpec") or {}

    head_params = dict(head_group["rayStartParams"]) if head_group.get("rayStartParams") else {}
    if not head_params:
        head_params = dict(config["defaults"]["headNode"]["startParameters"])
    head_params.setdefault("include-dashboard", "true" if config["includeDashboard"] else "false")
    head_params.setdefault("node-ip-address", config["defaults"]["headNode"]["ipAddress"])
    head_params.setdefault("dashboard-host", config["dashboardHost"])
    if not config["enableUsageStats"]:
        head_params.setdefault("disable-usage-stats", "true")

    head_spec = copy.deepcopy(task_spec)
    primary = head_spec["containers"][0]
    primary["name"] = "ray-head"
    primary["args"] = []
    primary["env"].append(_field_env("MY_POD_IP", "status.podIP"))
    primary.setdefault("ports", []).extend(_ray_ports())
    head_template = _group_template(head_spec, head_group.get("k8sPod"), metadata, execution)

    cluster_spec: Manifest = {
        "headGroupSpec": {
            "template": head_template,
            "serviceType": config["serviceType"],
            "enableIngress": bool(config["enableIngress"]),
            "rayStartParams": head_params,
        },
        "workerGroupSpecs": [],
        "enableInTreeAutoscaling": bool(ray_cluster.get("enableAutoscaling", False)),
    }
    options = ray_cluster.get("autoscalerOptions")
    if options is not None:
        cluster_spec["autoscalerOptions"] = _autoscaler_options(options)
    for group in ray_cluster.get("workerGroupSpec") or []:
        worker_spec = copy.deepcopy(task_spec)
        primary = worker_spec["containers"][0]
        primary["name"] = "ray-worker"
        primary["args"] = []
        primary["env"] += _worker_env()
        primary["lifecycle"] = {"preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}}
        primary.setdefault("ports", []).extend(_ray_ports())
        params = dict(group["rayStartParams"]) if group.get("rayStartParams") else {}
        if not params:
            params = dict(config["defaults"]["workerNode"]["startParameters"])
        params.setdefault("node-ip-address", config["defaults"]["workerNode"]["ipAddress"])
        if not config["enableUsageStats"]:
            params.setdefault("disable-usage-stats", "true")
        replicas = int(group.get("replicas", 0))
        cluster_spec["workerGroupSpecs"].append(
            {
                "groupName": group["groupName"],
                "minReplicas": min(int(group.get("minReplicas", 0)), replicas),
                "maxReplicas": max(int(group.get("maxReplicas", 0)), replicas),
                "replicas": replicas,
                "rayStartParams": params,
                "template": _group_template(worker_spec, group.get("k8sPod"), metadata, execution),
            }
        )
    shutdown, ttl = bool(config["shutdownAfterJobFinishes"]), int(config["ttlSecondsAfterFinished"])
    if custom.get("shutdownAfterJobFinishes"):
        shutdown, ttl = True, int(custom.get("ttlSecondsAfterFinished", 0))
    if custom.get("runtimeEnv") or custom.get("runtimeEnvYAML"):
        raise NotImplementedError("runtime_env is not modelled")
    entrypoint = " ".join(arg if arg != "" else "''" for arg in execution.args)
    submitter = {"metadata": copy.deepcopy(metadata), "spec": copy.deepcopy(task_spec)}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": namespace, **copy.deepcopy(metadata)},
        "spec": {
            "rayClusterSpec": cluster_spec,
            "entrypoint": entrypoint,
            "shutdownAfterJobFinishes": shutdown,
            "ttlSecondsAfterFinished": ttl,
            "submitterPodTemplate": submitter,
        },
    }


def _worker_env() -> list[Manifest]:
    """buildWorkerPodTemplate's env (MEMORY_* read the CPU fields, as upstream does)."""

    def resource(name: str, field_name: str) -> Manifest:
        return {
            "name": name,
            "valueFrom": {"resourceFieldRef": {"containerName": "ray-worker", "resource": field_name}},
        }

    return [
        {"name": "RAY_DISABLE_DOCKER_CPU_WARNING", "value": "1"},
        {"name": "TYPE", "value": "worker"},
        resource("CPU_REQUEST", "requests.cpu"),
        resource("CPU_LIMITS", "limits.cpu"),
        resource("MEMORY_REQUESTS", "requests.cpu"),
        resource("MEMORY_LIMITS", "limits.cpu"),
        _field_env("MY_POD_NAME", "metadata.name"),
        _field_env("MY_POD_IP", "status.podIP"),
    ]


def _autoscaler_options(options: Mapping[str, Any]) -> Manifest:
    """buildAutoscalerOptions: idle timeout, upscaling mode, image, resources, env. flyteidl's
    AutoscalerOptions has no securityContext, so the sidecar KubeRay adds never gets one."""
    result: Manifest = {}
    if int(options.get("idleTimeoutSeconds", 0)) > 0:
        result["idleTimeoutSeconds"] = int(options["idleTimeoutSeconds"])
    modes = {
        "UPSCALING_MODE_DEFAULT": "Default",
        "UPSCALING_MODE_CONSERVATIVE": "Conservative",
        "UPSCALING_MODE_AGGRESSIVE": "Aggressive",
    }
    if options.get("upscalingMode") in modes:
        result["upscalingMode"] = modes[options["upscalingMode"]]
    if options.get("image"):
        result["image"] = options["image"]
    if options.get("resources"):
        result["resources"] = _idl_resources(options["resources"])
    if options.get("env"):
        result["env"] = [{"name": kv["key"], "value": kv.get("value", "")} for kv in options["env"]]
    return result


def _idl_resources(resources: Mapping[str, Any]) -> Manifest:
    """flytek8s ToK8sResourceRequirements for CPU and memory entries of flyteidl core.Resources."""
    names = {"CPU": "cpu", "MEMORY": "memory"}
    result: Manifest = {}
    for side in ("requests", "limits"):
        entries = {names[e["name"]]: e["value"] for e in resources.get(side) or [] if e.get("name") in names}
        if entries:
            result[side] = entries
    return result
