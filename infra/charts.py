"""Where the platform's Helm charts come from, and the CRDs that must exist before their releases.

`ChartSource` (`naomi:charts`) says where each `helm.v3.Release` takes its chart: `repository`
(the chart's own Helm repository, pinned in `infra.versions`) or `cache` (a local folder of
`<name>-<version>.tgz` archives filled by `naomi charts pull --cache <dir>`, for clusters without
internet). A missing archive stops the program at `pulumi preview` with one line naming the
chart and the command that fetches it.

Helm installs the CRDs in a chart's `crds/` folder only when they are absent and never upgrades
or deletes them (helm v3.20.2 pkg/action/install.go installCRDs; upgrade.go has no CRD step;
https://helm.sh/docs/chart_best_practices/custom_resource_definitions/), so bumping a chart in
`infra.versions` would keep the old CRDs. `ChartCrds` therefore applies every CRD of an operator
chart (traefik, kuberay-operator, kube-prometheus-stack) itself, read from the chart archive
(always the cache, whatever the source of the release), as one `CustomResourceDefinition`
resource each: named by the CRD (stable across versions, renames and parents), created with
server-side apply before the release (whose `skipCrds` is then set), updated in place by a
version bump (only `metadata.name` forces a replacement of a CRD in pulumi-kubernetes,
provider/pkg/provider/diff.go forceNewProperties), and never deleted (`retain_on_delete`: a
CRD's deletion deletes every custom resource of its kinds).

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

from infra.naming import MANAGED_BY, PART_OF
from infra.versions import Chart

# The chart cache: the same folder and layout as `naomi charts pull` (naomi.cluster.charts).
CACHE_ENV = "NAOMI_CHARTS"
CHART_LABEL = "naomi.io/chart"  # on each CRD: the chart (and version) it was applied from


def default_cache() -> Path:
    """`$NAOMI_CHARTS`, else `~/.cache/naomi/charts` (as `naomi charts pull` fills it)."""
    configured = os.environ.get(CACHE_ENV)
    folder = Path(configured).expanduser() if configured else Path.home() / ".cache" / "naomi" / "charts"
    return Path(os.path.abspath(folder))  # absolute, symlinks kept: messages name it as given


@dataclass(frozen=True, kw_only=True)
class ChartSource:
    """Where releases take their charts and `ChartCrds` its archives.

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
    # `naomi:charts.crds: program`: the operator charts' CRDs as resources (ChartCrds); else each
    # release installs its chart's crds/ as Helm does (only when absent, never upgraded).
    apply_crds: bool = False

    def __post_init__(self) -> None:
        if self.timeout_seconds < 60:
            raise ValueError(
                f"ReleaseSettings.timeout_seconds must be at least 60 (got {self.timeout_seconds})"
            )


@functools.lru_cache(maxsize=16)
def _crd_objects(path: str, size: int, mtime_ns: int) -> tuple[dict[str, Any], ...]:
    """The CRDs of one archive, parsed once per process (three stacks in one test session or
    render); read-only: resources built from them never modify their inputs."""
    from naomi.cluster import charts as chart_cache

    try:
        return tuple(manifest.object for manifest in chart_cache.chart_crds(Path(path)))
    except chart_cache.ChartError as error:
        raise pulumi.RunError(f"naomi:charts: {error}") from None


def chart_crds(archive: Path) -> tuple[dict[str, Any], ...]:
    stat = archive.stat()
    return _crd_objects(str(archive), stat.st_size, stat.st_mtime_ns)


def crd_resource_spec(crd: Mapping[str, Any], chart: Chart) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metadata, spec) of a chart's CRD as we apply it: the chart's own metadata plus our labels
    (which chart version applied it); `status` is the API server's."""
    metadata = dict(crd.get("metadata") or {})
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CHART_LABEL: f"{chart.name}-{chart.version}",
    }
    return metadata, dict(crd["spec"])


class ChartCrds(pulumi.ComponentResource):
    """Every CRD of one chart archive, applied before its release and updated with it."""

    crds: list[k8s.apiextensions.v1.CustomResourceDefinition]

    def __init__(
        self, name: str, chart: Chart, archive: Path, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("naomi:platform:ChartCrds", name, None, opts)
        self.crds = []
        for crd in chart_crds(archive):
            metadata, spec = crd_resource_spec(crd, chart)
            self.crds.append(
                k8s.apiextensions.v1.CustomResourceDefinition(
                    # The CRD's own name: unique in the cluster and independent of the chart
                    # version and of our component names, so no upgrade or rename replaces it.
                    str(metadata["name"]),
                    metadata=metadata,
                    spec=spec,
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
                )
            )
        self.register_outputs({"names": [str(crd["metadata"]["name"]) for crd in chart_crds(archive)]})


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
) -> tuple[k8s.helm.v3.Release, ChartCrds | None]:
    """The release of `chart`, with its CRDs (when `crds`, the chart has CRDs to apply, and
    `settings.apply_crds`) applied first as `ChartCrds`.

    `opts` are the release's (parent, dependencies); the CRDs get the same parent and
    `settings.crd_provider`. The release then skips the chart's crds/ (they exist by then, applied
    by us); otherwise Helm installs them. It waits for its workloads (`skip_await` False) up to the
    profile's timeout.
    """
    crd_component = None
    release_opts = opts
    crds = crds and settings.apply_crds
    if crds:
        archive = settings.source.archive(chart, "its CRDs are applied from the archive before the release")
        crd_component = ChartCrds(
            f"{name}-crds",
            chart,
            archive,
            pulumi.ResourceOptions(parent=opts.parent, provider=settings.crd_provider),
        )
        release_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[crd_component]))
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
    return resource, crd_component
