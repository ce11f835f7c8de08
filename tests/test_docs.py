"""Every command shown in the docs is exercised: run here (offline naomi commands), checked
against the render (kubectl objects, gateway paths, stack outputs, URNs, config keys), or found in
the provisioning scripts the fake-host tests run (commands shown for a node). Plus the generated
configuration reference is fresh, and the upgrade runbook's diff is what a version bump produces."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from naomi.paths import PROJECT_DIR
from naomi.render.diff import diff_files
from naomi.render.tree import Rendered
from tests.conftest import EXAMPLE_STACKS

DOCS = sorted([PROJECT_DIR / "README.md", *(PROJECT_DIR / "docs").rglob("*.md")])
KUBECTL_TYPES = {
    "pvc": "PersistentVolumeClaim",
    "statefulset": "StatefulSet",
    "cronjob": "CronJob",
    "deployment": "Deployment",
    "job": "Job",
    "svc": "Service",
    "raycluster": "RayCluster",
    "rayservice": "RayService",
    "servicemonitor": "ServiceMonitor",
    "podmonitor": "PodMonitor",
    "prometheusrule": "PrometheusRule",
}
# Commands on the operator's machine that need nothing from the project (environment setup).
SETUP = ("python3 -m venv", "ssh-keyscan ", "export ", "git ")
# Run for real, in order, in one shell, against local servers behind the real Traefik (tests/test_connect.py).
LAPTOP_RUNBOOK = "docs/runbooks/laptop.md"


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
            for line in block.splitlines():
                command = re.sub(r"\s+#\s.*$", "", line).strip()
                if command:
                    found.append((str(doc.relative_to(PROJECT_DIR)), command))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) >= 40


def _objects(renders: dict[str, Rendered]) -> set[tuple[str, str, str]]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
        for stack in EXAMPLE_STACKS
        for o in renders[stack].kubernetes
    }


def _created_jobs() -> set[tuple[str, str, str]]:
    """Jobs the docs themselves create (`kubectl create job --from=cronjob/... <name>`)."""
    created = set()
    for _, command in COMMANDS:
        words = command.split()
        if words[:1] == ["kubectl"] and "create" in words and "job" in words and "-n" in words:
            created.add(("Job", words[words.index("-n") + 1], words[-1]))
    return created


def _check_kubectl(words: list[str], renders: dict[str, Rendered]) -> None:
    objects = _objects(renders) | _created_jobs()
    namespaces = {name for _, _, name in objects if _ == "Namespace"} | {ns for _, ns, _ in objects}
    namespace = words[words.index("-n") + 1] if "-n" in words else None
    if namespace is not None:
        assert namespace in namespaces, namespace
    for word in words[1:]:
        if "/" in word and not word.startswith(("-", "--from=")):
            kind, _, name = word.partition("/")
            if kind in KUBECTL_TYPES and "<" not in name:
                assert (KUBECTL_TYPES[kind], namespace or "", name) in objects, word
            elif kind in KUBECTL_TYPES:
                prefix = name.split("<")[0]
                assert any(k == KUBECTL_TYPES[kind] and n.startswith(prefix) for k, _, n in objects), word
        if word.startswith("--from=cronjob/"):
            assert ("CronJob", namespace or "", word.split("/", 1)[1]) in objects, word
    verb = words[1] if words[1] != "-n" else words[3]
    if (
        verb == "get"
        and len(words) > words.index(verb) + 2
        and not words[words.index(verb) + 2].startswith("-")
    ):
        kind = words[words.index(verb) + 1]
        name = words[words.index(verb) + 2]
        if kind in KUBECTL_TYPES:
            assert (KUBECTL_TYPES[kind], namespace or "", name) in objects, (kind, name)
    if verb == "drain":
        nodes = {n["name"] for n in _nodes()}
        assert words[2] in nodes, words[2]


def _nodes() -> list[dict[str, str]]:
    config = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.lab-ha.yaml").read_text())["config"]
    edge = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.edge-lab.yaml").read_text())["config"]
    return [*config["naomi:cluster"]["nodes"], *edge["naomi:cluster"]["nodes"]]


def _check_pulumi(words: list[str], renders: dict[str, Rendered]) -> None:
    from stacks.config import json_schema

    if "--stack" in words:
        assert words[words.index("--stack") + 1] in EXAMPLE_STACKS
    if words[1:3] == ["stack", "select"] or words[1:3] == ["stack", "init"]:
        assert words[3] in EXAMPLE_STACKS
    if words[1:3] == ["config", "set"]:
        key = next(w for w in words[3:] if w.startswith("naomi:"))
        assert key.split(".")[0] in json_schema()["properties"], key
    if words[1:3] == ["stack", "output"] and len(words) > 3 and not words[3].startswith("-"):
        outputs = yaml.safe_load(renders["edge-lab"].files["outputs.yaml"])
        assert words[3] in outputs, words[3]
    if "--replace" in words:
        urn = words[words.index("--replace") + 1]
        stack, _, rest = urn.removeprefix("urn:pulumi:").partition("::naomi::")
        assert stack in EXAMPLE_STACKS and f"id: {rest}\n" in renders[stack].files["plan.yaml"], urn
    if "--policy-pack" in words:
        assert (PROJECT_DIR / words[words.index("--policy-pack") + 1] / "PulumiPolicy.yaml").is_file()


def _check_curl(words: list[str], renders: dict[str, Rendered]) -> None:
    url = next(w for w in words if w.startswith("https://"))
    path = "/" + url.split("/", 3)[3].split("?")[0]
    assert ":30443/" in url
    prefixes = {
        r["spec"]["routes"][0]["match"].split("`")[1]
        for r in renders["edge-lab"].kubernetes
        if r["kind"] == "IngressRoute"
    }
    assert any(path.startswith(prefix) for prefix in prefixes), path


def _check_ssh(command: str) -> None:
    remote = shlex.split(command)[-1]
    scripts = "\n".join(p.read_text() for p in (PROJECT_DIR / "hardware" / "scripts").glob("*.sh"))
    for path in re.findall(r"/[\w./-]+", remote):
        assert path.split("/")[-1] in scripts, path  # what the fake-host tests exercise


def _check_laptop(words: list[str]) -> None:
    """The laptop runbook's client commands (sourcing the env file, ray, mlflow, pyflyte) exist here;
    tests/test_connect.py runs them all, in order, against local servers behind the real Traefik."""
    if words[0] == ".":
        assert words[1:] == ["~/.naomi/edge-lab/env"], words
    else:
        assert words[0] in ("ray", "mlflow", "pyflyte"), words
        assert (Path(sys.executable).parent / words[0]).is_file(), words[0]


def _run_naomi(words: list[str], tmp_path: Path) -> None:
    args = words[1:]
    # run: tests/test_run_qoe.py; credentials and connect need a backend (connect: tests/test_connect.py);
    # charts pull needs the charts' repositories (tests/test_charts.py pulls from a local one)
    command = args[:2] if args[:2] == ["charts", "pull"] else args[:1]
    if command[0] in ("run", "credentials", "connect") or command == ["charts", "pull"]:
        help_text = subprocess.run(
            [sys.executable, "-m", "naomi.cli", *command, "--help"],
            capture_output=True,
            text=True,
            env={"COLUMNS": "200", "PATH": ""},
        ).stdout
        for option in (a for a in args if a.startswith("--")):
            assert option in help_text, option
        return
    if "--diff" in args:
        args[args.index("--diff") + 1] = "HEAD"  # a revision every checkout has
    if args[0] == "render" and "--out" not in args:
        args += ["--out", str(tmp_path / "render")]
    if "--out" in args and not args[args.index("--out") + 1].startswith(str(tmp_path)):
        args[args.index("--out") + 1] = str(tmp_path / Path(args[args.index("--out") + 1]).name)
    result = subprocess.run(
        [sys.executable, "-m", "naomi.cli", *args], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-1500:]


@pytest.mark.parametrize(("doc", "command"), COMMANDS, ids=[f"{d}:{c[:50]}" for d, c in COMMANDS])
def test_doc_command_is_exercised(
    doc: str, command: str, renders: dict[str, Rendered], tmp_path: Path
) -> None:
    first = command.split("&&")[0].strip()
    words = shlex.split(re.split(r"\s[|<>]\s", first)[0]) if not first.startswith("ssh ") else []
    if doc == LAPTOP_RUNBOOK and words[0] != "naomi":
        _check_laptop(words)
        return
    if first.startswith(SETUP) or first.startswith(".venv/bin/pip") or first.startswith(".venv/bin/uv"):
        return
    if first.startswith("ssh "):
        _check_ssh(first)
    elif first.startswith(("naomi ", ".venv/bin/naomi ")):
        _run_naomi(words, tmp_path)
    elif first.startswith("pulumi "):
        _check_pulumi(words, renders)
    elif first.startswith("kubectl "):
        _check_kubectl(words, renders)
    elif first.startswith("curl "):
        _check_curl(words, renders)
    elif first.startswith("bash "):
        assert (PROJECT_DIR / words[1]).is_file(), words[1]
    else:
        pytest.fail(f"{doc}: no check for this command; add one: {command}")


def test_config_reference_is_fresh() -> None:
    from naomi.reference import config_reference
    from stacks.config import json_schema

    expected = config_reference(json_schema(), PROJECT_DIR / "Pulumi.yaml")
    assert (PROJECT_DIR / "docs" / "config-reference.md").read_text() == expected, (
        "stale: run `naomi docs --out docs/config-reference.md`"
    )


def test_upgrade_runbook_diff_is_what_a_version_bump_renders(renders: dict[str, Rendered]) -> None:
    """The bump of tests/chart_bump.py (kube-prometheus-stack 88.5.3 -> 88.6.0, with the archive
    built from the cached one and a CRD change), rendered once per session, against edge-lab."""
    from tests import chart_bump
    from tests.conftest import require_shared

    require_shared("reference/chart-archives")
    delta = diff_files(renders["edge-lab"].files, chart_bump.bumped().files)
    assert (delta.added, delta.removed, delta.uncompared) == ([], [], [])
    crds = sorted(p for p in delta.changed if p.startswith("crds/"))
    objects = [p for p in delta.changed if p.startswith("k8s/")]
    # Default CRDs (program): only the CRD the chart changed, the chart's own bytes.
    assert crds == ["crds/podmonitors.monitoring.coreos.com.yaml"]
    assert sorted(delta.changed) == sorted(["helm/naomi-monitoring-monitoring.yaml", *crds, *objects])
    # Only the monitoring release's own objects change besides (its chart version labels).
    header = "-# helm release naomi-monitoring/monitoring: kube-prometheus-stack 88.5.3 "
    assert objects and all(header in delta.changed[p] for p in objects)
    runbook = (PROJECT_DIR / "docs" / "runbooks" / "upgrade.md").read_text()
    assert f"{len(delta.added)} added, {len(delta.removed)} removed, {len(delta.changed)} changed" in runbook
    assert f"{len(objects)} chart objects" in runbook
    assert "-version: 88.5.3\n+version: 88.6.0" in runbook
    assert "`crds/podmonitors.monitoring.coreos.com.yaml`" in runbook
    assert "+  - additionalPrinterColumns:" in delta.changed[crds[0]]
    assert "+  - additionalPrinterColumns:" in runbook
