"""Turn an evaluation into the render tree: plan, Kubernetes objects, Helm releases, commands.

Layout (all files sorted, keys sorted, block-style scripts, no timestamps):

    plan.yaml                         every resource: id, type, name, parent, provider, dependsOn
    k8s/<namespace|_cluster>/<Kind>-<name>.yaml
    helm/<namespace>-<release>.yaml   chart, repository, version, namespace, values
    commands/<node>/<nn>-<step>.yaml  remote/local commands in dependency order, with scripts
    outputs.yaml                      stack exports, secrets as <secret>
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

from naomi.render.engine import Evaluation, Record, RenderError

HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
COMPONENT_NODE_TYPE = "naomi:hardware:MicroK8sNode"


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)


@dataclass(frozen=True)
class Rendered:
    """What tests and validators look at, besides the files."""

    files: dict[str, str]
    kubernetes: list[dict[str, Any]]
    helm: list[dict[str, Any]]


def is_kubernetes_object(record: Record) -> bool:
    return (
        record.custom
        and record.type.startswith("kubernetes:")
        and record.type not in HELM_TYPES
        and "apiVersion" in record.inputs
        and "kind" in record.inputs
    )


def _object_path(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace") or "_cluster"
    name = metadata.get("name") or "<unnamed>"
    return f"k8s/{namespace}/{obj['kind']}-{name}.yaml"


def _helm_document(record: Record) -> dict[str, Any]:
    inputs = record.inputs
    repository = (inputs.get("repositoryOpts") or {}).get("repo")
    return {
        "release": inputs.get("name") or record.name,
        "namespace": inputs.get("namespace"),
        "chart": inputs.get("chart"),
        "repository": repository,
        "version": inputs.get("version"),
        "values": inputs.get("values") or {},
        "skipCrds": bool(inputs.get("skipCrds", False)),
    }


def render(evaluation: Evaluation) -> Rendered:
    """Build every file of the render tree in memory (deterministic, duplicate-checked)."""
    records = sorted(evaluation.records, key=lambda r: r.urn)
    seen: set[str] = set()
    for record in records:
        if record.urn in seen:
            raise RenderError(f"duplicate resource name: {record.type} {record.name!r} is registered twice")
        seen.add(record.urn)
    by_urn = {r.urn: r for r in records}

    files: dict[str, str] = {}
    plan = []
    for record in records:
        plan.append(
            {
                "id": record.id,
                "type": record.type,
                "name": record.name,
                "parent": by_urn[record.parent].id if record.parent in by_urn else None,
                "provider": record.provider or None,
                "dependsOn": sorted(by_urn[d].id for d in record.dependencies if d in by_urn),
            }
        )
    files["plan.yaml"] = dump({"stack": evaluation.stack, "resources": plan})

    kubernetes: list[dict[str, Any]] = []
    helm: list[dict[str, Any]] = []
    for record in records:
        if is_kubernetes_object(record):
            path = _object_path(record.inputs)
            if path in files:
                raise RenderError(f"two resources render to the same Kubernetes object: {path}")
            files[path] = dump(record.inputs)
            kubernetes.append(record.inputs)
        elif record.type in HELM_TYPES:
            document = _helm_document(record)
            path = f"helm/{document['namespace']}-{document['release']}.yaml"
            if path in files:
                raise RenderError(f"two Helm releases render to {path}")
            files[path] = dump(document)
            helm.append(document)

    files.update(_commands(records, by_urn))
    outputs = {
        name: ("<secret>" if name in evaluation.secret_outputs else value)
        for name, value in sorted(evaluation.outputs.items())
    }
    files["outputs.yaml"] = dump(outputs)
    return Rendered(files=dict(sorted(files.items())), kubernetes=kubernetes, helm=helm)


def _commands(records: list[Record], by_urn: dict[str, Record]) -> dict[str, str]:
    commands = [r for r in records if r.type in COMMAND_TYPES]
    graph = TopologicalSorter({c.urn: [d for d in c.dependencies if d in by_urn] for c in commands})
    order: list[str] = []
    graph.prepare()
    while graph.is_active():
        ready = sorted(graph.get_ready())
        order.extend(ready)
        graph.done(*ready)
    position = {urn: index for index, urn in enumerate(order)}
    per_node: dict[str, list[Record]] = defaultdict(list)
    for record in commands:
        parent = by_urn.get(record.parent)
        node = parent.name if parent is not None and parent.type == COMPONENT_NODE_TYPE else "_cluster"
        per_node[node].append(record)
    files: dict[str, str] = {}
    for node, steps in per_node.items():
        steps.sort(key=lambda r: (position.get(r.urn, len(position)), r.name))
        for index, record in enumerate(steps, start=1):
            step = record.name.removeprefix(f"{node}-") if node != "_cluster" else record.name
            connection = dict(record.inputs.get("connection") or {})
            for secret_field in ("privateKey", "password", "privateKeyPassword"):
                if secret_field in connection:
                    connection[secret_field] = "<secret>"
            environment = {
                key: ("<secret>" if "KEY" in key and "HOST_KEY" not in key else value)
                for key, value in (record.inputs.get("environment") or {}).items()
            }
            document = {
                "resource": record.id,
                "connection": connection,
                "environment": environment,
                "create": record.inputs.get("create"),
                "update": record.inputs.get("update"),
                "delete": record.inputs.get("delete"),
                "triggers": record.inputs.get("triggers") or [],
                "dependsOn": sorted(by_urn[d].id for d in record.dependencies if d in by_urn),
            }
            files[f"commands/{node}/{index:02d}-{step}.yaml"] = dump(document)
    return files


def write(rendered: Rendered, out: Path) -> None:
    """Replace `out` with the render, atomically enough that a failure leaves the old one."""
    if out.exists() and any(out.iterdir()) and not (out / "plan.yaml").is_file():
        raise RenderError(f"{out} exists and is not a previous render (no plan.yaml); refusing to overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".render-", dir=out.parent))
    try:
        for relative, text in rendered.files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
