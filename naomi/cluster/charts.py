"""Upstream Helm charts as a cluster receives them: the chart cache, digest-checked pulls, and
the offline render of one release into the objects Helm creates.

The platform's four charts are `helm.v3.Release` resources; pulumi-kubernetes installs them with
Helm's install action (provider/pkg/provider/helm_release.go at 94977969, Helm v3.20.2:
`client.SkipCRDs = skipCrds`, `client.DisableHooks = disableWebhooks`). This module renders the
same chart archive with the same values through the Helm SDK (helm-python-sdk 0.2.2, Helm
v4.2.3) and turns the output into what will exist in the cluster:

- every rendered manifest, multi-document files split, empty documents and NOTES.txt dropped;
- `metadata.namespace` set to the release namespace on namespaced kinds and cleared on
  cluster-scoped ones, as the API server does (`CLUSTER_SCOPED_KINDS` below);
- hooks as Helm treats them (helm v3.20.2 pkg/releaseutil/manifest_sorter.go): objects whose
  `helm.sh/hook` includes an install or upgrade event are created; test, delete-only and
  rollback-only hooks and unknown hook types are not, and are listed in `dropped`;
- the chart's `crds/` folders (chart and subcharts), applied before everything else unless
  `skipCrds`; the render sees their API versions, as Helm does after installing them.

Nothing here reads the network except `pull`. Importing it has no side effects.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.resources
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
from helm_python import _native as helm_native

from infra import versions
from infra.versions import Chart

CACHE_ENV = "NAOMI_CHARTS"
REQUIRE_ENV = "NAOMI_REQUIRE_CHARTS"
PINNED_CHARTS: tuple[Chart, ...] = (
    versions.TRAEFIK,
    versions.KUBERAY_OPERATOR,
    versions.FLYTE_BINARY,
    versions.KUBE_PROMETHEUS_STACK,
)

# Kinds the API server stores without a namespace (the `+genclient:nonNamespaced` types of
# k8s.io/api v0.32, `kubectl api-resources --namespaced=false` on 1.32). The API server clears
# metadata.namespace on them (k8s.io/apiserver pkg/registry/rest/create.go, BeforeCreate). Custom
# kinds take their scope from their CRD's `spec.scope`.
CLUSTER_SCOPED_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("", "ComponentStatus"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("certificates.k8s.io", "CertificateSigningRequest"),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "VolumeAttachment"),
    }
)

# Hook events (helm v3.20.2 pkg/release/hook.go; "test-success" is Helm 2's name for "test").
# An install runs pre-/post-install hooks and an upgrade (a later `pulumi up`) pre-/post-upgrade,
# so objects with one of those events are created; the others only run on `helm test`,
# uninstall or rollback.
CREATED_BY = frozenset({"pre-install", "post-install", "pre-upgrade", "post-upgrade"})
NOT_CREATED = {
    "test": "test hook, created only by `helm test`",
    "test-success": "test hook, created only by `helm test`",
    "pre-delete": "delete hook, created only on uninstall",
    "post-delete": "delete hook, created only on uninstall",
    "pre-rollback": "rollback hook, created only by `helm rollback`",
    "post-rollback": "rollback hook, created only by `helm rollback`",
}
HOOK_ANNOTATION = "helm.sh/hook"
HOOK_DELETE_ANNOTATION = "helm.sh/hook-delete-policy"
HOOK_WEIGHT_ANNOTATION = "helm.sh/hook-weight"


class ChartError(RuntimeError):
    """A chart could not be pulled, verified or rendered (one line naming chart or release)."""


# --- the cache ---------------------------------------------------------------------------------


def cache_dir(explicit: Path | None = None) -> Path:
    """The chart cache: `explicit`, else `$NAOMI_CHARTS`, else `~/.cache/naomi/charts`."""
    if explicit is not None:
        return explicit
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "naomi" / "charts"


def archive_path(cache: Path, name: str, version: str) -> Path:
    return cache / f"{name}-{version}.tgz"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pinned_chart(name: str, version: str) -> Chart | None:
    """The chart pinned in infra/versions.py with this name and version, if any."""
    return next((c for c in PINNED_CHARTS if (c.name, c.version) == (name, version)), None)


def pinned_name(chart: Chart) -> str:
    """The name infra/versions.py gives `chart` (TRAEFIK, ...), for messages users paste from."""
    return next(name for name, value in vars(versions).items() if value is chart)


def verify_digest(archive: Path, chart: Chart) -> str:
    """The archive's sha256; ChartError when the chart pins a different digest."""
    digest = sha256_of(archive)
    if chart.digest is not None and digest != chart.digest:
        raise ChartError(
            f"{chart.name} {chart.version}: {archive.name} has sha256 {digest}, "
            f"but infra/versions.py pins {chart.digest}"
        )
    return digest


