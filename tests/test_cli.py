"""The `naomi` command beyond render: credentials, schema, check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_check_accepts_every_example_stack() -> None:
    for stack in ("dev", "edge-lab", "lab-ha"):
        result = _naomi("check", "--stack", stack)
        assert result.returncode == 0, result.stderr
        assert "config ok" in result.stderr


def test_unknown_stack_lists_the_stacks() -> None:
    result = _naomi("render", "--stack", "prod")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown stack 'prod'; stacks: dev, edge-lab, lab-ha"


def test_sizing_parses_kubernetes_quantities() -> None:
    from naomi.sizing import cpu_cores, memory_bytes

    assert cpu_cores("250m") == 0.25 and cpu_cores("2") == 2.0
    assert memory_bytes("512Mi") == 512 * 2**20 and memory_bytes("1G") == 10**9 and memory_bytes("64") == 64
