"""One pipeline catalogue (issue 15, defect 11): config, serving, registration, triggers, the
recording rules and the CLI all read `workloads/catalogue.py`, which imports nothing heavy; no
other module spells out the pipeline list, a workflow name, a serving application, a dataset key
or a quality rule."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

from naomi.paths import PROJECT_DIR
from workloads import catalogue

SOURCES = ("stacks", "infra", "naomi", "workloads", "hardware", "policy")
HEAVY = {"torch", "ray", "flytekit", "numpy", "pandas", "mlflow", "pulumi", "fastapi", "pydantic"}


def test_the_catalogue_imports_nothing_heavy() -> None:
    program = (
        "import sys\n"
        "import workloads.catalogue\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=PROJECT_DIR, check=True
    )
    assert result.stdout.strip() == "[]"


def test_every_consumer_reads_the_catalogue() -> None:
    import typing

    from infra.serving import SERVE_APPS
    from infra.workloads import RECORDING_RULES
    from naomi.cli import PIPELINES as CLI_PIPELINES
    from stacks.config import SERVE_APP_MODELS, WorkloadsConfig
    from stacks.types import PIPELINES, WORKFLOWS, Pipeline, Workflow

    assert typing.get_args(Pipeline) == catalogue.PIPELINE_NAMES == PIPELINES == CLI_PIPELINES
    assert typing.get_args(Workflow) == catalogue.WORKFLOW_NAMES
    assert {p.workflow: p.name for p in catalogue.PIPELINES} == WORKFLOWS
    assert WorkloadsConfig().pipelines == catalogue.PIPELINE_NAMES
    assert SERVE_APPS == catalogue.SERVE_APPS and set(SERVE_APP_MODELS) == set(catalogue.SERVE_APPS)
    assert [r["record"] for r in RECORDING_RULES] == [p.quality_record for p in catalogue.PIPELINES]
    for entry in catalogue.PIPELINES:
        spec = importlib.util.find_spec(entry.module)
        assert spec is not None and spec.origin is not None
        assert f"def {entry.workflow}(" in Path(spec.origin).read_text(), entry.flyte_name
        module, _, builder = entry.serve_app.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        assert f"def {builder}(" in Path(spec.origin).read_text(), entry.serve_app


def _constants(tree: ast.AST) -> list[tuple[int, str]]:
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_no_module_writes_the_list_again() -> None:
    names = set(catalogue.PIPELINE_NAMES)
    spelled = {
        value
        for entry in catalogue.PIPELINES
        for value in (entry.workflow, entry.serve_app, entry.dataset, entry.quality_record, entry.flyte_name)
    }
    found = []
    for folder in SOURCES:
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            if path == PROJECT_DIR / "workloads" / "catalogue.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            where = path.relative_to(PROJECT_DIR)
            found += [f"{where}:{line}: {value!r}" for line, value in _constants(tree) if value in spelled]
            for node in ast.walk(tree):
                items = (
                    node.elts
                    if isinstance(node, (ast.Tuple, ast.List, ast.Set))
                    else node.keys
                    if isinstance(node, ast.Dict)
                    else []
                )
                listed = {i.value for i in items if isinstance(i, ast.Constant)} & names
                if len(listed) >= 2:
                    found.append(f"{where}:{node.lineno}: a list of pipelines {sorted(listed)}")
    assert found == []
