"""The `naomi` command: offline render and diff of stacks, and the config schema.

Every error a user can cause (bad stack file, unknown stack, broken render) ends as one
line on stderr and exit code 2; nothing is written in that case.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from naomi.images import ImageUse

from workloads import catalogue

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
# What naomi prints carries user text (keys, names, addresses, stack outputs): never read as
# rich markup or emoji codes (a key `naomi:bomb:` must print as typed).
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)


def find_project_dir(start: Path | None = None) -> Path:
    """The folder holding naomi's Pulumi.yaml: from the working directory up, else the package's."""
    candidates = [start or Path.cwd(), *(start or Path.cwd()).parents, Path(__file__).resolve().parents[1]]
    for candidate in candidates:
        pulumi_yaml = candidate / "Pulumi.yaml"
        if pulumi_yaml.is_file() and "name: naomi" in pulumi_yaml.read_text():
            return candidate
    raise typer.BadParameter("no naomi project (Pulumi.yaml with 'name: naomi') here or above")


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False)
    return typer.Exit(code=2)


def available_stacks(project_dir: Path) -> list[str]:
    return sorted(
        p.name.removeprefix("Pulumi.").removesuffix(".yaml")
        for p in (project_dir / "stacks").glob("Pulumi.*.yaml")
    )


ProjectDir = Annotated[
    Path | None, typer.Option(help="project root (default: found from the working directory)")
]


@app.command()
def render(
    stack: Annotated[str, typer.Option(help="stack name: stacks/Pulumi.<stack>.yaml")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="output folder (default: out/<stack>)")
    ] = None,
    diff: Annotated[
        str | None, typer.Option(help="also diff against this git revision (e.g. origin/main)")
    ] = None,
    preview: Annotated[
        bool, typer.Option(help="first-run preview: command outputs (kubeconfig) unknown")
    ] = False,
    charts_cache: Annotated[
        Path | None,
        typer.Option("--charts", help="chart cache (default: $NAOMI_CHARTS, else ~/.cache/naomi/charts)"),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Evaluate a stack offline under Pulumi's mock runtime and write its render tree."""
    from naomi.cluster.charts import REQUIRE_ENV, cache_dir
    from naomi.render.diff import diff_against_revision
    from naomi.render.engine import evaluate_stack
    from naomi.render.tree import render as render_tree
    from naomi.render.tree import write

    project = (project_dir or find_project_dir()).resolve()
    if stack not in available_stacks(project):
        raise _fail(f"unknown stack {stack!r}; stacks: {', '.join(available_stacks(project))}")
    target = (out_dir or project / "out" / stack).resolve()
    cache = cache_dir(charts_cache)
    started = time.perf_counter()
    try:
        with _chart_cache(charts_cache):
            evaluation = evaluate_stack(project, stack, preview=preview)
            rendered = render_tree(evaluation, charts_cache=cache)
            missing = f"charts missing from the cache: {', '.join(rendered.charts_missing)} (run: naomi charts pull)"
            if rendered.charts_missing and os.environ.get(REQUIRE_ENV) == "1":
                raise _fail(missing)
            write(rendered, target)
            changes = diff_against_revision(project, diff, stack, rendered.files) if diff else None
    except typer.Exit:
        raise
    except Exception as error:
        raise _fail(_one_line(error)) from None
    seconds = time.perf_counter() - started
    err.print(
        f"rendered {stack}: {len(evaluation.records)} resources, {len(rendered.kubernetes)} Kubernetes objects, "
        f"{len(rendered.helm)} Helm releases -> {target} ({seconds:.2f} s)"
    )
    crds = sum(1 for item in rendered.chart_objects if item.crd)
    applied = sum(1 for obj in rendered.kubernetes if obj.get("kind") == "CustomResourceDefinition")
    rendered_releases = len(rendered.helm) - len(rendered.charts_missing)
    err.print(
        f"chart objects: {len(rendered.chart_objects) - crds} and {crds} CRDs from {rendered_releases} "
        f"Helm releases, {applied} chart CRDs applied before them (cache {cache})",
        markup=False,
    )
    if rendered.charts_missing:
        err.print(missing, markup=False)
    if changes is not None:
        out.print(changes.markdown(f"naomi render diff: {stack} ({diff} -> working tree)"), markup=False)


