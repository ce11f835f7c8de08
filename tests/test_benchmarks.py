"""Benchmarks that cannot rot (issue 15, defect 10): every benchmark of the workloads runs in its
`--smoke` mode here, in this process (Ray ones on the session's Ray), and must print its figures.
No timing is asserted: the figures belong to the full runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from naomi.paths import PROJECT_DIR

pytest.importorskip("ray")

# benchmark -> what its output must mention (the figures it exists to print)
PLAIN = {
    "qoe_features.py": ("vectorized windowing", "speed-up"),
    "qoe_serving.py": ("handler, 1 window", "req/s"),
    "model_server.py": ("requests at 50 req/s", "requests from 8 clients"),
    "model_swap.py": ("during the swap", "swap time", "errors"),
}
ON_RAY = {
    "qoe_ray_serve.py": ("Ray Serve HTTP", "p99", "persistent clients"),
    "qoe_training.py": ("samples/s", "test MAE"),
}


def _load(name: str) -> ModuleType:
    path = PROJECT_DIR / "benchmarks" / name
    spec = importlib.util.spec_from_file_location(f"benchmark_{Path(name).stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_workloads_benchmark_is_covered() -> None:
    """Every benchmark that runs workloads code (the platform's render, sizing and provisioning
    benchmarks are run by their own tests)."""
    mine = {
        p.name
        for p in (PROJECT_DIR / "benchmarks").glob("*.py")
        if "from workloads" in p.read_text() or "import workloads" in p.read_text()
    }
    assert mine == set(PLAIN) | set(ON_RAY)


def _smoke(name: str, expected: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    _load(name).main(["--smoke"])
    printed = capsys.readouterr().out
    for figure in expected:
        assert figure in printed, printed


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_benchmark_smoke(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    _smoke(name, PLAIN[name], capsys)


@pytest.mark.parametrize("name", sorted(ON_RAY))
def test_benchmark_smoke_on_ray(
    name: str, ray_session: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    _smoke(name, ON_RAY[name], capsys)


def test_mutation_benchmark_smoke(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutation job end to end on its smallest target: copy, mutmut, verdicts, one line."""
    import sys

    path = PROJECT_DIR / "benchmarks" / "mutation.py"
    spec = importlib.util.spec_from_file_location("benchmark_mutation", path)
    assert spec is not None and spec.loader is not None
    benchmark = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, benchmark)  # its dataclasses look their module up
    spec.loader.exec_module(benchmark)
    (score,) = benchmark.main(["--smoke", "--max-children", "1"])
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["module", "mutants", "killed"], printed
    assert printed.splitlines()[1].startswith(benchmark.SMOKE), printed
    assert score.total > 0 and score.killed > 0 and score.counts["no tests"] == 0
