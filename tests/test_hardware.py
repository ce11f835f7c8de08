"""The node layer under mocks: step order, join order, secrets, and the lifecycle of every step
(what a script, key, TTL or channel edit would make `pulumi up` do)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from hardware import steps
from naomi.render.diff import diff_files
from naomi.render.engine import Evaluation, evaluate, evaluate_stack, load_stack_file, stack_program
from naomi.render.lifecycle import destructive, plan_from_steps, steps_from_evaluation
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
    assert _depends(edge, "cluster-pi-1-reboot-wait") == {"cluster-pi-1-cmdline"}
    assert _depends(edge, "cluster-pi-1-verify-cgroup") == {"cluster-pi-1-reboot-wait"}
    assert _depends(edge, "cluster-pi-1-install") == {"cluster-pi-1-verify-cgroup"}
    assert _depends(edge, "cluster-pi-1-join") == {"cluster-pi-1-install", "cluster-cp-1-addons"}
    assert _depends(edge, "cluster-pi-1-leave") == {"cluster-pi-1-join"}
    assert _depends(edge, "cluster-pi-1-labels") == {"cluster-pi-1-join"}


def test_the_reboot_wait_takes_the_boot_id_the_cmdline_step_printed(renders: dict[str, Rendered]) -> None:
    wait = yaml.safe_load(renders["edge-lab"].files["commands/cluster-pi-1/03-reboot-wait.yaml"])
    assert wait["environment"]["CMDLINE_OUTPUT"] == "<generated:cluster-pi-1-cmdline:stdout>"
    assert (wait["environment"]["WAIT_ATTEMPTS"], wait["environment"]["WAIT_INTERVAL"]) == ("120", "5")
    assert "naomi-wait-for-reboot.sh" in wait["create"] and wait["create"] == wait["update"]


def test_x86_nodes_skip_the_pi_steps(evaluations: dict[str, Evaluation]) -> None:
    names = set(_by_name(evaluations["edge-lab"]))
    assert "cluster-x86-1-cmdline" not in names and "cluster-cp-1-reboot-wait" not in names
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
    assert "cluster-cp-1-addons" in _depends(lab, "cluster-cp-2-join")
    assert "cluster-cp-2-join" in _depends(lab, "cluster-cp-3-join")
    for worker in ("x86-1", "x86-2", "pi-1", "pi-4"):
        assert "cluster-cp-3-join" in _depends(lab, f"cluster-{worker}-join")
    assert _depends(lab, "cluster-kubeconfig") == {"cluster-cp-3-join"}


def test_images_are_pushed_only_once_the_registry_addon_is_up(evaluations: dict[str, Evaluation]) -> None:
    lab = evaluations["lab-ha"]
    assert "cluster-cp-1-addons" in _depends(lab, "images")


def test_connections_pin_host_keys_and_keep_the_private_key_secret(renders: dict[str, Rendered]) -> None:
    for path, text in renders["lab-ha"].files.items():
        if not path.startswith("commands/"):
            continue
        document = yaml.safe_load(text)
        connection = document["connection"]
        if not connection:  # operator-side steps pin the keys in their environment
            environment = document["environment"]
            if "NODE_HOST_KEY" in environment:
                assert environment["NODE_HOST_KEY"].startswith("ssh-ed25519 "), path
                assert environment["NAOMI_SSH_PRIVATE_KEY"] == "<secret>", path
            continue
        assert connection["hostKey"].startswith("ssh-ed25519 "), path
        assert connection["privateKey"] == "<secret>", path
        assert connection["dialErrorLimit"] == 20 and connection["perDialTimeout"] == 15


def test_no_join_token_in_state_on_a_command_line_or_in_an_environment(
    evaluations: dict[str, Evaluation],
) -> None:
    for stack in ("edge-lab", "lab-ha"):
        records = evaluations[stack].records
        assert not [
            r.name
            for r in records
            if r.type == "random:index/randomPassword:RandomPassword" and "join" in r.name
        ]
        for record in records:
            if record.type in ("command:remote:Command", "command:local:Command"):
                commands = " ".join(str(record.inputs.get(k)) for k in ("create", "update", "delete"))
                assert "TOKEN=" not in commands and "<secret" not in commands, record.name
                assert "stdin" not in record.inputs, record.name


def test_every_remote_script_runs_with_snap_bin_on_sudos_path(renders: dict[str, Rendered]) -> None:
    for path, text in renders["edge-lab"].files.items():
        if path.startswith("commands/"):
            document = yaml.safe_load(text)
            remote = (
                [document["create"]]
                if document["connection"]
                else [v for k, v in document["environment"].items() if k.startswith("REMOTE_")]
            )
            for command in remote:
                if command and command.startswith("sudo"):
                    assert command.startswith(
                        f"sudo -n env {'' if 'API_SAN' not in command else 'API_SAN='}"
                    ), path
                    assert f"PATH={steps.ROOT_PATH} " in command, path


def test_removing_a_node_leaves_and_runs_remove_node_on_the_bootstrap(renders: dict[str, Rendered]) -> None:
    leave = yaml.safe_load(renders["edge-lab"].files["commands/cluster-pi-2/07-leave.yaml"])
    environment = leave["environment"]
    assert environment["BOOTSTRAP_ADDRESS"] == "192.168.50.10"
    assert environment["NODE_ADDRESS"] == "192.168.50.22"
    assert "NODE_NAME=pi-2 PATH=" in environment["REMOTE_REMOVE"]
    assert "microk8s remove-node" in environment["REMOTE_REMOVE"]
    assert "naomi-leave-over-ssh.sh" in leave["delete"]
    assert leave["triggers"] == []  # tied to the node's identity (its name) only


def test_the_kubeconfig_points_at_the_ha_endpoint_when_given(project_dir: Path) -> None:
    import json

    config, secrets = load_stack_file(project_dir / "stacks" / "Pulumi.lab-ha.yaml")
    cluster = json.loads(config["naomi:cluster"])
    config["naomi:cluster"] = json.dumps({**cluster, "apiEndpoint": "fd00::100"})
    steps_by_name = {
        r.name: r.inputs for r in evaluate(stack_program(project_dir), "lab-ha", config, secrets).records
    }
    assert "API_SERVER='https://[fd00::100]:16443'" in steps_by_name["cluster-kubeconfig"]["create"]
    assert "API_SAN=fd00::100 " in steps_by_name["cluster-cp-2-install"]["create"]
    assert "API_SAN='' " in steps_by_name["cluster-x86-1-install"]["create"]


def _lab(project_dir: Path, edit: Callable[[dict[str, str]], None] | None = None) -> dict[str, dict]:  # type: ignore[type-arg]
    """lab-ha's command steps (the node layer alone: the platform adds none)."""
    config, secrets = load_stack_file(project_dir / "stacks" / "Pulumi.lab-ha.yaml")
    config["naomi:layers"] = '{"platform": false}'
    if edit is not None:
        edit(config)
    return steps_from_evaluation(evaluate(stack_program(project_dir), "lab-ha", config, secrets))


