"""`naomi run qoe` end to end on embedded defaults (the README's main job), in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.ray_env import require_loopback_only_network


def _naomi(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "naomi.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=600,
    )


def test_run_qoe_end_to_end(tmp_path: Path) -> None:
    require_loopback_only_network()
    result = _naomi("run", "qoe", "--state", str(tmp_path / "state"), "--epochs", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "qoe version 1 -> @champion" in out
    assert "bad request │ HTTP 422" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out
    assert (tmp_path / "state" / "objects" / "features" / "qoe" / "test.parquet").is_file()
    assert "Traceback" not in result.stderr


def test_run_mnist_end_to_end(tmp_path: Path) -> None:
    """>= 2 Ray Train workers, the gate, Ray Serve, JSON and PNG smoke requests, a rejected body."""
    require_loopback_only_network()
    result = _naomi("run", "mnist", "--state", str(tmp_path / "state"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "Ray Train with 2 workers" in out
    assert "mnist version 1 -> @champion (first model above the threshold" in out
    accuracy = float(out.split("test accuracy │ ")[1].split()[0])
    assert accuracy >= 0.9
    assert "bad request   │ HTTP 400" in out
    predicted = out.split("PNG upload    │ predicted ")[1].split()
    assert predicted[0] == predicted[2].rstrip(")")  # the uploaded PNG is classified correctly
    assert (tmp_path / "state" / "objects" / "datasets" / "mnist" / "digits.npz").is_file()


def test_run_rejects_unknown_pipeline_and_missing_data(tmp_path: Path) -> None:
    assert (
        _naomi("run", "fraud", cwd=tmp_path).stderr.strip()
        == "error: unknown pipeline 'fraud'; pipelines: qoe, mnist"
    )
    missing = _naomi("run", "qoe", "--data", "/nonexistent/cell.json.gz", cwd=tmp_path)
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == "error: --data: no such file: /nonexistent/cell.json.gz"
    )


def test_invalid_data_file_is_one_line(tmp_path: Path) -> None:
    require_loopback_only_network()
    bad = tmp_path / "cell.json"
    bad.write_text(
        '{"cellMeasReport": {"du-id": 1, "measTimeStampRf": "2021-07-02T13:00:00", "cellMeasReportList": [7]}}\n'
    )
    result = _naomi("run", "qoe", "--data", str(bad), "--state", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: invalid data: {bad}: line 1: cellMeasReportList[0]: expected an object"
    )
    assert not (tmp_path / "s" / "objects").exists()


def _gzip_reports(path: Path) -> bytes:
    import gzip

    from workloads.qoe.data import synthetic_reports

    data = gzip.compress("\n".join(synthetic_reports(steps=60)).encode())
    path.write_bytes(data)
    return data


def test_unreadable_data_files_are_one_line_naming_the_file(tmp_path: Path) -> None:
    """Issue 17: a truncated or corrupt gzip, or a file that is no gzip at all, ends the run with
    one line naming the file and what is wrong, exit 2, nothing stored (was "Aborted!", exit 1)."""
    data = _gzip_reports(tmp_path / "good.json.gz")
    truncated = tmp_path / "truncated.json.gz"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.json.gz"
    corrupt.write_bytes(data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:])
    plain = tmp_path / "plain.json.gz"
    plain.write_text('{"metadata": {}}\n')
    cases = {
        truncated: "truncated gzip stream (Compressed file ended before the end-of-stream marker was reached)",
        corrupt: "corrupt gzip data (",
        plain: "not a gzip file (Not a gzipped file",
    }
    for path, problem in cases.items():
        result = _naomi("run", "qoe", "--data", str(path), "--state", str(tmp_path / "s"), cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, result.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith(f"error: invalid data: {path}: {problem}"), lines
        assert not (tmp_path / "s" / "objects").exists()
