"""Validators for what a render contains, built on real third-party schemas.

- Kubernetes objects: the OpenAPI schemas bundled with `kubernetes-validate`, strict (unknown
  fields, unknown kinds and removed API versions fail), for the stack's Kubernetes version.
- Custom resources: the CRD `openAPIV3Schema` from `../shared/reference/crds`, made strict the
  way the API server prunes (unknown fields are errors unless the schema preserves them).
- Helm values: every key the project sets must exist in the chart's default `values.yaml`
  (`../shared/reference/charts`) unless it sits under a documented free-form map.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# Free-form maps: keys below these paths are not in the chart defaults by design (subcharts
# whose values live in their own chart, or config blocks the application itself reads).
FREE_FORM_VALUES: dict[str, tuple[str, ...]] = {
    # flyte-binary: `configuration.inline` is raw flyte config; `deployment.extraPodSpec` a PodSpec;
    # `deployment.resources` appears only as a comment in values.yaml; the plugin map
    # `default-for-task-types` is keyed by task type (we add `ray`); `deployment.podSecurityContext`
    # is passed through as the pod securityContext (templates/deployment.yaml: omit "enabled").
    "flyte-binary": (
        "configuration.inline",
        "deployment.podSecurityContext",
        "deployment.extraPodSpec",
        "deployment.resources",
        "enabled_plugins.tasks.task-plugins.default-for-task-types",
        "serviceAccount.annotations",
    ),
    # kube-prometheus-stack: grafana / kube-state-metrics / node-exporter are subcharts whose
    # values are only partly mirrored in the parent values.yaml; grafana.ini is Grafana's own INI.
    "kube-prometheus-stack": (
        "grafana",
        "kube-state-metrics",
        "prometheus-node-exporter",
        "prometheus.prometheusSpec.additionalScrapeConfigs",
        "alertmanager.config",
    ),
    "kuberay-operator": (),
    "traefik": ("additionalArguments",),
    "mlflow": (),
}


class ValidationFailure(AssertionError):
    """One object or value that does not validate; the message names it and the field."""


def _yaml_loader() -> type[yaml.SafeLoader]:
    class Loader(yaml.SafeLoader):
        pass

    # alertmanagerconfig.yaml has bare `=` enum items (YAML 1.1 "value" tag); read them as strings.
    Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))  # type: ignore[arg-type]
    return Loader


@dataclass(frozen=True)
class Reference:
    """The shared reference folder (CRDs and chart defaults)."""

    root: Path

    @functools.cached_property
    def crd_schemas(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(apiVersion, kind) -> strict openAPIV3Schema, for every served version."""
        schemas: dict[tuple[str, str], dict[str, Any]] = {}
        for path in sorted((self.root / "crds").rglob("*.yaml")):
            for document in yaml.load_all(path.read_text(), Loader=_yaml_loader()):
                if not document or document.get("kind") != "CustomResourceDefinition":
                    continue
                spec = document["spec"]
                for version in spec["versions"]:
                    if not version.get("served", False):
                        continue
                    api_version = f"{spec['group']}/{version['name']}"
                    schema = version["schema"]["openAPIV3Schema"]
                    schemas[(api_version, spec["names"]["kind"])] = _strict(copy.deepcopy(schema))
        return schemas

    def chart_defaults(self, chart: str, version: str) -> dict[str, Any]:
        path = self.root / "charts" / chart / version / "values.yaml"
        if not path.is_file():
            raise ValidationFailure(f"no reference values for chart {chart} {version} at {path}")
        loaded = yaml.safe_load(path.read_text())
        return loaded if isinstance(loaded, dict) else {}

    def chart_values_schema(self, chart: str, version: str) -> dict[str, Any] | None:
        path = self.root / "charts" / chart / version / "values.schema.json"
        if not path.is_file():
            return None
        import json

        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields fail (as the API server prunes them), except where the schema keeps them."""
    if schema.get("type") == "object" or "properties" in schema:
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        for child in (schema.get("properties") or {}).values():
            _strict(child)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            _strict(extra)
    if isinstance(schema.get("items"), dict):
        _strict(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(key, []) or []:
            _strict(child)
    return schema


def validate_object(obj: Mapping[str, Any], kubernetes_version: str, reference: Reference | None) -> None:
    """Raise `ValidationFailure` naming the object and the field if `obj` is not valid."""
    metadata = obj.get("metadata") or {}
    name = (
        f"{obj.get('kind')} {metadata.get('namespace', '')}/{metadata.get('name')} ({obj.get('apiVersion')})"
    )
    key = (str(obj.get("apiVersion")), str(obj.get("kind")))
    if reference is not None and key in reference.crd_schemas:
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        envelope = ("apiVersion", "kind", "metadata")
        full = reference.crd_schemas[key]
        schema = {
            **full,
            "properties": {k: v for k, v in full.get("properties", {}).items() if k not in envelope},
            "required": [k for k in full.get("required", []) if k not in envelope],
        }
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.path))
        if errors:
            first = errors[0]
            path = ".".join(str(p) for p in first.path) or "<root>"
            raise ValidationFailure(f"{name}: {path}: {first.message}")
        _validate_metadata(name, metadata, kubernetes_version)
        return
    if key[0].split("/")[0].endswith((".io", ".com", ".sh")) and "k8s.io" not in key[0]:
        raise ValidationFailure(f"{name}: custom resource without a CRD schema in the reference folder")
    try:
        kubernetes_validate.validate(dict(obj), f"{kubernetes_version}.0", strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        raise ValidationFailure(
            f"{name}: no schema in Kubernetes {kubernetes_version} (unknown kind or removed API version)"
        ) from None
    except kubernetes_validate.ValidationError as error:
        path = (
            ".".join(str(p) for p in error.caught_exception.path)
            if hasattr(error, "caught_exception")
            else ""
        )
        raise ValidationFailure(f"{name}: {path}: {str(error).splitlines()[0]}") from None


def _validate_metadata(name: str, metadata: Mapping[str, Any], kubernetes_version: str) -> None:
    """Custom resources' metadata is an ObjectMeta: validate it through a ConfigMap wrapper."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(metadata)}
    try:
        kubernetes_validate.validate(probe, f"{kubernetes_version}.0", strict=True)
    except kubernetes_validate.ValidationError as error:
        raise ValidationFailure(f"{name}: metadata: {str(error).splitlines()[0]}") from None