def pull(chart: Chart, cache: Path) -> Path:
    """Download the pinned version from the chart's repository into `cache` as
    `<name>-<version>.tgz`, verifying `chart.digest` when pinned; returns the archive."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pull-", dir=cache) as staging:
        try:
            helm_python.pull(
                chart.name, repo_url=chart.repository, version=chart.version, destination=staging
            )
        except helm_python.HelmError as error:
            raise ChartError(
                f"cannot pull {chart.name} {chart.version} from {chart.repository}: {_one_line(error)}"
            ) from None
        # Helm names the download after the URL in the repository index, which need not be
        # <name>-<version>.tgz (helm v4.2.3 pkg/downloader/chart_downloader.go, DownloadTo).
        pulled = sorted(Path(staging).glob("*.tgz"))
        if len(pulled) != 1:
            raise ChartError(f"pulling {chart.name} {chart.version} left {len(pulled)} archives")
        try:
            with helm_python.Chart.load(pulled[0]) as loaded:
                served = loaded.name
        except helm_python.HelmError as error:
            raise ChartError(
                f"{chart.repository} served an unreadable archive for {chart.name} {chart.version}: "
                f"{_one_line(error)}"
            ) from None
        if served != chart.name:
            raise ChartError(f"{chart.repository} served chart {served!r} for {chart.name} {chart.version}")
        try:
            verify_digest(pulled[0], chart)
        except ChartError as error:
            raise ChartError(f"{error}; not cached (a changed upstream archive, or a wrong pin)") from None
        target = archive_path(cache, chart.name, chart.version)
        os.replace(pulled[0], target)
    return target


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    """How Helm runs a hook object (annotations `helm.sh/hook*`)."""

    events: tuple[str, ...]
    delete_policies: tuple[str, ...]
    weight: int


@dataclass(frozen=True)
class ChartManifest:
    """One object a release creates, with the template (or crds/ file) it came from."""

    source: str
    object: dict[str, Any]
    hook: Hook | None = None
    text: str = ""  # a CRD's document exactly as the chart ships it (Helm applies it unmodified)


@dataclass(frozen=True)
class ReleaseRender:
    release: str
    namespace: str
    chart: str
    chart_version: str  # as the archive's Chart.yaml says (flyte-binary's is a placeholder)
    sha256: str
    manifests: tuple[ChartManifest, ...]
    crd_manifests: tuple[ChartManifest, ...]
    dropped: tuple[str, ...]  # objects rendered but never created, with the reason

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [m.object for m in self.manifests]

    @property
    def crds(self) -> list[dict[str, Any]]:
        return [m.object for m in self.crd_manifests]

    @property
    def hooks(self) -> list[ChartManifest]:
        return [m for m in self.manifests if m.hook is not None]


def render_release(
    archive: Path,
    values: Mapping[str, Any],
    *,
    release: str,
    namespace: str,
    kubernetes_version: str | None = None,
    include_crds: bool = True,
    run_hooks: bool = True,
    installed_crds: Iterable[Mapping[str, Any]] = (),
) -> ReleaseRender:
    """Render `archive` with `values` as the first install of `namespace/release` would.

    `kubernetes_version` ("1.32") sets `.Capabilities.KubeVersion` and the API versions the
    templates see (that version's built-in APIs plus the chart's own CRDs); without it Helm's
    built-in defaults apply. `include_crds=False` is the release's `skipCrds`,
    `run_hooks=False` its `disableWebhooks`. `installed_crds` are CRDs that exist before the
    release is installed (the program applies an operator chart's CRDs itself, ordered before
    its `skipCrds` release): Helm then sees their APIs in discovery, as the chart's own.
    """
    label = f"helm release {namespace}/{release}"
    installed_crds = list(installed_crds)
    digest = sha256_of(archive)
    with _loaded(archive, label) as chart:
        name, chart_version = chart.name, chart.version
        label = f"{label} ({name} {chart_version})"
        if include_crds:
            crd_manifests, dropped = _crds(chart, archive, label)
        else:  # skipCrds: the chart's CRDs are not applied, so not read (only what is left out)
            crd_manifests, dropped = (), _crd_files(chart, archive)[1]
        try:
            chart.validate_schema(chart.merge_values(dict(values)))
        except helm_python.HelmValuesError as error:
            raise ChartError(f"{label}: {_schema_problem(error)}") from None
        options: dict[str, Any] = {"name": release, "namespace": namespace, "is_install": True}
        if kubernetes_version is not None:
            options["kube_version"] = f"v{kubernetes_version}.0"
            installed = _crd_api_versions(crd_manifests) if include_crds else set()  # skipCrds: not there
            installed |= _crd_api_versions(ChartManifest(source="", object=dict(c)) for c in installed_crds)
            options["api_versions"] = sorted({*kubernetes_api_versions(kubernetes_version), *installed})
        files = _render_templates(chart, values, options, label)
    scope = _crd_scopes([*(m.object for m in crd_manifests), *installed_crds])
    manifests: list[ChartManifest] = []
    for source in sorted(files):
        # NOTES.txt is text for the user, partials (`_*.tpl`) are never objects (helm v3.20.2
        # pkg/action/action.go renderResources, pkg/releaseutil/manifest_sorter.go).
        if source.endswith("NOTES.txt") or Path(source).name.startswith("_"):
            continue
        for _, document in _load_documents(files[source], f"{label}: {source}"):
            obj = _placed(document, namespace, scope)
            hook, reason = _hook(obj, run_hooks)
            if reason is not None:
                dropped.append(f"{_describe(obj)} ({source}): {reason}")
                continue
            manifests.append(ChartManifest(source=source, object=obj, hook=hook))
    return ReleaseRender(
        release=release,
        namespace=namespace,
        chart=name,
        chart_version=chart_version,
        sha256=digest,
        manifests=tuple(manifests),
        crd_manifests=crd_manifests if include_crds else (),
        dropped=tuple(dropped),
    )


def chart_crds(archive: Path) -> tuple[ChartManifest, ...]:
    """The CRDs Helm would apply from `archive`'s crds/ folders (chart and subcharts), in file
    order, as `render_release` finds them."""
    label = f"chart archive {archive.name}"
    with _loaded(archive, label) as chart:
        manifests, _ = _crds(chart, archive, label)
    return manifests


def chart_crd_files(archive: Path) -> tuple[tuple[str, str], ...]:
    """(file name, text) of each crds/ file Helm would apply from `archive`, unparsed (the
    program applies them as they are: infra.charts)."""
    label = f"chart archive {archive.name}"
    with _loaded(archive, label) as chart:
        files, _ = _crd_files(chart, archive)
    return files


def _loaded(archive: Path, label: str) -> helm_python.Chart:
    try:
        return helm_python.Chart.load(archive)
    except helm_python.HelmError as error:
        raise ChartError(f"{label}: cannot load {archive}: {_one_line(error)}") from None


def _crd_files(chart: helm_python.Chart, archive: Path) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The chart's (and subcharts') crds/ files, and those `helm package` leaves out.

    Helm applies every .yaml/.yml/.json file under crds/ (helm v3.20.2 pkg/chart/chart.go
    CRDObjects, pkg/action/install.go installCRDs). A packaged chart never holds the files its
    .helmignore excludes (traefik's excludes crds/kustomization.yaml, a kustomize file that
    no API server accepts), so those are dropped here, as from an archive `helm package` built.
    """
    ignore_rules = _helmignore_rules(archive)
    kept: list[tuple[str, str]] = []
    dropped: list[str] = []
    for crd in sorted(chart.crds, key=lambda c: c["filename"]):
        filename = crd["filename"]
        root, _, inside = filename.rpartition("/crds/")
        if _helmignored(f"crds/{inside}", ignore_rules.get(root, ())):
            dropped.append(f"{filename}: excluded by {root}/.helmignore, so not in a packaged chart")
            continue
        kept.append((filename, crd["data"]))
    return tuple(kept), dropped


