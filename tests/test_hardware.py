"""The node layer under mocks: step order, join order, triggers, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hardware import steps
from naomi.render.engine import Evaluation, evaluate_stack
from naomi.render.tree import Rendered, render


def _by_name(evaluation: Evaluation) -> dict[str, object]:
    return {r.name: r for r in evaluation.records}


def _depends(evaluation: Evaluation, name: str) -> set[str]:
    urns = {r.urn: r.name for r in evaluation.records}
    record = next(r for r in evaluation.records if r.name == name)
    return {urns[d] for d in record.dependencies if d in urns}


def test_pi_steps_run_in_order(evaluations: dict[str, Evaluation]) -> None:
    edge = evaluations["edge-lab"]
    assert _depends(edge, "cluster-pi-1-cmdline") == {"cluster-pi-1-preflight"}
    assert _depends(edge, "cluster-pi-1-verify-cgroup") == {"cluster-pi-1-cmdline"}
    assert _depends(edge, "cluster-pi-1-install") == {"cluster-pi-1-verify-cgroup"}
    assert _depends(edge, "cluster-pi-1-issue-token") == {
        "cluster-pi-1-install",
        "cluster-cp-1-addons",
        "cluster-pi-1-join-token",
    }
    assert _depends(edge, "cluster-pi-1-join") == {"cluster-pi-1-issue-token", "cluster-pi-1-join-token"}
    assert _depends(edge, "cluster-pi-1-labels") == {"cluster-pi-1-join"}


def test_x86_nodes_skip_the_pi_steps(evaluations: dict[str, Evaluation]) -> None:
    names = set(_by_name(evaluations["edge-lab"]))
    assert "cluster-x86-1-cmdline" not in names and "cluster-cp-1-cmdline" not in names
    assert _depends(evaluations["edge-lab"], "cluster-x86-1-install") == {"cluster-x86-1-preflight"}


def test_bootstrap_enables_addons_and_hands_out_the_kubeconfig(evaluations: dict[str, Evaluation]) -> None:
    edge = evaluations["edge-lab"]
    assert _depends(edge, "cluster-cp-1-addons") == {"cluster-cp-1-install"}
    assert _depends(edge, "cluster-kubeconfig") == {"cluster-cp-1-addons"}
    assert "cluster-cp-1-join" not in _by_name(edge)
    provider = next(r for r in edge.records if r.type == "pulumi:providers:kubernetes")
    assert {r.name for r in edge.records if r.urn in provider.dependencies} == {"cluster-kubeconfig"}


def test_ha_control_planes_join_one_at_a_time_then_workers(evaluations: dict[str, Evaluation]) -> None:
    lab = evaluations["lab-ha"]
    assert "cluster-cp-1-addons" in _depends(lab, "cluster-cp-2-issue-token")
    assert "cluster-cp-2-join" in _depends(lab, "cluster-cp-3-issue-token")
    for worker in ("x86-1", "x86-2", "pi-1", "pi-4"):
        assert "cluster-cp-3-join" in _depends(lab, f"cluster-{worker}-issue-token")
    assert _depends(lab, "cluster-kubeconfig") == {"cluster-cp-3-join"}


def test_connections_pin_host_keys_and_keep_the_private_key_secret(renders: dict[str, Rendered]) -> None:
    for path, text in renders["lab-ha"].files.items():
        if not path.startswith("commands/"):
            continue
        document = yaml.safe_load(text)
        connection = document["connection"]
        if not connection:  # operator-side leave steps pin the key in their environment
            assert document["environment"]["HOST_KEY"].startswith("ssh-ed25519 "), path
            continue
        assert connection["hostKey"].startswith("ssh-ed25519 "), path
        assert connection["privateKey"] == "<secret>", path
        assert connection["dialErrorLimit"] == 20 and connection["perDialTimeout"] == 15


def test_join_token_is_generated_and_never_plain(renders: dict[str, Rendered]) -> None:
    join = yaml.safe_load(renders["edge-lab"].files["commands/cluster-pi-1/06-join.yaml"])
    assert "JOIN_TOKEN='<secret:cluster-pi-1-join-token:result>'" in join["create"]
    assert join["delete"] is None  # leaving is the operator-side leave step (tolerates a vanished host)
    leave = yaml.safe_load(renders["edge-lab"].files["commands/cluster-pi-1/07-leave.yaml"])
    assert "microk8s leave" in leave["environment"]["LEAVE_SCRIPT"]
    assert leave["environment"]["NAOMI_SSH_PRIVATE_KEY"] == "<secret>"
    assert leave["dependsOn"] == ["naomi:hardware:MicroK8sNode$command:remote:Command::cluster-pi-1-join"]


def test_removing_a_node_runs_remove_node_on_the_bootstrap(renders: dict[str, Rendered]) -> None:
    issue = yaml.safe_load(renders["edge-lab"].files["commands/cluster-pi-2/05-issue-token.yaml"])
    assert issue["connection"]["host"] == "192.168.50.10"
    assert "NODE_ADDRESS=192.168.50.22 bash -s" in issue["delete"]
    assert "microk8s remove-node" in issue["delete"]


def _triggers(evaluation: Evaluation) -> dict[str, list[str]]:
    return {
        r.name: r.inputs.get("triggers", []) for r in evaluation.records if r.type == "command:remote:Command"
    }


def test_triggers_change_only_for_steps_whose_script_changed(
    evaluations: dict[str, Evaluation], project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = steps.script_text

    def edited(name: str) -> str:
        text = original(name)
        return text + "# edited\n" if name == "pi-cmdline.sh" else text

    monkeypatch.setattr(steps, "script_text", edited)
    after = _triggers(evaluate_stack(project_dir, "edge-lab"))
    before = _triggers(evaluations["edge-lab"])
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == ["cluster-pi-1-cmdline", "cluster-pi-2-cmdline"]


def test_node_labels_carry_board_role_and_user_labels(renders: dict[str, Rendered]) -> None:
    labels = yaml.safe_load(renders["edge-lab"].files["commands/cluster-pi-1/08-labels.yaml"])
    assert "LABELS='naomi.io/board=rpi5 naomi.io/role=worker naomi.io/site=bench'" in labels["create"]
    taints = yaml.safe_load(renders["lab-ha"].files["commands/cluster-pi-3/08-labels.yaml"])
    assert "TAINTS=naomi.io/low-memory=true:PreferNoSchedule" in taints["create"]


def test_render_is_unchanged_by_evaluating_twice(
    evaluations: dict[str, Evaluation], project_dir: Path
) -> None:
    assert render(evaluate_stack(project_dir, "lab-ha")).files == render(evaluations["lab-ha"]).files


def test_existing_cluster_kubeconfig_from_a_file(tmp_path: Path) -> None:
    import json

    import pulumi

    from naomi.paths import PROJECT_DIR
    from naomi.render.engine import evaluate, stack_program

    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    config = {
        "naomi:cluster": json.dumps({"mode": "kubeconfig", "kubeconfig": {"path": str(kubeconfig)}}),
        "naomi:gateway": json.dumps({"address": "10.0.0.5"}),
    }
    evaluation = evaluate(stack_program(PROJECT_DIR), "file", config, [])
    provider = next(r for r in evaluation.records if r.type == "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "<secret>"  # a real file's content is never shown
    assert "kubeconfig" in evaluation.secret_outputs
    missing = {
        **config,
        "naomi:cluster": json.dumps({"mode": "kubeconfig", "kubeconfig": {"path": "/nonexistent/kc"}}),
    }
    with pytest.raises(
        pulumi.RunError, match=r"^naomi:cluster.kubeconfig.path: no such file: /nonexistent/kc$"
    ):
        evaluate(stack_program(PROJECT_DIR), "file", missing, [])


def test_cluster_from_another_stack() -> None:
    import json

    from naomi.paths import PROJECT_DIR
    from naomi.render.engine import evaluate, stack_program

    config = {
        "naomi:cluster": json.dumps(
            {"mode": "stack", "stack": {"name": "acme/naomi/edge-nodes", "output": "kube"}}
        ),
        "naomi:gateway": json.dumps({"address": "10.0.0.5"}),
    }
    evaluation = evaluate(stack_program(PROJECT_DIR), "from-stack", config, [])
    (reference,) = [r for r in evaluation.records if r.type == "pulumi:pulumi:StackReference"]
    assert reference.inputs == {"name": "acme/naomi/edge-nodes"}
    provider = next(r for r in evaluation.records if r.type == "pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "<secret:stack:acme/naomi/edge-nodes:kube>"
    assert not [r for r in evaluation.records if r.type.startswith("command:")]
    assert "kubeconfig" in evaluation.secret_outputs
