"""The offline render: every example stack builds, deterministically, also on a first preview."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from naomi.render.diff import diff_files
from naomi.render.engine import Evaluation, RenderError, evaluate, evaluate_stack
from naomi.render.tree import Rendered, render, write
from tests.conftest import EXAMPLE_STACKS


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_example_stack_renders(renders: dict[str, Rendered], stack: str) -> None:
    files = renders[stack].files
    assert "plan.yaml" in files and "outputs.yaml" in files
    assert any(path.startswith("k8s/") for path in files)


def test_render_is_byte_identical_across_runs(
    project_dir: Path, tmp_path: Path, renders: dict[str, Rendered]
) -> None:
    again = render(evaluate_stack(project_dir, "edge-lab"))
    assert again.files == renders["edge-lab"].files
    first, second = tmp_path / "A", tmp_path / "B"
    write(renders["edge-lab"], first)
    write(again, second)
    assert _tree_bytes(first) == _tree_bytes(second)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_via_cli_twice_gives_identical_trees(tmp_path: Path) -> None:
    for name in ("A", "B"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "naomi.cli",
                "render",
                "--stack",
                "edge-lab",
                "--out",
                str(tmp_path / name),
            ],
            check=True,
            capture_output=True,
        )
    assert _tree_bytes(tmp_path / "A") == _tree_bytes(tmp_path / "B")


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_first_preview_builds_with_unknown_kubeconfig(project_dir: Path, stack: str) -> None:
    evaluation = evaluate_stack(project_dir, stack, preview=True)
    provider = next(r for r in evaluation.records if r.type == "pulumi:providers:kubernetes")
    if stack != "dev":  # dev takes its kubeconfig from secret config, so it is known
        assert provider.inputs["kubeconfig"] == "<unknown>"
    assert len(evaluation.records) == len(evaluate_stack(project_dir, stack).records)


def test_no_unknowns_and_no_raw_secrets_in_a_full_render(renders: dict[str, Rendered]) -> None:
    for stack, rendered in renders.items():
        for path, text in rendered.files.items():
            assert "<unknown>" not in text, (stack, path)


def test_kubeconfig_output_is_secret(
    evaluations: dict[str, Evaluation], renders: dict[str, Rendered]
) -> None:
    for stack, evaluation in evaluations.items():
        assert "kubeconfig" in evaluation.secret_outputs, stack
        assert "kubeconfig: <secret>" in renders[stack].files["outputs.yaml"]


def test_secure_config_values_never_appear(tmp_path: Path, project_dir: Path) -> None:
    """A stack completed by `pulumi config set --secret` (the example stacks carry no secrets)."""
    from naomi.render.engine import evaluate_stack, stack_config
    from naomi.render.tree import render as render_tree

    ciphertext = "v1:c2FsdA==:Y2lwaGVydGV4dC1vZi10aGUtc3NoLWtleQ=="
    (tmp_path / "stacks").mkdir()
    for name in ("Pulumi.yaml", "stacks/__main__.py"):
        (tmp_path / name).write_text((project_dir / name).read_text())
    stack_file = (project_dir / "stacks" / "Pulumi.edge-lab.yaml").read_text()
    stack_file += f"  naomi:sshPrivateKey:\n    secure: {ciphertext}\n"
    (tmp_path / "stacks" / "Pulumi.edge-lab.yaml").write_text(
        f"encryptionsalt: v1:c2FsdA==:v1:x:y\n{stack_file}"
    )
    assert stack_config(tmp_path, "edge-lab")[2] == []  # the file's own secure value, no stand-in
    evaluation = evaluate_stack(tmp_path, "edge-lab")
    assert evaluation.config["naomi:sshPrivateKey"] == "<secret:naomi:sshPrivateKey>"
    texts = "\n".join(render_tree(evaluation).files.values())
    assert ciphertext not in texts and "c2FsdA" not in texts


def test_duplicate_logical_names_are_an_error() -> None:
    def program() -> None:
        import pulumi_random as random

        random.RandomPassword("same", length=8)
        random.RandomPassword("same", length=8)

    evaluation = evaluate(program, "dup", {}, [])
    with pytest.raises(
        RenderError, match="duplicate resource name: random:index/randomPassword:RandomPassword 'same'"
    ):
        render(evaluation)


def test_write_refuses_to_replace_a_folder_that_is_not_a_render(
    tmp_path: Path, renders: dict[str, Rendered]
) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(RenderError, match="is not a previous render"):
        write(renders["dev"], precious)
    assert (precious / "keep.txt").read_text() == "mine"


def test_config_error_stops_before_any_registration(project_dir: Path) -> None:
    registered: list = []
    with pytest.raises(pulumi.RunError, match=r"^invalid stack config: naomi:profile"):
        evaluate(
            lambda: __import__("runpy").run_path(str(project_dir / "stacks" / "__main__.py")),
            "x",
            {"naomi:profile": "tiny"},
            [],
            registered=registered,
        )
    assert registered == []


def test_commands_are_numbered_in_dependency_order(renders: dict[str, Rendered]) -> None:
    steps = sorted(p for p in renders["edge-lab"].files if p.startswith("commands/cluster-pi-1/"))
    names = [p.split("/")[-1] for p in steps]
    assert names[:5] == [
        "01-preflight.yaml",
        "02-cmdline.yaml",
        "03-reboot-wait.yaml",
        "04-verify-cgroup.yaml",
        "05-install.yaml",
    ]


def test_diff_lists_object_level_changes() -> None:
    base = {"k8s/a/ConfigMap-x.yaml": "data:\n  a: '1'\n", "k8s/a/Secret-y.yaml": "x: 1\n"}
    head = {"k8s/a/ConfigMap-x.yaml": "data:\n  a: '2'\n", "k8s/a/Service-z.yaml": "x: 1\n"}
    changes = diff_files(base, head)
    assert changes.added == ["k8s/a/Service-z.yaml"]
    assert changes.removed == ["k8s/a/Secret-y.yaml"]
    assert "-  a: '1'\n+  a: '2'" in changes.changed["k8s/a/ConfigMap-x.yaml"]
    assert "1 added, 1 removed, 1 changed" in changes.markdown("t")


def test_diff_against_a_git_revision_shows_only_the_edit(tmp_path: Path, project_dir: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git not installed")
    clone = tmp_path / "clone"
    shutil.copytree(
        project_dir,
        clone,
        ignore=shutil.ignore_patterns(
            ".venv*", "out", ".git", "__pycache__", ".mypy_cache", ".hypothesis", "*.egg-info"
        ),
    )
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-C", str(clone)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    stack_file = clone / "stacks" / "Pulumi.edge-lab.yaml"
    stack_file.write_text(
        stack_file.read_text()
        .replace("channel: 1.32/stable", "channel: 1.33/stable")
        .replace('naomi:kubernetesVersion: "1.32"', 'naomi:kubernetesVersion: "1.33"')
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "naomi.cli",
            "render",
            "--stack",
            "edge-lab",
            "--out",
            str(tmp_path / "out"),
            "--diff",
            "HEAD",
            "--project-dir",
            str(clone),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=clone,
    )
    assert "changed `commands/cluster-cp-1/02-install.yaml`" in result.stdout
    assert (
        "CHANNEL=1.33/stable PATH=" in result.stdout and "— update (create, update changed)" in result.stdout
    )
    assert "0 added, 0 removed, 4 changed" in result.stdout  # one install step per node, nothing else
