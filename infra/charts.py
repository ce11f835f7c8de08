"""Where the platform's Helm charts come from, and the CRDs that must exist before their releases.

`ChartSource` (`naomi:charts`) says where each `helm.v3.Release` takes its chart: `repository`
(the chart's own Helm repository, pinned in `infra.versions`) or `cache` (a local folder of
`<name>-<version>.tgz` archives filled by `naomi charts pull --cache <dir>`, for clusters without
internet). A missing archive stops the program at `pulumi preview` with one line naming the
chart and the command that fetches it.

Helm installs the CRDs in a chart's `crds/` folder only when they are absent and never upgrades
or deletes them (helm v3.20.2 pkg/action/install.go installCRDs; upgrade.go has no CRD step;
https://helm.sh/docs/chart_best_practices/custom_resource_definitions/), so bumping a chart in
`infra.versions` would keep the old CRDs. By default (`naomi:charts.crds: program`) the program
therefore applies every CRD of an operator chart (traefik, kuberay-operator,
kube-prometheus-stack) itself, read from the chart archive (always the cache, whatever the
source of the release), before the release (whose `skipCrds` is then set):
- one `kubernetes:yaml/v2:ConfigGroup` per chart, `<release>-crds`, whose `yaml` is the chart's
  CRD documents exactly as the chart ships them (what Helm would apply). The provider registers
  one child per CRD, named `<release>-crds:<crd name>` (resourcePrefix defaults to the group's
  name: pulumi-kubernetes provider/pkg/provider/yaml/v2/configgroup.go Construct), so a version
  bump changes the text and updates each CRD in place (only `metadata.name` forces a replacement
  of a CRD, provider/pkg/provider/diff.go forceNewProperties), and `dependsOn` on the group orders
  the release after every child is created (yaml/v2 "Dependency ordering"; pulumi-kubernetes PR
  #2894).
- `keep_crds`, a transform on the group, does two things to each CRD child. It marks it
  `retain_on_delete`: a CRD's deletion deletes every custom resource of its kinds, so removing a
  chart or renaming the group never does that (the group's own options do not reach its
  children: pulumi-kubernetes#3065). And it annotates it `pulumi.com/waitFor:
  condition=Established`: the provider treats a CRD as ready once created (no await logic for the
  kind, provider/pkg/await/await.go), while Helm, which would have waited for it, skips its CRD
  step with `skipCrds`; without the wait the release could meet "no matches for kind" for the
  chart's own Prometheus or ServiceMonitor on a slow control plane. Transforms are the engine's
  and reach a packaged component's children (pulumi/pulumi#15843, CLI >= 3.113); the offline
  render runs no transforms, so tests call `keep_crds` directly.
One string input per chart instead of 39 typed resources keeps the stack's evaluation fast
(the CRD schemas are 9 MB; as typed resources they made a render 2.5x slower).
With `crds: helm` each release installs its chart's crds/ as Helm does (only when absent).

`chart_release` builds the release: chart source, `skipCrds`, the profile's timeout, CRDs first.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from infra.versions import Chart

# The chart cache: the same folder and layout as `naomi charts pull` (naomi.cluster.charts).
CACHE_ENV = "NAOMI_CHARTS"


def default_cache() -> Path:
    """`$NAOMI_CHARTS`, else `~/.cache/naomi/charts` (as `naomi charts pull` fills it)."""
    configured = os.environ.get(CACHE_ENV)
    folder = Path(configured).expanduser() if configured else Path.home() / ".cache" / "naomi" / "charts"
    return Path(os.path.abspath(folder))  # absolute, symlinks kept: messages name it as given


@dataclass(frozen=True, kw_only=True)
class ChartSource:
    """Where releases take their charts, and the program the CRDs it applies.

    `cache` is an absolute folder. With `mode` `cache`, a release's chart is the archive's path,
    written relative to `program_dir` when given (where Pulumi runs the program and its
    providers, so that the release's input does not depend on where the project is checked out).
    """

    mode: Literal["repository", "cache"] = "repository"
    cache: Path = field(default_factory=default_cache)
    program_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.cache.is_absolute():
            raise ValueError(f"ChartSource.cache must be an absolute folder (got {self.cache})")

    def archive(self, chart: Chart, why: str) -> Path:
        """The chart's archive in the cache, digest-checked against its pin; pulumi.RunError
        with the fix when it is not there."""
        path = self.cache / f"{chart.name}-{chart.version}.tgz"
        if not path.is_file():
            raise pulumi.RunError(
                f"naomi:charts: {chart.name} {chart.version} is not in the chart cache {self.cache} "
                f"({why}): run naomi charts pull --cache {self.cache}"
            )
        from naomi.cluster import charts as chart_cache

        try:
            chart_cache.verify_digest(path, chart)
        except chart_cache.ChartError as error:
            raise pulumi.RunError(f"naomi:charts: {error}") from None
        return path

    def release_inputs(self, chart: Chart) -> dict[str, Any]:
        """`chart`, `version` and `repository_opts` of a `helm.v3.Release` installing `chart`."""
        if self.mode == "repository":
            return {
                "chart": chart.name,
                "version": chart.version,
                "repository_opts": {"repo": chart.repository},
            }
        path = self.archive(chart, "naomi:charts.source is cache: the release installs this archive")
        # pulumi-kubernetes takes a local archive for `chart` when no repository is given and
        # the path exists from the provider's working directory (provider/pkg/provider/
        # helm_release.go locateChart/localChart); Check then reads the version from the
        # archive's Chart.yaml, so `version` is only what we expect it to say.
        written = os.path.relpath(path, self.program_dir) if self.program_dir is not None else str(path)
        return {"chart": written, "version": chart.version}


@dataclass(frozen=True, kw_only=True)
class ReleaseSettings:
    """What every release of the platform shares: chart source, timeout, the CRDs' provider.

    `timeout_seconds` is Helm's wait for the release's workloads and each hook (the provider's
    default is 300 s, helm_release.go defaultTimeoutSeconds); the profile sizes it. `crd_provider`
    applies the CRDs (the stack's provider for CRDs: server-side apply that adopts CRDs an
    earlier Helm install left, infra/../stacks/program.py); None: the component's provider.
    """

    source: ChartSource = field(default_factory=ChartSource)
    timeout_seconds: int = 600
    crd_provider: pulumi.ProviderResource | None = None
    # `naomi:charts.crds: program` (the default): the operator charts' CRDs applied by the program
    # before their releases; else each release installs its chart's crds/ as Helm does (only when
    # absent, never upgraded).
    apply_crds: bool = True

    def __post_init__(self) -> None:
        if self.timeout_seconds < 60:
            raise ValueError(
                f"ReleaseSettings.timeout_seconds must be at least 60 (got {self.timeout_seconds})"
            )


CRD_TYPE = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
CONFIG_GROUP_TYPE = "kubernetes:yaml/v2:ConfigGroup"


@functools.lru_cache(maxsize=16)
def _crd_text(path: str, size: int, mtime_ns: int) -> str:
    """The crds/ files of one archive as the chart ships them, read once per process (unparsed:
    the render reads the objects, naomi.render.tree)."""
    from naomi.cluster import charts as chart_cache

    try:
        files = chart_cache.chart_crd_files(Path(path))
    except chart_cache.ChartError as error:
        raise pulumi.RunError(f"naomi:charts: {error}") from None
    return "".join(f"---\n{text}" + ("" if text.endswith("\n") else "\n") for _, text in files)


def chart_crd_text(archive: Path) -> str:
    """Every crds/ file of `archive` (subcharts included) as one YAML stream."""
    stat = archive.stat()
    return _crd_text(str(archive), stat.st_size, stat.st_mtime_ns)


WAIT_FOR = {"pulumi.com/waitFor": "condition=Established"}  # pulumi-kubernetes await/condition/custom.go


def keep_crds(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """The CRD group's transform: each CRD is awaited until Established and never deleted by
    Pulumi (retain_on_delete); anything else is left as it is."""
    if args.type_ != CRD_TYPE:
        return None
    props = dict(args.props)
    metadata = props.get("metadata")
    if isinstance(metadata, Mapping):  # always, for objects parsed from YAML text
        annotations = metadata.get("annotations")
        props["metadata"] = {
            **metadata,
            "annotations": {**(annotations if isinstance(annotations, Mapping) else {}), **WAIT_FOR},
        }
    return pulumi.ResourceTransformResult(
        props=props,
        opts=pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )


def chart_release(
    name: str,
    *,
    chart: Chart,
    release: str,
    namespace: str,
    values: pulumi.Input[Mapping[str, Any]],
    settings: ReleaseSettings,
    opts: pulumi.ResourceOptions,
    crds: bool = True,
    skip_await: bool = False,
) -> tuple[k8s.helm.v3.Release, k8s.yaml.v2.ConfigGroup | None]:
    """The release of `chart`, with its CRDs (when `crds`, the chart has CRDs to apply, and
    `settings.apply_crds`) applied first by a ConfigGroup.

    `opts` are the release's (parent, dependencies); the CRDs get the same parent and
    `settings.crd_provider`. The release then skips the chart's crds/ (they exist by then, applied
    by us); otherwise Helm installs them. It waits for its workloads (`skip_await` False) up to the
    profile's timeout.
    """
    crd_group = None
    release_opts = opts
    crds = crds and settings.apply_crds
    if crds:
        archive = settings.source.archive(chart, "its CRDs are applied from the archive before the release")
        providers = [settings.crd_provider] if settings.crd_provider is not None else None
        crd_group = k8s.yaml.v2.ConfigGroup(
            f"{name}-crds",
            yaml=chart_crd_text(archive),
            opts=pulumi.ResourceOptions(parent=opts.parent, providers=providers, transforms=[keep_crds]),
        )
        release_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[crd_group]))
    resource = k8s.helm.v3.Release(
        name,
        name=release,
        namespace=namespace,
        values=values,
        skip_crds=crds,
        skip_await=skip_await,
        timeout=settings.timeout_seconds,
        opts=release_opts,
        **settings.source.release_inputs(chart),
    )
    return resource, crd_group