def unknown_value_keys(
    values: Mapping[str, Any], defaults: Mapping[str, Any], free_form: tuple[str, ...] = ()
) -> list[str]:
    """Dotted paths of keys set in `values` that the chart's defaults do not have."""
    return sorted(_unknown(values, defaults, "", free_form))


def _unknown(
    values: Mapping[str, Any], defaults: Any, prefix: str, free_form: tuple[str, ...]
) -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if any(path == f or path.startswith(f + ".") for f in free_form):
            continue
        if not isinstance(defaults, Mapping):
            yield path
            continue
        if prefix.endswith("resources.") and key in ("requests", "limits"):
            continue  # a Kubernetes ResourceRequirements, even where the default shows only limits
        if key not in defaults:
            # An empty default map (podAnnotations: {}, nodeSelector: {}) takes any key.
            if defaults == {}:
                continue
            yield path
            continue
        default = defaults[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            yield from _unknown(value, default, path + ".", free_form)


def validate_helm_values(release: Mapping[str, Any], reference: Reference) -> None:
    chart, version = str(release["chart"]), str(release["version"])
    defaults = reference.chart_defaults(chart, version)
    unknown = unknown_value_keys(release.get("values") or {}, defaults, FREE_FORM_VALUES.get(chart, ()))
    if unknown:
        raise ValidationFailure(
            f"Helm release {release.get('release')} ({chart} {version}): keys not in the chart's values.yaml: "
            + ", ".join(unknown)
        )
    schema = reference.chart_values_schema(chart, version)
    if schema is not None:
        merged = _merge(defaults, release.get("values") or {})
        errors = sorted(
            jsonschema.Draft202012Validator(schema).iter_errors(merged), key=lambda e: list(e.path)
        )
        if errors:
            first = errors[0]
            path = ".".join(str(p) for p in first.path) or "<root>"
            raise ValidationFailure(
                f"Helm release {release.get('release')} ({chart}): {path}: {first.message}"
            )


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