def _crds(chart: helm_python.Chart, archive: Path, label: str) -> tuple[tuple[ChartManifest, ...], list[str]]:
    """The objects of the chart's crds/ files (each must be a CRD), and the files left out."""
    files, dropped = _crd_files(chart, archive)
    manifests: list[ChartManifest] = []
    for filename, data in files:
        for text, document in _load_documents(data, f"{label}: {filename}", stream=True):
            if document.get("kind") != "CustomResourceDefinition":
                raise ChartError(f"{label}: {filename} holds a {document.get('kind')}, not a CRD")
            manifests.append(ChartManifest(source=filename, object=document, text=text))
    return tuple(manifests), dropped


def _helmignore_rules(archive: Path) -> dict[str, tuple[str, ...]]:
    """Chart folder inside the archive (`traefik`, `kube-prometheus-stack/charts/grafana`) ->
    the rules of its .helmignore."""
    rules: dict[str, tuple[str, ...]] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith("/.helmignore"):
                extracted = tar.extractfile(member)
                text = extracted.read().decode() if extracted is not None else ""
                rules[member.name.removesuffix("/.helmignore")] = tuple(text.splitlines())
    return rules


def _helmignored(path: str, rules: Iterable[str]) -> bool:
    """Whether .helmignore `rules` exclude `path` (relative to its chart), as `helm package`
    decides (helm v3.20.2 pkg/ignore/rules.go): a rule without "/" matches the base name, one
    with "/" the whole path (Go's filepath.Match: `*` stops at "/"), a trailing "/" only
    folders; an excluded folder excludes everything in it. Negated ("!") rules are not
    modelled: none of the four charts has one."""
    parts = path.split("/")
    candidates = [("/".join(parts[:i]), True) for i in range(1, len(parts))] + [(path, False)]
    for raw in rules:
        rule = raw.strip()
        if not rule or rule.startswith(("#", "!")):
            continue
        folders_only = rule.endswith("/")
        rule = rule.removesuffix("/").removeprefix("/")
        for candidate, is_folder in candidates:
            if folders_only and not is_folder:
                continue
            name = candidate if "/" in rule else candidate.rsplit("/", 1)[-1]
            pattern_parts, name_parts = rule.split("/"), name.split("/")
            if len(pattern_parts) == len(name_parts) and all(
                fnmatch.fnmatchcase(n, p) for n, p in zip(name_parts, pattern_parts, strict=True)
            ):
                return True
    return False


