"""The `naomi` command beyond render: credentials, schema, check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR

OUTPUTS = {
    "urls": {
        "mlflow": "https://192.168.50.10:30443/mlflow/",
        "objectStoreConsole": "https://192.168.50.10:30443/minio/",
    },
    "gatewayUsers": {"admin": "gw-pass-1"},
    "mlflowAdmin": {"username": "admin", "password": "ml-pass-2"},
    "objectStoreCredentials": {"accessKey": "root-user", "secretKey": "root-pass-3"},
    "gatewayCaCertificate": "-----BEGIN CERTIFICATE-----",
}


def _naomi(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "naomi.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_DIR,
        check=False,
    )


def test_credentials_reads_the_stack_outputs(tmp_path: Path) -> None:
    fake = tmp_path / "pulumi"
    fake.write_text(f"#!/bin/sh\n[ \"$4\" = edge-lab ] || exit 3\ncat <<'EOF'\n{json.dumps(OUTPUTS)}\nEOF\n")
    fake.chmod(0o755)
    result = _naomi("credentials", "--stack", "edge-lab", path=f"{tmp_path}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    assert "https://192.168.50.10:30443/mlflow/" in result.stdout and "admin / ml-pass-2" in result.stdout
    assert "console: root-user / root-pass-3" in result.stdout
    assert "gateway: admin / gw-pass-1" in result.stdout


def test_credentials_without_pulumi_says_what_to_run(tmp_path: Path) -> None:
    result = _naomi("credentials", "--stack", "edge-lab", path=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: pulumi CLI not found; the same data: pulumi stack output --stack edge-lab --show-secrets --json"
    )


def test_check_accepts_every_example_stack_and_names_the_secrets_to_set() -> None:
    expected = {
        "dev": "dev: config ok (profile edge, cluster mode kubeconfig); "
        "secrets to set before pulumi up: naomi:kubeconfig",
        "edge-lab": "edge-lab: config ok (profile edge, cluster mode microk8s); "
        "secrets to set before pulumi up: naomi:sshPrivateKey",
        "lab-ha": "lab-ha: config ok (profile lab, cluster mode microk8s); "
        "secrets to set before pulumi up: naomi:sshPrivateKey",
    }
    for stack, line in expected.items():
        assert _check("--stack", stack, "--project-dir", str(PROJECT_DIR)) == (0, line + "\n")


def _check(*args: str) -> tuple[int, str]:
    """`naomi check` in-process (what it prints on stderr is what a user sees)."""
    from typer.testing import CliRunner

    from naomi.cli import app

    result = CliRunner().invoke(app, ["check", *args])
    return result.exit_code, result.stderr


def _project_with(tmp_path: Path, stack_file: str, name: str = "x") -> Path:
    (tmp_path / "stacks").mkdir(parents=True)
    (tmp_path / "Pulumi.yaml").write_text((PROJECT_DIR / "Pulumi.yaml").read_text())
    (tmp_path / "stacks" / f"Pulumi.{name}.yaml").write_text(stack_file)
    return tmp_path


EDGE_LAB = (PROJECT_DIR / "stacks" / "Pulumi.edge-lab.yaml").read_text()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  naomi:images: {build: false",
            "  naomi:profile: lab\n  naomi:images: {build: false",
            'error: Pulumi.x.yaml: line 70: mapping key "naomi:profile" already defined at line 9 '
            "(the Pulumi CLI refuses duplicate keys)",
        ),
        (
            'cron: "0 3 * * *"',
            'cron: "61 3 * * *"',
            "error: invalid stack config: naomi:retraining.triggers[0].cron: minute 61 is out of range 0-59 "
            '(got "61 3 * * *")',
        ),
        (
            "expr: 'naomi:qoe_abs_error:mean5m > 500'",
            "expr: 'x >> 500 ('",
            "error: invalid stack config: naomi:retraining.triggers[1].expr: not valid PromQL: "
            'unclosed left parenthesis (got "x >> 500 (")',
        ),
        (
            "address: 192.168.50.22",
            "address: 192.168.50.999",
            "error: invalid stack config: naomi:cluster.nodes[3].address: looks like an IPv4 address but is not "
            'one (four numbers 0-255) (got "192.168.50.999")',
        ),
    ],
    ids=["duplicate-key", "cron", "promql", "address"],
)
def test_check_refuses_what_pulumi_or_the_cluster_would_refuse(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in EDGE_LAB
    project = _project_with(tmp_path, EDGE_LAB.replace(old, new, 1))
    assert _check("--stack", "x", "--project-dir", str(project)) == (2, expected + "\n")


def test_user_text_is_printed_as_typed_never_as_markup_or_emoji(tmp_path: Path) -> None:
    project = _project_with(tmp_path, 'config:\n  "naomi:bomb:": 1\n')
    code, stderr = _check("--stack", "x", "--project-dir", str(project))
    assert code == 2
    assert stderr.startswith(
        "error: invalid stack config: naomi:bomb:: unknown key; allowed keys: charts, cluster, "
    )
    project = _project_with(tmp_path / "b", "config:\n  naomi:gateway: {address: 127.0.0.1}\n", ":bomb:[b]")
    assert _check("--stack", ":bomb:[b]", "--project-dir", str(project)) == (
        0,
        ":bomb:[b]: config ok (profile edge, cluster mode kubeconfig); "
        "secrets to set before pulumi up: naomi:kubeconfig\n",
    )


def test_unknown_stack_lists_the_stacks() -> None:
    result = _naomi("render", "--stack", "prod")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown stack 'prod'; stacks: dev, edge-lab, lab-ha"


def test_sizing_parses_kubernetes_quantities() -> None:
    from naomi.sizing import cpu_cores, memory_bytes

    assert cpu_cores("250m") == 0.25 and cpu_cores("2") == 2.0
    assert memory_bytes("512Mi") == 512 * 2**20 and memory_bytes("1G") == 10**9 and memory_bytes("64") == 64


def test_check_flows_prints_the_matrix_and_proves_every_flow() -> None:
    code, stderr = _check(
        "flows", "--stack", "dev", "--format", "markdown", "--project-dir", str(PROJECT_DIR)
    )
    assert code == 0, stderr
    assert stderr.strip().splitlines()[-1].endswith("flows allowed, 0 undeclared open")
    from typer.testing import CliRunner

    from naomi.cli import app

    result = CliRunner().invoke(app, ["check", "flows", "--stack", "dev", "--format", "mermaid"])
    assert result.stdout.startswith("graph LR\n")
    assert '["naomi-gateway/traefik"] -->|' in result.stdout


def test_check_cluster_and_its_usage_errors() -> None:
    code, stderr = _check("cluster", "--stack", "edge-lab", "--project-dir", str(PROJECT_DIR))
    assert (code, stderr.strip().splitlines()[-1]) == (0, "edge-lab: 0 problem(s) in the cluster model")
    assert _check() == (2, "error: naomi check needs --stack <name> (or a sub-command: flows, cluster)\n")
    code, stderr = _check("flows", "--stack", "dev", "--format", "svg")
    assert (code, stderr) == (2, "error: --format must be table, markdown or mermaid (got 'svg')\n")