@pytest.fixture(scope="module")
def lab_steps(project_dir: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return _lab(project_dir)


def _cluster_edit(**microk8s: object) -> Callable[[dict[str, str]], None]:
    import json

    def edit(config: dict[str, str]) -> None:
        cluster = json.loads(config["naomi:cluster"])
        cluster["microk8s"].update(microk8s)
        config["naomi:cluster"] = json.dumps(cluster)
        if "channel" in microk8s:
            config["naomi:kubernetesVersion"] = str(microk8s["channel"]).split("/")[0]

    return edit


def _rotate_key(config: dict[str, str]) -> None:
    config["naomi:sshPrivateKey"] = "<secret:naomi:sshPrivateKey:rotated>"


@pytest.mark.parametrize(
    "script", sorted(p.name for p in (Path(steps.__file__).parent / "scripts").glob("*.sh"))
)
def test_editing_a_script_updates_and_never_runs_a_destructive_delete(
    script: str,
    project_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    lab_steps: dict[str, dict],  # type: ignore[type-arg]
) -> None:
    base = lab_steps
    original = steps.script_text
    monkeypatch.setattr(
        steps, "script_text", lambda name: original(name) + ("# edited\n" if name == script else "")
    )
    plan = plan_from_steps(base, _lab(project_dir))
    assert plan, f"editing {script} changes no step"
    assert {change.operation for change in plan.values()} == {"update"}, plan
    assert not destructive(plan.values())


@pytest.mark.parametrize(
    "edit",
    [_rotate_key, _cluster_edit(joinTokenTtlSeconds=900), _cluster_edit(channel="1.33/stable")],
    ids=["rotate-ssh-key", "token-ttl", "channel"],
)
def test_config_edits_update_and_never_run_a_destructive_delete(
    edit: Callable[[dict[str, str]], None],
    project_dir: Path,
    lab_steps: dict[str, dict],  # type: ignore[type-arg]
) -> None:
    plan = plan_from_steps(lab_steps, _lab(project_dir, edit))
    assert plan and {change.operation for change in plan.values()} == {"update"}, plan
    assert not destructive(plan.values())


def test_only_the_removed_node_runs_a_destructive_delete(
    project_dir: Path, lab_steps: dict[str, dict]
) -> None:  # type: ignore[type-arg]
    import json

    def drop_pi_4(config: dict[str, str]) -> None:
        cluster = json.loads(config["naomi:cluster"])
        cluster["nodes"] = [n for n in cluster["nodes"] if n["name"] != "pi-4"]
        config["naomi:cluster"] = json.dumps(cluster)

    plan = plan_from_steps(lab_steps, _lab(project_dir, drop_pi_4))
    assert {c.operation for c in plan.values()} == {"delete"}
    assert [c.resource.rsplit("::", 1)[-1] for c in destructive(plan.values())] == ["cluster-pi-4-leave"]


def test_render_diff_labels_an_add_node_edit_as_updates_only(
    renders: dict[str, Rendered], project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = steps.script_text
    monkeypatch.setattr(
        steps, "script_text", lambda name: original(name) + ("# edited\n" if name == "add-node.sh" else "")
    )
    changes = diff_files(renders["edge-lab"].files, render(evaluate_stack(project_dir, "edge-lab")).files)
    markdown = changes.markdown("edit add-node.sh")
    assert changes.added == [] and changes.removed == []
    assert sorted(changes.changed) == [
        f"commands/cluster-{n}/{i}-join.yaml" for n, i in (("pi-1", "06"), ("pi-2", "06"), ("x86-1", "03"))
    ]
    assert "- changed `commands/cluster-pi-1/06-join.yaml` — update (environment changed)" in markdown
    assert "DESTRUCTIVE" not in markdown and "replace" not in markdown


def test_render_diff_marks_a_destructive_replace_loudly() -> None:
    step = "resource: a$command:local:Command::cluster-pi-1-leave\ntriggers: [%s]\ndelete: leave.sh\n"
    changes = diff_files(
        {"commands/cluster-pi-1/07-leave.yaml": step % "a"},
        {"commands/cluster-pi-1/07-leave.yaml": step % "b"},
    )
    markdown = changes.markdown("t")
    assert "> **WARNING: 1 step(s) would run a destructive delete:**" in markdown
    assert "**REPLACE RUNS A DESTRUCTIVE DELETE** (triggers changed)" in markdown


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