def _render_templates(
    chart: helm_python.Chart, values: Mapping[str, Any], options: Mapping[str, Any], label: str
) -> dict[str, str]:
    """`Chart.render` plus the capability options its Python wrapper does not pass on.

    libhelm_c 0.2.2's `helm_render` accepts `kube_version` and `api_versions` (Helm's
    `--kube-version` / `--api-versions`: the version replaces `.Capabilities.KubeVersion`,
    the list is added to `.Capabilities.APIVersions`); helm-python-sdk 0.2.2 only forwards
    name/namespace/revision/install flags. The options are decoded strictly (an unknown key is
    an error), so a library that drops them fails loudly instead of rendering differently.
    tests/test_charts.py checks both reach the templates.
    """
    try:
        rendered = helm_native.call_string(
            "helm_render", chart._raw(), json.dumps(dict(values)), json.dumps(dict(options))
        )
    except helm_python.HelmError as error:
        raise ChartError(f"{label}: {_one_line(error)}") from None
    files: dict[str, str] = json.loads(rendered)
    return files


@functools.lru_cache(maxsize=8)
def kubernetes_api_versions(kubernetes_version: str) -> frozenset[str]:
    """`group/version` and `group/version/Kind` of every GA resource kind Kubernetes
    `kubernetes_version` serves, as discovery lists them for `.Capabilities.APIVersions.Has`.

    Taken from that version's OpenAPI as kubernetes-validate bundles it. Alpha and beta APIs
    are left out: a cluster serves them only with feature gates (beta APIs added since 1.24
    are off by default, KEP-3136).
    """
    folder = f"kubernetes-json-schema/v{kubernetes_version}.0-local-strict"
    resource = importlib.resources.files("kubernetes_validate").joinpath(folder, "_definitions.json")
    if not resource.is_file():
        raise ChartError(f"no Kubernetes {kubernetes_version} OpenAPI schema in kubernetes-validate")
    definitions: dict[str, Any] = json.loads(resource.read_text())["$defs"]
    found: set[str] = set()
    for schema in definitions.values():
        if "metadata" not in (schema.get("properties") or {}):
            continue  # DeleteOptions, WatchEvent and friends are registered per group, not resources
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if not re.fullmatch(r"v\d+", gvk["version"]) or gvk["kind"].endswith("List"):
                continue
            group_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            found.update({group_version, f"{group_version}/{gvk['kind']}"})
    return frozenset(found)


def _crd_api_versions(crds: Iterable[ChartManifest]) -> set[str]:
    found: set[str] = set()
    for manifest in crds:
        spec = manifest.object.get("spec") or {}
        for version in spec.get("versions") or []:
            if version.get("served", False):
                group_version = f"{spec['group']}/{version['name']}"
                found.update({group_version, f"{group_version}/{spec['names']['kind']}"})
    return found


