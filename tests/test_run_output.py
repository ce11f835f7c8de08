"""`naomi run` as a person sees it, without Ray: library output goes to the log whose path the
summary prints, progress lines per step and epoch stay on the terminal, Ctrl-C exits 130.

The pipeline is replaced by a stand-in that writes the way Ray, MLflow and uvicorn do (logging,
print, warnings, raw descriptor writes, a child process); tests/test_run_qoe.py runs the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR
from naomi.run_output import library_output_to

NOISE = (
    "ray-logging",
    "mlflow-print",
    "uvicorn-stderr",
    "raw-fd-1",
    "raw-fd-2",
    "child-process",
    "a-warning",
)

STAND_IN = """
import logging, os, signal, subprocess, sys, warnings
import naomi.cli as cli

def pipeline(name, state, data, epochs, workers, step, on_epoch):
    step("ingest")
    logging.getLogger("ray").warning("ray-logging")
    print("mlflow-print")
    sys.stderr.write("uvicorn-stderr\\n")
    os.write(1, b"raw-fd-1\\n")
    os.write(2, b"raw-fd-2\\n")
    subprocess.run(["sh", "-c", "echo child-process"], check=True)
    warnings.warn("a-warning")
    step("train")
    for epoch in range(1, epochs + 1):
        on_epoch(epoch, epochs, {"train_loss": 1.0 / epoch, "valid_loss": 2.0 / epoch, "samples_per_second": 9.0})
    if os.environ.get("STAND_IN_INTERRUPT") == "ray-train":
        # As Ray Train's fit() does: its own SIGINT handler, and the driver exits with 1.
        signal.signal(signal.SIGINT, lambda *_: sys.exit(1))
    if os.environ.get("STAND_IN_INTERRUPT"):
        os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends on Ctrl-C
    step("serve")
    return [("registry", "qoe version 1 -> @champion")]

cli._run_pipeline = pipeline
cli.app(sys.argv[1:])
"""


def _run(tmp_path: Path, *, interrupt: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NAOMI_ISOLATED": "1", "PYTHONPATH": str(PROJECT_DIR)}
    env["STAND_IN_INTERRUPT"] = interrupt
    return subprocess.run(
        [sys.executable, "-c", STAND_IN, "run", "qoe", "--state", str(tmp_path / "state"), "--epochs", "3"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )


def test_library_output_goes_to_the_log_and_the_summary_names_it(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr
    log = tmp_path / "state" / "logs" / "qoe.log"
    assert f"│ log      │ {log} (Ray, MLflow, uvicorn output)" in result.stdout
    assert "│ registry │ qoe version 1 -> @champion" in result.stdout
    for line in NOISE:
        assert line in log.read_text(), line
        assert line not in result.stdout + result.stderr, line
    lines = [
        line for line in result.stderr.splitlines() if line
    ]  # a non-terminal display ends with one blank
    shown = [line.rsplit(" ", 1)[0] if line.endswith("s") else line for line in lines]
    assert shown == [
        "qoe: ingest",
        "qoe: train epoch 1/3 (train_loss 1, valid_loss 2)",
        "qoe: train epoch 2/3 (train_loss 0.5, valid_loss 1)",
        "qoe: train epoch 3/3 (train_loss 0.3333, valid_loss 0.6667)",
        "qoe: train",
        "qoe: serve",
    ]


@pytest.mark.parametrize("handler", ["python", "ray-train"])
def test_ctrl_c_exits_130_naming_the_log_without_a_traceback(tmp_path: Path, handler: str) -> None:
    result = _run(tmp_path, interrupt=handler)
    log = tmp_path / "state" / "logs" / "qoe.log"
    assert result.returncode == 130
    assert result.stderr.splitlines()[-1] == f"interrupted: Ray is shut down; library output: {log}"
    assert "Traceback" not in result.stderr + log.read_text()
    assert result.stdout == ""


def test_output_routing_restores_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """In-process, descriptor writes only (pytest's capture replaces sys.stdout; the stand-in
    above covers print and logging in a process of its own)."""
    log = tmp_path / "logs" / "x.log"
    with library_output_to(log) as screen:
        os.write(1, b"library says\n")
        os.write(2, b"library errs\n")
        subprocess.run(["sh", "-c", "echo child says; echo child errs >&2"], check=True)
        screen.err.write("progress line\n")
        screen.out.write("summary line\n")
    os.write(1, b"after\n")
    captured = capfd.readouterr()
    assert captured.out == "summary line\nafter\n"
    assert captured.err == "progress line\n"
    assert log.read_text() == "library says\nlibrary errs\nchild says\nchild errs\n"
