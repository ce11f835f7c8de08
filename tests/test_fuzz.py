"""Coverage-guided fuzzing (atheris) of the data loader and the request parsers, a few seconds
each (issue 17): anything but the parser's own validation error is a failure, reported with the
input that caused it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from naomi.paths import PROJECT_DIR

pytest.importorskip("atheris")
from tests.fuzz.targets import TARGETS, seeds

SECONDS = 3


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzzing_finds_nothing_but_validation_errors(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for index, seed in enumerate(seeds(target)):
        (corpus / f"seed-{index}").write_bytes(seed)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.targets",
            target,
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=4096",
            "-max_len=65536",
            f"-artifact_prefix={tmp_path}/",
            f"-dict={PROJECT_DIR / 'tests' / 'fuzz' / 'json.dict'}",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        timeout=300,
        check=False,
    )
    crashes = [p.read_bytes()[:300] for p in tmp_path.glob("crash-*")]
    assert result.returncode == 0 and not crashes, (crashes, result.stderr[-3000:])
    assert "Done" in result.stderr or "INFO" in result.stderr  # the fuzzer ran