def _crd_scopes(crds: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    return {
        (crd["spec"]["group"], crd["spec"]["names"]["kind"]): str(crd["spec"].get("scope", "Namespaced"))
        for crd in crds
        if crd.get("kind") == "CustomResourceDefinition"
    }


def is_cluster_scoped(obj: Mapping[str, Any], crd_scopes: Mapping[tuple[str, str], str]) -> bool:
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    key = (group, str(obj.get("kind", "")))
    return key in CLUSTER_SCOPED_KINDS or crd_scopes.get(key) == "Cluster"


def _placed(obj: dict[str, Any], namespace: str, crd_scopes: Mapping[tuple[str, str], str]) -> dict[str, Any]:
    """The object as stored: Helm's client creates namespaced objects without a namespace in
    the release namespace; the API server drops the namespace of cluster-scoped ones."""
    metadata = dict(obj.get("metadata") or {})
    if is_cluster_scoped(obj, crd_scopes):
        metadata.pop("namespace", None)
    elif not metadata.get("namespace"):
        metadata["namespace"] = namespace
    return {**obj, "metadata": metadata}


def _hook(obj: Mapping[str, Any], run_hooks: bool) -> tuple[Hook | None, str | None]:
    """(hook, None) for an object that will be created, (None, reason) for one that will not."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if HOOK_ANNOTATION not in annotations:
        return None, None
    events = tuple(e.strip().lower() for e in str(annotations[HOOK_ANNOTATION]).split(","))
    unknown = [e for e in events if e not in CREATED_BY and e not in NOT_CREATED]
    if unknown:
        return None, f"unknown hook type {', '.join(unknown)}: Helm skips the object"
    if not run_hooks:
        return None, "hook, and the release disables hooks (disableWebhooks)"
    if not CREATED_BY.intersection(events):
        return None, NOT_CREATED[events[0]]
    policies = tuple(
        p.strip().lower() for p in str(annotations.get(HOOK_DELETE_ANNOTATION, "")).split(",") if p.strip()
    )
    try:
        weight = int(str(annotations.get(HOOK_WEIGHT_ANNOTATION, "0")))
    except ValueError:
        weight = 0  # as Helm: an unparsable weight is 0
    return Hook(events=events, delete_policies=policies, weight=weight), None


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    where = f"{metadata['namespace']}/" if metadata.get("namespace") else ""
    return f"{obj.get('kind')} {where}{metadata.get('name')}"


# Helm splits rendered templates with this pattern (helm v3.20.2 pkg/releaseutil/manifest.go,
# SplitManifests); the kube client reads crds/ files as a YAML stream whose documents end at a
# line that is `---` plus whitespace (k8s.io/apimachinery pkg/util/yaml/decoder.go, YAMLReader).
_TEMPLATE_SEPARATOR = re.compile(r"(?:^|\s*\n)---\s*")
_STREAM_SEPARATOR = re.compile(r"^---[ \t\r]*$", re.MULTILINE)


@functools.lru_cache(maxsize=8)
def stream_documents(text: str, where: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(text, object) of each document of a YAML stream (a ConfigGroup's `yaml`), read as
    Kubernetes reads YAML; cached, as the charts' CRDs are megabytes: the objects are shared,
    read-only."""
    return tuple(_load_documents(text, where, stream=True))


def _load_documents(text: str, where: str, *, stream: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """(text, object) of each document in a rendered template (or, with `stream`, a crds/ file), read the way
    Kubernetes reads YAML: converted to JSON by sigs.k8s.io/yaml (through the Helm SDK), so
    timestamps stay strings, `yes` is true and a bare `=` is the string "="."""
    parts = _STREAM_SEPARATOR.split(text) if stream else _TEMPLATE_SEPARATOR.split(text.strip())
    found = []
    for part in parts:
        if not part.strip():
            continue
        try:
            document = helm_python.values_from_yaml(part)
        except helm_python.HelmError as error:
            raise ChartError(f"{where}: not a YAML object: {_one_line(error)}") from None
        if not document:
            continue  # only comments: Helm drops empty manifests
        if "kind" not in document:
            raise ChartError(f"{where}: a document without a kind")
        found.append((part.strip("\n") + "\n", document))
    return found


def _schema_problem(error: BaseException) -> str:
    """Helm's schema report (`<chart>:\\n- at '/a/b': message`) as `values.a.b: message`."""
    problems = re.findall(r"- at '([^']*)': (.*)", str(error))
    if not problems:
        return f"values: {_one_line(error)}"
    pointer, message = problems[0]
    path = ".".join(part for part in pointer.split("/") if part) or "<root>"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"values.{path}: {message}{more}" if path != "<root>" else f"values: {message}{more}"


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__