charts_app = typer.Typer(no_args_is_help=True, help="The upstream Helm charts the platform deploys.")
app.add_typer(charts_app, name="charts")


@charts_app.command("pull")
def charts_pull(
    cache: Annotated[
        Path | None,
        typer.Option(help="chart cache (default: $NAOMI_CHARTS, else ~/.cache/naomi/charts)"),
    ] = None,
    pin: Annotated[
        bool, typer.Option(help="print the digest= lines to paste into infra/versions.py")
    ] = False,
) -> None:
    """Download the pinned chart versions from their repositories into the chart cache."""
    from naomi.cluster import charts

    target = charts.cache_dir(cache)
    pulled = []
    for chart in charts.PINNED_CHARTS:
        try:
            archive = charts.pull(chart, target)
        except charts.ChartError as error:
            raise _fail(str(error)) from None
        digest = charts.sha256_of(archive)
        pulled.append((chart, digest))
        out.print(f"{chart.name} {chart.version} sha256 {digest} -> {archive}", markup=False)
    if pin:
        out.print("# infra/versions.py: replace digest=None in each Chart(...)", markup=False)
        for chart, digest in pulled:
            out.print(
                f'digest="{digest}",  # {charts.pinned_name(chart)} ({chart.name} {chart.version})',
                markup=False,
            )


images_app = typer.Typer(no_args_is_help=True, help="The container images the platform runs.")
app.add_typer(images_app, name="images")


