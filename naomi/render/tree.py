"""Turn an evaluation into the render tree: plan, Kubernetes objects, Helm releases, commands.

Layout (all files sorted, keys sorted, block-style scripts, no timestamps):

    plan.yaml                         every resource: id, type, name, parent, provider, dependsOn
    k8s/<namespace|_cluster>/<Kind>-<name>.yaml
                                      our objects, and every object the Helm releases create
                                      (first line: `# helm release <ns>/<release>: ...`)
    helm/<namespace>-<release>.yaml   chart, repository, version, sha256, namespace, values
    crds/<name>.yaml                  the operator charts' CRDs, applied by the program before their
                                      (skipCrds) releases (a ConfigGroup each, infra.charts)
    crds/<release>/<name>.yaml        the CRDs a release applies itself (the chart's own bytes)
    commands/<node>/<nn>-<step>.yaml  remote/local commands in dependency order, with scripts
    outputs.yaml                      stack exports, secrets as <secret>

Chart objects come from the chart archives in the chart cache (naomi.cluster.charts); a release
whose archive is not there is listed in `Rendered.charts_missing` and renders no objects.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

import yaml

from naomi.cluster import charts
from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation, Record, RenderError

HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
PULUMI_ORIGIN = "pulumi"
CRD_KIND = "CustomResourceDefinition"
CONFIG_GROUP_TYPE = "kubernetes:yaml/v2:ConfigGroup"
COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
COMPONENT_NODE_TYPE = "naomi:hardware:MicroK8sNode"


class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.representer.BaseRepresenter, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)


class _LibyamlDumper(yaml.CSafeDumper):
    """The same layout through libyaml's emitter: chart objects are many and large (Grafana's
    dashboards), and the pure-Python emitter took ~1 s of a render for them."""


_LibyamlDumper.add_representer(str, _str_representer)


def _dump_chart_object(document: Any) -> str:
    return yaml.dump(document, Dumper=_LibyamlDumper, sort_keys=True, default_flow_style=False, width=100)


@dataclass(frozen=True)
class ChartObject:
    """One object a Helm release creates (or, with `crd`, applies from the chart's crds/)."""

    origin: str  # "helm:<namespace>/<release>"
    object: dict[str, Any]
    source: str  # the chart template (or crds/ file) it came from
    hook: charts.Hook | None = None
    crd: bool = False


@dataclass(frozen=True)
class Rendered:
    """What tests and validators look at, besides the files."""

    files: dict[str, str]
    kubernetes: list[dict[str, Any]]  # our own objects (registered by the program)
    helm: list[dict[str, Any]]
    chart_objects: list[ChartObject] = field(default_factory=list)  # chart objects and CRDs
    charts_missing: list[str] = field(default_factory=list)  # "<chart> <version>" not in the cache

    def all_objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(origin, object) for everything that will exist in the cluster: "pulumi" for our
        objects, "helm:<namespace>/<release>" for what the releases create (CRDs included)."""
        for obj in self.kubernetes:
            yield PULUMI_ORIGIN, obj
        for item in self.chart_objects:
            yield item.origin, item.object

    def crds(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(render file, object) of every CRD that will be applied: the program's (crds/<name>.yaml)
        and those a release applies itself (crds/<release>/<name>.yaml, `naomi:charts.crds: helm`)."""
        for obj in self.kubernetes:
            if obj.get("kind") == CRD_KIND:
                yield f"crds/{obj['metadata']['name']}.yaml", obj
        for item in self.chart_objects:
            if item.crd:
                yield (
                    f"crds/{item.origin.rsplit('/', 1)[1]}/{item.object['metadata']['name']}.yaml",
                    item.object,
                )


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


def _local_archive(record: Record) -> str | None:
    """The Release's chart when it is a local archive path (`naomi:charts.source: cache`)."""
    chart = str(record.inputs.get("chart") or "")
    return chart if chart.endswith(".tgz") and not (record.inputs.get("repositoryOpts") or {}) else None


def _helm_document(record: Record) -> dict[str, Any]:
    inputs = record.inputs
    repository = (inputs.get("repositoryOpts") or {}).get("repo")
    chart = inputs.get("chart")
    version = inputs.get("version")
    document = {
        "release": inputs.get("name") or record.name,
        "namespace": inputs.get("namespace"),
        "chart": chart,
        "repository": repository,
        "version": version,
        "values": inputs.get("values") or {},
        "skipCrds": bool(inputs.get("skipCrds", False)),
        "timeout": inputs.get("timeout"),
    }
    local = _local_archive(record)
    if local is not None:
        # From the chart cache: the chart by name, the archive by file name (its folder is the
        # machine's, which the render leaves out so that it stays the same everywhere).
        file_name = Path(local).name
        document["chart"] = file_name.removesuffix(f"-{version}.tgz")
        document["archive"] = file_name
    return document


def _archive_of(record: Record, document: dict[str, Any], cache: Path) -> Path:
    """The archive a release installs: its local chart path (relative ones are relative to
    stacks/, where Pulumi runs the program), else `<name>-<version>.tgz` in the render's cache."""
    local = _local_archive(record)
    if local is not None:
        path = Path(local) if Path(local).is_absolute() else PROJECT_DIR / "stacks" / local
        if path.is_file():
            return path
    return charts.archive_path(cache, str(document["chart"]), str(document["version"]))


def _render_release(
    record: Record,
    document: dict[str, Any],
    cache: Path,
    kubernetes_version: str | None,
    installed_crds: list[dict[str, Any]],
) -> charts.ReleaseRender | None:
    """The release rendered from its archive; None when the archive is not there."""
    chart, version = str(document["chart"]), str(document["version"])
    archive = _archive_of(record, document, cache)
    if not archive.is_file():
        return None
    pinned = charts.pinned_chart(chart, version)
    try:
        if pinned is not None:
            charts.verify_digest(archive, pinned)
        return charts.render_release(
            archive,
            document["values"],
            release=str(document["release"]),
            namespace=str(document["namespace"]),
            kubernetes_version=kubernetes_version,
            include_crds=not document["skipCrds"],
            run_hooks=not bool(record.inputs.get("disableWebhooks", False)),
            installed_crds=installed_crds,
        )
    except charts.ChartError as error:
        raise RenderError(str(error)) from None


def _chart_file(header: str, item: ChartObject) -> str:
    lines = [header, f"# source: {item.source}"]
    if item.hook is not None:
        policies = ",".join(item.hook.delete_policies) or "before-hook-creation"
        lines.append(f"# helm hook: {','.join(item.hook.events)} (delete policy: {policies})")
    return "\n".join(lines) + "\n" + _dump_chart_object(item.object)


def render(evaluation: Evaluation, *, charts_cache: Path | None = None) -> Rendered:
    """Build every file of the render tree in memory (deterministic, duplicate-checked).

    Chart archives come from `charts_cache`, else `$NAOMI_CHARTS`, else ~/.cache/naomi/charts.
    """
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

    cache = charts.cache_dir(charts_cache)
    kubernetes_version = evaluation.config.get("naomi:kubernetesVersion")
    kubernetes: list[dict[str, Any]] = []
    helm: list[dict[str, Any]] = []
    chart_objects: list[ChartObject] = []
    missing: list[str] = []
    origins: dict[str, str] = {}  # k8s/ path -> what put it there, for collision errors

    # CRDs the program applies itself, by the URN a release depends on (the CRD, or the
    # ConfigGroup that applies it): a release ordered after them sees their APIs.
    our_crds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    groups: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {}
    for r in records:
        if is_kubernetes_object(r) and r.inputs["kind"] == CRD_KIND:
            our_crds[r.urn].append(r.inputs)
        elif r.type == CONFIG_GROUP_TYPE:
            try:
                groups[r.urn] = charts.stream_documents(
                    str(r.inputs.get("yaml") or ""), f"ConfigGroup {r.name}"
                )
            except charts.ChartError as error:
                raise RenderError(str(error)) from None
            our_crds[r.urn] = [obj for _, obj in groups[r.urn] if obj.get("kind") == CRD_KIND]

    def place(path: str, origin: str, text: str) -> None:
        if path in origins:
            raise RenderError(f"two objects render to {path}: {origins[path]} and {origin}")
        origins[path] = origin
        files[path] = text

    for record in records:
        if is_kubernetes_object(record):
            crd = record.inputs["kind"] == CRD_KIND
            path = f"crds/{record.inputs['metadata']['name']}.yaml" if crd else _object_path(record.inputs)
            if path in files:
                raise RenderError(f"two resources render to the same Kubernetes object: {path}")
            # CRDs (the operator charts', applied by the program before their releases) are
            # megabytes of schema: libyaml's emitter writes them in a fraction of the
            # pure-Python one's time.
            text = _dump_chart_object(record.inputs) if crd else dump(record.inputs)
            place(path, f"{PULUMI_ORIGIN} {record.id}", text)
            kubernetes.append(record.inputs)
        elif record.urn in groups:
            # What the provider registers from the group's YAML, one object each (the text as
            # given: the chart's own bytes for the CRDs).
            header = (
                f"# applied by {record.id} ({CONFIG_GROUP_TYPE}) before the releases that depend on it"
                " (the group's transforms, which run only at pulumi up, may add to it)\n"
            )
            for text, obj in groups[record.urn]:
                name = (obj.get("metadata") or {}).get("name")
                path = f"crds/{name}.yaml" if obj.get("kind") == CRD_KIND else _object_path(obj)
                place(path, f"{PULUMI_ORIGIN} {record.id}", header + text)
                kubernetes.append(obj)
        elif record.type in HELM_TYPES:
            document = _helm_document(record)
            path = f"helm/{document['namespace']}-{document['release']}.yaml"
            if path in files:
                raise RenderError(f"two Helm releases render to {path}")
            installed = [crd for urn in record.dependencies for crd in our_crds.get(urn, [])]
            release = _render_release(record, document, cache, kubernetes_version, installed)
            document["sha256"] = release.sha256 if release is not None else None
            if release is not None and release.dropped:
                # Rendered but never created (test hooks, files helm package leaves out): said
                # here, so a reviewer sees what the render left out and why.
                document["notCreated"] = sorted(release.dropped)
            files[path] = dump(document)
            helm.append(document)
            if release is None:
                missing.append(f"{document['chart']} {document['version']}")
                continue
            origin = f"helm:{release.namespace}/{release.release}"
            header = (
                f"# helm release {release.namespace}/{release.release}: "
                f"{document['chart']} {document['version']} (sha256 {release.sha256[:12]})"
            )
            for manifest in release.manifests:
                item = ChartObject(origin, manifest.object, manifest.source, manifest.hook)
                place(_object_path(item.object), f"{origin} ({item.source})", _chart_file(header, item))
                chart_objects.append(item)
            for manifest in release.crd_manifests:
                item = ChartObject(origin, manifest.object, manifest.source, crd=True)
                crd_path = f"crds/{release.release}/{item.object['metadata']['name']}.yaml"
                place(
                    crd_path,
                    f"{origin} ({item.source})",
                    f"{header}\n# source: {item.source}\n{manifest.text}",
                )
                chart_objects.append(item)

    files.update(_commands(records, by_urn))
    outputs = {
        name: ("<secret>" if name in evaluation.secret_outputs else value)
        for name, value in sorted(evaluation.outputs.items())
    }
    files["outputs.yaml"] = dump(outputs)
    return Rendered(
        files=dict(sorted(files.items())),
        kubernetes=kubernetes,
        helm=helm,
        chart_objects=chart_objects,
        charts_missing=sorted(missing),
    )


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