@images_app.command("check")
def images_check(
    stack: Annotated[
        str | None,
        typer.Option(help="check the images this stack runs (default: every image of the evidence table)"),
    ] = None,
    image: Annotated[list[str] | None, typer.Option(help="check only this image (repeatable)")] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(help="REGISTRY=URL: ask URL instead of the registry, e.g. a mirror (repeatable)"),
    ] = None,
    offline: Annotated[
        bool, typer.Option(help="no network: judge the images against the evidence table only")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds per registry request")] = 20.0,
    charts_cache: Annotated[
        Path | None,
        typer.Option("--charts", help="chart cache (default: $NAOMI_CHARTS, else ~/.cache/naomi/charts)"),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Ask each image's registry which platforms it really has and compare with the evidence table
    (infra/versions.py IMAGE_EVIDENCE); exit code 1 on a mismatch or a missing image, 2 when a
    registry could not be asked."""
    from infra.versions import IMAGE_EVIDENCE, PREBUILT_IMAGES
    from naomi import images as checks

    endpoints = {}
    for item in endpoint or []:
        name, separator, url = item.partition("=")
        if not separator or not name or not url:
            raise _fail(f"--endpoint {item!r}: expected REGISTRY=URL, e.g. docker.io=http://127.0.0.1:5000")
        endpoints[name] = url.rstrip("/")
    if stack is not None:
        uses, _, missing = _stack_image_uses(stack, charts_cache, project_dir)
        if missing:
            err.print(
                f"charts missing from the cache: {', '.join(missing)} (run: naomi charts pull); "
                "their images are not checked",
                markup=False,
            )
        uses = [u for u in uses if not image or u.image in image]
        needed = checks.needed_architectures(uses)
        problems = checks.evidence_problems(uses)
    else:
        needed = {ref: () for ref in image or [*IMAGE_EVIDENCE, *PREBUILT_IMAGES.values()]}
        problems = [
            f"{ref}: {'no evidence entry' if strength == 'missing' else 'the evidence shows no platform'}"
            for ref, _, _, strength, _ in checks.evidence_rows(needed)
            if strength in ("missing", "none")
        ]
    if offline:
        for ref, *evidence in checks.evidence_rows(needed):
            lands = ", ".join(needed[ref]) or "-"
            out.print(" | ".join([ref, f"lands on {lands}", *evidence]), markup=False)
        for problem in problems:
            out.print(f"problem: {problem}", markup=False)
        raise typer.Exit(code=1 if problems else 0)
    results = checks.check_online(needed, checks.RegistryClient(endpoints, timeout=timeout))
    for line in checks.online_report(results):
        out.print(line, markup=False)
    if any(result.failed for result in results):
        raise typer.Exit(code=1)
    if any(result.status == "error" for result in results):
        raise typer.Exit(code=2)


@images_app.command("list")
def images_list(
    stack: Annotated[str, typer.Option(help="stack name: stacks/Pulumi.<stack>.yaml")],
    charts_cache: Annotated[
        Path | None,
        typer.Option("--charts", help="chart cache (default: $NAOMI_CHARTS, else ~/.cache/naomi/charts)"),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Print every image the stack runs (ours, the charts', the operators' pods) with the
    architectures its nodes need, tab-separated: source, architectures, pulled as (the mirror's
    copy when naomi:images.mirror is set). For mirroring a registry before an offline install."""
    from naomi.cluster.charts import cache_dir
    from naomi.images import mirror_list, mirror_of, mirror_table

    uses, config, missing = _stack_image_uses(stack, charts_cache, project_dir)
    if missing:
        # Their pods (and images) are unknown: an incomplete list would leave the mirror short.
        cache = cache_dir(charts_cache)
        raise _fail(
            f"charts missing from the cache {cache}: {', '.join(missing)}; their images are unknown "
            f"(run: naomi charts pull --cache {cache})"
        )
    mirror = mirror_of(config)
    entries = mirror_list(uses, mirror)
    sys.stdout.write(mirror_table(entries))
    where = f"mirror {mirror.prefix}" if mirror is not None else "no mirror set (naomi:images.mirror)"
    err.print(f"{stack}: {len(entries)} images, {where}", markup=False)


def _stack_image_uses(
    stack: str, charts_cache: Path | None, project_dir: Path | None
) -> tuple[list[ImageUse], dict[str, str], list[str]]:
    """Every container of every pod the stack will run (its cluster model, chart objects included),
    the stack's config and the charts missing from the cache (whose pods are not in the model)."""
    from naomi.cluster.charts import cache_dir
    from naomi.cluster.checks import cluster_model, inventory
    from naomi.images import image_uses
    from naomi.render.engine import evaluate_stack
    from naomi.render.tree import render as render_tree

    project = (project_dir or find_project_dir()).resolve()
    if stack not in available_stacks(project):
        raise _fail(f"unknown stack {stack!r}; stacks: {', '.join(available_stacks(project))}")
    try:
        with _chart_cache(charts_cache):
            evaluation = evaluate_stack(project, stack)
            rendered = render_tree(evaluation, charts_cache=cache_dir(charts_cache))
    except Exception as error:
        raise _fail(_one_line(error)) from None
    uses = image_uses(cluster_model(rendered), inventory(evaluation))
    return uses, dict(evaluation.config), list(rendered.charts_missing)


@contextlib.contextmanager
def _chart_cache(explicit: Path | None) -> Iterator[None]:
    """`--charts DIR` for the stack program too (it applies the charts' CRDs from the cache it
    finds in $NAOMI_CHARTS, infra.charts), for the duration of one evaluation."""
    from naomi.cluster.charts import CACHE_ENV

    if explicit is None:
        yield
        return
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = os.path.abspath(explicit)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous


def _one_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@app.command()
def schema(
    out_file: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
) -> None:
    """Print the stack configuration as JSON Schema (for editors and PR checks)."""
    from stacks.config import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text)


@app.command()
def docs(
    out_file: Annotated[Path | None, typer.Option("--out", help="write here instead of stdout")] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Print the configuration reference (Markdown) generated from the config model."""
    from naomi.reference import config_reference
    from stacks.config import json_schema

    project = (project_dir or find_project_dir()).resolve()
    text = config_reference(json_schema(), project / "Pulumi.yaml")
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.write_text(text)


check_app = typer.Typer(
    add_completion=False, help="Check a stack: its config (default), or the cluster model."
)
app.add_typer(check_app, name="check")


@check_app.callback(invoke_without_command=True)
def check(
    context: typer.Context,
    stack: Annotated[str | None, typer.Option(help="stack name")] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Validate a stack file's config only (fast; no resources are evaluated).

    Refuses what the Pulumi CLI or the cluster would refuse later (duplicate keys, schedules,
    PromQL, addresses); names the secrets still to set with `pulumi config set --secret`.
    `naomi check flows` and `naomi check cluster` judge the whole render instead.
    """
    if context.invoked_subcommand is not None:
        return
    if stack is None:
        raise _fail("naomi check needs --stack <name> (or a sub-command: flows, cluster)")
    from naomi.render.engine import stack_config
    from stacks.config import load_stack_config

    project = (project_dir or find_project_dir()).resolve()
    try:
        values, secret_keys, absent = stack_config(project, stack)
        config = load_stack_config(values, set(secret_keys))
    except Exception as error:
        raise _fail(_one_line(error)) from None
    to_set = f"; secrets to set before pulumi up: {', '.join(absent)}" if absent else ""
    err.print(f"{stack}: config ok (profile {config.profile}, cluster mode {config.cluster.mode}){to_set}")


def _cluster_report(stack: str, project_dir: Path | None, charts_dir: Path | None) -> Any:
    from naomi.cluster.checks import run_checks
    from naomi.render.engine import evaluate_stack
    from naomi.render.tree import render as render_tree

    project = (project_dir or find_project_dir()).resolve()
    if stack not in available_stacks(project):
        raise _fail(f"unknown stack {stack!r}; stacks: {', '.join(available_stacks(project))}")
    try:
        evaluation = evaluate_stack(project, stack)
        rendered = render_tree(evaluation, charts_cache=charts_dir)
        report = run_checks(evaluation, rendered)
    except Exception as error:
        raise _fail(_one_line(error)) from None
    if rendered.charts_missing:
        err.print(
            f"charts missing from the cache: {', '.join(rendered.charts_missing)} (run: naomi charts pull); "
            "their pods are not in the model",
            markup=False,
        )
    return report


ChartsDir = Annotated[Path | None, typer.Option("--charts", help="chart cache (default: $NAOMI_CHARTS)")]


@check_app.command("flows")
def check_flows(
    stack: Annotated[str, typer.Option(help="stack name")],
    output: Annotated[
        str, typer.Option("--format", help="table, markdown, or mermaid (a graph of the declared flows)")
    ] = "table",
    charts_dir: ChartsDir = None,
    project_dir: ProjectDir = None,
) -> None:
    """Every declared network flow proven under NetworkPolicy semantics; exit 1 if one is not."""
    if output not in ("table", "markdown", "mermaid"):
        raise _fail(f"--format must be table, markdown or mermaid (got {output!r})")
    report = _cluster_report(stack, project_dir, charts_dir).flow_report
    rows = report.matrix()
    if output == "mermaid":
        out.print(_mermaid(rows), markup=False)
    elif output == "markdown":
        out.print("| from | to | ports | verdict | why |\n|---|---|---|---|---|", markup=False)
        for row in rows:
            out.print("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |", markup=False)
    else:
        from rich.table import Table

        table = Table(title=f"naomi {stack}: declared flows", show_lines=False)
        for column in ("from", "to", "ports", "verdict", "why"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    for line in report.undeclared:
        err.print(f"open but undeclared: {line}", markup=False)
    denied = [row for row in rows if row[3] != "allowed"]
    err.print(
        f"{stack}: {len(rows) - len(denied)} of {len(rows)} flows allowed, {len(report.undeclared)} undeclared open",
        markup=False,
    )
    if denied or report.undeclared:
        raise typer.Exit(code=1)


def _mermaid(rows: list[tuple[str, str, str, str, str]]) -> str:
    """A Mermaid graph: one node per pod group or address set, one edge per flow (ports)."""
    names: dict[str, str] = {}

    def node(label: str) -> str:
        return names.setdefault(label, f"n{len(names)}")

    lines = ["graph LR"]
    for source, destination, ports, verdict, _ in rows:
        arrow = "-->" if verdict == "allowed" else "-. DENIED .->"
        lines.append(f'  {node(source)}["{source}"] {arrow}|{ports}| {node(destination)}["{destination}"]')
    return "\n".join(lines)


@check_app.command("cluster")
def check_cluster(
    stack: Annotated[str, typer.Option(help="stack name")],
    charts_dir: ChartsDir = None,
    project_dir: ProjectDir = None,
) -> None:
    """All cluster-model checks (admission, flows, placement, gateway routes); exit 1 on a problem."""
    report = _cluster_report(stack, project_dir, charts_dir)
    for problem in report.problems:
        out.print(problem, markup=False)
    err.print(f"{stack}: {len(report.problems)} problem(s) in the cluster model", markup=False)
    if report.problems:
        raise typer.Exit(code=1)


CREDENTIAL_OUTPUTS = ("gatewayUsers", "mlflowAdmin", "objectStoreCredentials")


@app.command()
def credentials(
    stack: Annotated[str, typer.Option(help="stack name (as `pulumi stack ls` shows it)")],
    project_dir: ProjectDir = None,
) -> None:
    """Print the URLs and logins of a deployed stack (reads `pulumi stack output --show-secrets`)."""
    import shutil
    import subprocess

    pulumi_cli = shutil.which("pulumi")
    if pulumi_cli is None:
        raise _fail(
            f"pulumi CLI not found; the same data: pulumi stack output --stack {stack} --show-secrets --json"
        )
    project = (project_dir or find_project_dir()).resolve()
    result = subprocess.run(
        [pulumi_cli, "stack", "output", "--stack", stack, "--show-secrets", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise _fail(f"pulumi stack output failed: {_one_line(Exception(result.stderr or result.stdout))}")
    try:
        outputs = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise _fail("pulumi stack output did not print JSON") from None
    from rich.table import Table

    table = Table(title=f"naomi {stack}", show_lines=False)
    for column in ("what", "where", "login"):
        table.add_column(column)
    users = outputs.get("gatewayUsers") or {}
    gateway_login = ", ".join(f"{user} / {password}" for user, password in sorted(users.items()))
    for name, url in sorted((outputs.get("urls") or {}).items()):
        login = gateway_login
        if name == "mlflow" and outputs.get("mlflowAdmin"):
            login = f"{outputs['mlflowAdmin']['username']} / {outputs['mlflowAdmin']['password']}"
        if name == "objectStoreConsole" and outputs.get("objectStoreCredentials"):
            root = outputs["objectStoreCredentials"]
            login = f"gateway: {gateway_login}; console: {root['accessKey']} / {root['secretKey']}"
        if name == "rayDashboard" and outputs.get("rayAuthToken"):
            login = f"gateway: {gateway_login}; Ray token: {outputs['rayAuthToken']}"
        table.add_row(name, str(url), login)
    out.print(table)
    generations = outputs.get("credentialGenerations") or {}
    if generations:
        listed = ", ".join(f"{component} {number}" for component, number in sorted(generations.items()))
        out.print(
            f"Credential generations: {listed} (raise naomi:credentials.rotation.<component> to rotate; "
            "docs/runbooks/credentials.md)",
            markup=False,
        )
    if outputs.get("gatewayCaCertificate"):
        out.print(
            "Trust the gateway CA: pulumi stack output gatewayCaCertificate > naomi-ca.pem", markup=False
        )


@app.command()
def connect(
    stack: Annotated[str, typer.Option(help="stack name (as `pulumi stack ls` shows it)")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="folder for the files (default: ~/.naomi/<stack>)")
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="gateway user (default: the first in the stack outputs)")
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Write the client configuration for a laptop: the gateway CA, a Flyte config, Ray's job
    address and headers, MLflow's URI and login (see docs/runbooks/laptop.md)."""
    from naomi import connect as client

    project = (project_dir or find_project_dir()).resolve()
    folder = (out_dir or Path.home() / ".naomi" / stack).expanduser().resolve()
    try:
        outputs = client.read_stack_outputs(stack, project)
        connection = client.connection_from_outputs(stack, outputs, user=user)
        files = client.client_files(connection, folder)
        client.write_client_files(files, folder)
    except client.ConnectError as error:
        raise _fail(str(error)) from None
    out.print(
        f"wrote {folder}: {', '.join(files)} (gateway {connection.gateway}, user {connection.user})",
        markup=False,
    )
    out.print(f"next: . {folder / 'env'}  (then docs/runbooks/laptop.md)", markup=False)


@app.command()
def verify(
    stack: Annotated[
        str, typer.Option(help="stack name: stacks/Pulumi.<stack>.yaml, deployed with pulumi up")
    ],
    kubeconfig: Annotated[
        Path | None, typer.Option(help="kubeconfig file (default: the stack's kubeconfig output)")
    ] = None,
    flows: Annotated[bool, typer.Option(help="try the declared network flows from probe pods")] = True,
    probe_image: Annotated[
        str | None,
        typer.Option(help="probe pod image (default: the pinned BusyBox; a mirror of it when air-gapped)"),
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="also write the report here")] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Check a deployed stack on its cluster (workloads, gateway routes and auth, flows, a prediction);
    prints a Markdown report, exit code 1 when a check fails."""
    from naomi import verify as checks

    project = (project_dir or find_project_dir()).resolve()
    try:
        outputs = checks.read_stack_outputs(stack, project)
        api = checks.ClusterApi(checks.kubeconfig_text(outputs, kubeconfig))
        base_url = checks.gateway_base_url(outputs)
    except checks.VerifyError as error:
        raise _fail(str(error)) from None
    if stack not in available_stacks(project):
        raise _fail(f"unknown stack {stack!r}; stacks: {', '.join(available_stacks(project))}")
    from naomi.render.engine import evaluate_stack  # imports Pulumi: only once the cluster is reachable
    from naomi.render.tree import render as render_tree

    try:
        evaluation = evaluate_stack(project, stack)
        expected = checks.expectations(evaluation, render_tree(evaluation))
    except Exception as error:
        raise _fail(_one_line(error)) from None
    client = checks.GatewayClient(str(outputs.get("gatewayCaCertificate") or "") or None)
    users = outputs.get("gatewayUsers") or {}
    image = probe_image or checks.PROBE_IMAGE
    results = checks.verify(expected, api, client, base_url, users, flows=flows, probe_image=image)
    report = checks.report_markdown(stack, results, [f"gateway {base_url}", *expected.notes])
    sys.stdout.write(report)
    if out_file is not None:
        out_file.write_text(report)
    if checks.failed(results):
        raise typer.Exit(code=1)


PIPELINES = catalogue.PIPELINE_NAMES


def _isolated() -> bool:
    import socket as sockets

    return sorted(name for _, name in sockets.if_nameindex()) == ["lo"]


def _reexec_isolated(arguments: list[str]) -> int | None:
    """Ray listens on every interface: as root, re-run this command in a loopback-only namespace."""
    import os
    import shutil
    import subprocess

    if _isolated() or os.environ.get("NAOMI_ISOLATED") == "1":
        return None
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        err.print(
            "warning: Ray will listen on every network interface; run on a trusted network "
            "(as root, naomi isolates it with `unshare -n`)"
        )
        return None
    command = [
        "unshare",
        "-n",
        "bash",
        "-c",
        'ip link set lo up && exec "$@"',
        "bash",
        sys.executable,
        "-m",
        "naomi.cli",
        *arguments,
    ]
    import signal

    # Ctrl-C reaches the child too (same process group): it shuts Ray down and exits 130. The
    # parent only waits; a Python handler (not SIG_IGN, which the child would inherit) keeps
    # KeyboardInterrupt from cutting that wait short.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        return subprocess.call(
            command, env={**os.environ, "NAOMI_ISOLATED": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        )
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="pipeline to run: qoe or mnist")],
    data: Annotated[Path | None, typer.Option(help="a VIAVI cell.json.gz (default: synthetic data)")] = None,
    state: Annotated[Path, typer.Option(help="state folder (object store, MLflow, checkpoints)")] = Path(
        ".naomi/state"
    ),
    epochs: Annotated[int | None, typer.Option(min=1, max=200, help="default: qoe 6, mnist 8")] = None,
    workers: Annotated[int, typer.Option(min=1, max=16, help="Ray Train workers")] = 2,
) -> None:
    """Run a pipeline end to end on this machine: data, features, training, registry, serving, smoke test."""
    if pipeline not in PIPELINES:
        raise _fail(f"unknown pipeline {pipeline!r}; pipelines: {', '.join(PIPELINES)}")
    if data is not None and (pipeline != "qoe" or not data.is_file()):
        raise _fail(f"--data: no such file: {data}" if pipeline == "qoe" else "--data applies to qoe only")
    epochs = epochs or (6 if pipeline == "qoe" else 8)
    arguments = ["run", pipeline, "--state", str(state), "--epochs", str(epochs), "--workers", str(workers)]
    if data is not None:
        arguments += ["--data", str(data.resolve())]
    code = _reexec_isolated(arguments)
    if code is not None:
        raise typer.Exit(code=code)

    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from naomi.run_output import interrupt_seen, library_output_to
    from workloads.qoe.data import DataValidationError

    # Ray, MLflow and uvicorn print a great deal: into this file, named in the summary.
    log = (state / "logs" / f"{pipeline}.log").resolve()
    started = time.perf_counter()
    try:
        with interrupt_seen() as interrupted, library_output_to(log) as screen:
            try:
                rows = _run_with_progress(pipeline, state, data, epochs, workers, screen.err)
            except SystemExit:
                if interrupted():  # Ctrl-C while Ray Train held SIGINT: it exits, we report
                    raise KeyboardInterrupt from None
                raise
            finally:
                _shutdown_ray()
    except KeyboardInterrupt:
        err.print(f"interrupted: Ray is shut down; library output: {log}")
        raise typer.Exit(code=130) from None
    except DataValidationError as error:
        raise _fail(f"invalid data: {error}") from None
    except Exception:
        err.print(f"naomi run {pipeline} failed; library output: {log}")
        raise
    from rich.table import Table

    table = Table(title=f"naomi run {pipeline}", show_header=False)
    for label, text in rows:
        table.add_row(label, text)
    table.add_row("total", f"{time.perf_counter() - started:.1f}s")
    table.add_row("log", f"{log} (Ray, MLflow, uvicorn output)")
    out.print(table)


def _run_with_progress(
    pipeline: str, state: Path, data: Path | None, epochs: int, workers: int, screen: Any
) -> list[tuple[str, str]]:
    """The pipeline under a live display: the current step (a bar of epochs while training), and
    one line per finished step and epoch."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(file=screen, highlight=False, soft_wrap=True, markup=False, emoji=False)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{pipeline}: starting", total=None)
        current: list[tuple[str, float]] = []

        def finish() -> None:
            if current:
                name, since = current.pop()
                progress.console.print(f"{pipeline}: {name} {time.perf_counter() - since:.1f}s")

        def step(name: str) -> None:
            finish()
            current.append((name, time.perf_counter()))
            progress.reset(task, description=f"{pipeline}: {name}", total=None)

        def on_epoch(epoch: int, total: int, metrics: dict[str, float]) -> None:
            shown = ", ".join(f"{key} {metrics[key]:.4g}" for key in EPOCH_METRICS if key in metrics)
            text = f"{pipeline}: train epoch {epoch}/{total}" + (f" ({shown})" if shown else "")
            progress.update(task, description=text, total=total, completed=epoch)
            progress.console.print(text)

        rows = _run_pipeline(pipeline, state, data, epochs, workers, step, on_epoch)
        finish()
    return rows


EPOCH_METRICS = ("train_loss", "valid_loss", "train_accuracy")


def _shutdown_ray() -> None:
    """Stop the local Ray a run started, also after Ctrl-C (a second Ctrl-C does not cut it short)."""
    import signal

    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            ray.shutdown()
        finally:
            signal.signal(signal.SIGINT, previous)


def _run_pipeline(
    pipeline: str, state: Path, data: Path | None, epochs: int, workers: int, step: Any, on_epoch: Any
) -> list[tuple[str, str]]:
    if pipeline == "mnist":
        from workloads.mnist import pipeline as mnist

        return mnist.table_rows(
            mnist.run(mnist.MnistOptions(state=state, epochs=epochs, workers=workers), step, on_epoch)
        )
    from workloads.qoe import pipeline as qoe

    return qoe.table_rows(
        qoe.run(qoe.RunOptions(state=state, data=data, epochs=epochs, workers=workers), step, on_epoch)
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
