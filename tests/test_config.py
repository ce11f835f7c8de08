"""Stack config: strict parsing, errors that name the key, nothing registered on error."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naomi.paths import PROJECT_DIR
from naomi.render.engine import Record, RenderError, evaluate, read_stack_file, stack_config, stack_program
from stacks.config import ConfigError, json_schema, load_stack_config, secrets_to_set

# lab-ha as its program gets it once `pulumi config set --secret naomi:sshPrivateKey` is done.
BASE_CONFIG, BASE_SECRETS, _ = stack_config(PROJECT_DIR, "lab-ha")
PROGRAM = stack_program(PROJECT_DIR)


def _error_for(config: dict[str, str], secrets: list[str] | None = None) -> tuple[str, list[Record]]:
    """Run the real stack program; return its one-line error and whatever it registered."""
    registered: list[Record] = []
    with pytest.raises(pulumi.RunError) as caught:
        evaluate(PROGRAM, "test", config, BASE_SECRETS if secrets is None else secrets, registered=registered)
    return str(caught.value), registered


def _with(key: str, mutate: Any) -> dict[str, str]:
    config = dict(BASE_CONFIG)
    document = json.loads(config[key])
    mutate(document)
    config[key] = json.dumps(document)
    return config


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {**BASE_CONFIG, "naomi:clustr": "{}"},
            "invalid stack config: naomi:clustr: unknown key; allowed keys: ",
        ),
        (
            _with("naomi:cluster", lambda c: c["nodes"][0].update(adress="10.0.0.1")),
            "invalid stack config: naomi:cluster.nodes[0].adress: unknown key; allowed keys: address, arch, "
            "board, hostKey, labels, name, role, sshPort, sshUser, taints",
        ),
        (
            _with("naomi:cluster", lambda c: c["nodes"][3].update(arch="x86")),
            "invalid stack config: naomi:cluster.nodes[3].arch: Input should be 'amd64' or 'arm64' (got \"x86\")",
        ),
        (
            _with("naomi:cluster", lambda c: c["nodes"][4].update(address="10.20.0.11")),
            "invalid stack config: naomi:cluster.nodes[4].address: duplicate address '10.20.0.11' "
            "(also nodes[0]); addresss must be unique",
        ),
        (
            _with("naomi:cluster", lambda c: c["nodes"][5].update(arch="amd64")),
            "invalid stack config: naomi:cluster.nodes[5]: board 'rpi5' is a Raspberry Pi: arch must be 'arm64'",
        ),
        (
            _with("naomi:cluster", lambda c: c["nodes"][3].update(role="control-plane")),
            "invalid stack config: naomi:cluster: 4 control-plane nodes: use 1, or an odd number >= 3 for HA "
            "(dqlite quorum)",
        ),
        (
            _with("naomi:ray", lambda r: r["pools"][0].update(cpu=4)),
            "invalid stack config: naomi:ray.pools[0].cpu: Input should be a valid string (got 4)",
        ),
        (
            _with("naomi:ray", lambda r: r["pools"][0].update(memory="8GB")),
            'invalid stack config: naomi:ray.pools[0].memory: must match ^[0-9]+(Ki|Mi|Gi|Ti)$ (got "8GB")',
        ),
        (
            _with("naomi:serving", lambda s: s["models"][0].update(pool="gpu")),
            "invalid stack config: naomi:serving.models[0].pool: unknown Ray pool 'gpu'; pools: pi, x86",
        ),
        (
            {**BASE_CONFIG, "naomi:kubernetesVersion": "1.33"},
            "invalid stack config: naomi:cluster.microk8s.channel: channel 1.32/stable installs Kubernetes 1.32, "
            "but kubernetesVersion is 1.33; change both together",
        ),
        (
            {**BASE_CONFIG, "naomi:profile": "huge"},
            "invalid stack config: naomi:profile: Input should be 'edge', 'lab' or 'full' (got \"huge\")",
        ),
        (
            _with("naomi:retraining", lambda r: r["triggers"][0].update(cron="61 3 * * *")),
            'invalid stack config: naomi:retraining.triggers[0].cron: minute 61 is out of range 0-59 (got "61 3 * * *")',
        ),
        (
            _with("naomi:retraining", lambda r: r["triggers"][2].update(cron="0 4 * * 7")),
            "invalid stack config: naomi:retraining.triggers[2].cron: day of week 7 is out of range 0-6 "
            '(got "0 4 * * 7")',
        ),
        (
            _with("naomi:postgres", lambda p: p["backup"].update(schedule="0 22-2 * * *")),
            'invalid stack config: naomi:postgres.backup.schedule: hour range 22-2 runs backwards (got "0 22-2 * * *")',
        ),
        (
            _with("naomi:postgres", lambda p: p["backup"].update(schedule="*/0 * * * *")),
            "invalid stack config: naomi:postgres.backup.schedule: minute step must be a positive number (*/0) "
            '(got "*/0 * * * *")',
        ),
        (
            _with("naomi:retraining", lambda r: r["triggers"][1].update(expr="x >> 500 (")),
            "invalid stack config: naomi:retraining.triggers[1].expr: not valid PromQL: unclosed left parenthesis "
            '(got "x >> 500 (")',
        ),
        (
            _with("naomi:cluster", lambda c: c["nodes"][0].update(address="192.168.50.999")),
            "invalid stack config: naomi:cluster.nodes[0].address: looks like an IPv4 address but is not one "
            '(four numbers 0-255) (got "192.168.50.999")',
        ),
        (
            _with("naomi:gateway", lambda g: g.update(address="fe80::1::2")),
            'invalid stack config: naomi:gateway.address: not a valid IPv6 address (got "fe80::1::2")',
        ),
        (
            _with("naomi:gateway", lambda g: g.update(address="Naomi.LAN")),
            "invalid stack config: naomi:gateway.address: must be an IP address or a lower-case DNS name such as "
            "'naomi.lan' (got \"Naomi.LAN\")",
        ),
        (
            _with("naomi:cluster", lambda c: c["microk8s"]["addons"].append("registry")),
            "invalid stack config: naomi:cluster.microk8s.addons: the 'registry' addon is an unauthenticated "
            "registry on NodePort 32000 of every node, reachable from the LAN",
        ),
    ],
    ids=[
        "misspelt-top-key",
        "misspelt-node-key",
        "unknown-arch",
        "duplicate-address",
        "pi-declared-amd64",
        "even-control-planes",
        "wrong-type",
        "bad-quantity",
        "unknown-pool",
        "channel-version",
        "unknown-profile",
        "cron-minute-61",
        "cron-sunday-as-7",
        "cron-backwards-range",
        "cron-zero-step",
        "promql-syntax",
        "ipv4-out-of-range",
        "ipv6-malformed",
        "dns-upper-case",
        "registry-addon",
    ],
)
def test_malformed_config_is_one_line_naming_the_key(config: dict[str, str], expected: str) -> None:
    message, registered = _error_for(config)
    assert message.startswith(expected), message
    assert "\n" not in message
    assert registered == []


@pytest.mark.parametrize(
    "address",
    ["192.168.50.10", "10.20.0.11", "fe80::1", "2001:db8::10", "naomi.lab.internal", "pi-1", "x1.lan"],
)
def test_valid_addresses_are_accepted(address: str) -> None:
    config = _with("naomi:gateway", lambda g: g.update(address=address))
    assert load_stack_config(config, set(BASE_SECRETS)).gateway.address == address  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "schedule", ["0 3 * * *", "*/15 * * * *", "0 0 1,15 * 1-5", "30 2 * 1-12/3 0", "5-10/5 * * * 6"]
)
def test_valid_schedules_are_accepted(schedule: str) -> None:
    config = _with("naomi:postgres", lambda p: p["backup"].update(schedule=schedule))
    assert load_stack_config(config, set(BASE_SECRETS)).postgres.backup.schedule == schedule


DUPLICATE_TOP = """config:
  naomi:profile: edge
  naomi:ray:
    enabled: true
  naomi:profile: lab
"""
DUPLICATE_NESTED = """config:
  naomi:cluster:
    mode: microk8s
    nodes:
      - {name: cp-1, address: 10.0.0.1, arch: amd64, arch: arm64}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            DUPLICATE_TOP,
            'Pulumi.dup.yaml: line 5: mapping key "naomi:profile" already defined at line 2 '
            "(the Pulumi CLI refuses duplicate keys)",
        ),
        (
            DUPLICATE_NESTED,
            'Pulumi.dup.yaml: line 5: mapping key "arch" already defined at line 5 '
            "(the Pulumi CLI refuses duplicate keys)",
        ),
    ],
    ids=["top-level", "in-a-flow-mapping"],
)
def test_duplicate_keys_are_refused_as_the_pulumi_cli_does(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "Pulumi.dup.yaml"
    path.write_text(text)
    with pytest.raises(RenderError) as caught:
        read_stack_file(path)
    assert str(caught.value) == expected


def test_secret_key_set_in_plain_text_is_rejected() -> None:
    secrets = [key for key in BASE_SECRETS if key != "naomi:sshPrivateKey"]
    message, registered = _error_for(dict(BASE_CONFIG), secrets)
    assert message == (
        "invalid stack config: naomi:sshPrivateKey: must be a secret: "
        "pulumi config set --secret naomi:sshPrivateKey ..."
    )
    assert registered == []


def test_secure_value_inside_a_structured_key_is_rejected() -> None:
    message, _ = _error_for(dict(BASE_CONFIG), [*BASE_SECRETS, "naomi:cluster"])
    assert message.startswith(
        "invalid stack config: naomi:cluster: holds a secure value, but secrets are separate keys"
    )


def test_missing_secret_for_microk8s_names_the_command() -> None:
    config = {k: v for k, v in BASE_CONFIG.items() if k != "naomi:sshPrivateKey"}
    message, _ = _error_for(config, [])
    assert message == (
        "invalid stack config: naomi:sshPrivateKey: required for cluster.mode 'microk8s' (SSH): "
        "pulumi config set --secret naomi:sshPrivateKey ..."
    )


@pytest.mark.parametrize(
    ("stack", "absent"),
    [
        ("dev", ["naomi:kubeconfig"]),
        ("edge-lab", ["naomi:sshPrivateKey"]),
        ("lab-ha", ["naomi:sshPrivateKey"]),
    ],
)
def test_every_example_stack_parses_once_its_secrets_are_set(stack: str, absent: list[str]) -> None:
    values, secrets = read_stack_file(PROJECT_DIR / "stacks" / f"Pulumi.{stack}.yaml")
    assert secrets == [] and secrets_to_set(values, set()) == absent
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values, set())
    assert caught.value.missing_secrets == tuple(absent)
    completed, secret_keys, placeholders = stack_config(PROJECT_DIR, stack)
    assert placeholders == absent and secret_keys == absent
    assert completed[absent[0]] == f"<secret:{absent[0]}>"
    load_stack_config(completed, set(secret_keys))


def test_tls_secrets_are_asked_for_one_after_the_other_and_found_together() -> None:
    config = _with("naomi:gateway", lambda g: g.update(tls={"mode": "provided"}))
    assert secrets_to_set(config, set(BASE_SECRETS)) == ["naomi:tlsCertificate", "naomi:tlsPrivateKey"]
    assert secrets_to_set({**config, "naomi:profile": "huge"}, set(BASE_SECRETS)) == []


def test_pulumi_yaml_defaults_read_as_keys_left_out() -> None:
    """`{}` (objects) and "" (secrets) are what the CLI passes for keys a stack leaves out."""
    defaults = {**BASE_CONFIG, "naomi:layers": "{}", "naomi:kubeconfig": "", "naomi:tlsCertificate": ""}
    assert load_stack_config(defaults, set(BASE_SECRETS)) == load_stack_config(BASE_CONFIG, set(BASE_SECRETS))
    message, _ = _error_for({**BASE_CONFIG, "naomi:gateway": "{}"})
    assert message == (
        "invalid stack config: naomi:gateway: required when layers.platform is on: {address: <node IP or DNS name>}"
    )


def test_json_schema_accepts_the_examples_and_rejects_unknown_keys() -> None:
    import jsonschema

    schema = json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((PROJECT_DIR / "stacks").glob("Pulumi.*.yaml")):
        config = yaml.safe_load(path.read_text())["config"]
        plain = {k: ("x" if isinstance(v, dict) and set(v) == {"secure"} else v) for k, v in config.items()}
        assert list(validator.iter_errors(plain)) == [], path.name
    assert list(validator.iter_errors({"naomi:clustr": {}}))
    assert list(validator.iter_errors({"naomi:cluster": {"mode": "microk8s", "nodez": []}}))


def test_committed_schema_file_is_current() -> None:
    committed = PROJECT_DIR / "docs" / "stack-config.schema.json"
    assert committed.is_file(), "run: naomi schema --out docs/stack-config.schema.json"
    assert json.loads(committed.read_text()) == json_schema(), (
        "stale: naomi schema --out docs/stack-config.schema.json"
    )


def test_config_error_lists_every_problem_but_prints_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config({"naomi:a": "1", "naomi:b": "2"}, set())
    assert len(caught.value.messages) == 2
    assert str(caught.value).endswith("(and 1 more)")


def test_cli_reports_a_broken_stack_file_on_one_line_and_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "stacks").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text((PROJECT_DIR / "Pulumi.yaml").read_text())
    (project / "stacks" / "__main__.py").write_text((PROJECT_DIR / "stacks" / "__main__.py").read_text())
    broken = yaml.safe_load((PROJECT_DIR / "stacks" / "Pulumi.edge-lab.yaml").read_text())
    broken["config"]["naomi:cluster"]["nodes"][2]["arch"] = "arm"
    (project / "stacks" / "Pulumi.broken.yaml").write_text(yaml.safe_dump(broken))
    out = tmp_path / "render"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "naomi.cli",
            "render",
            "--stack",
            "broken",
            "--out",
            str(out),
            "--project-dir",
            str(project),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: invalid stack config: naomi:cluster.nodes[2].arch: Input should be 'amd64' or 'arm64' (got \"arm\")"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not out.exists()


# --- property-based: >= 1,000 malformed configs -----------------------------------------------

FREE_FORM = ("labels", "inputs")
ENUMS = {"arch", "board", "role", "mode", "kind", "runtime", "effect", "workflow"}
OTHER_TYPES: list[Any] = [7, 1.5, True, [], {}, "text"]


def _paths(value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], Any]]:
    found = [(path, value)]
    if isinstance(value, dict):
        if path and path[-1] in FREE_FORM:
            return []
        for key, child in value.items():
            found.extend(_paths(child, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*path, index)))
    return found


def _key_path(top: str, path: tuple[str | int, ...]) -> str:
    text = top
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


STRUCTURED = {key: json.loads(value) for key, value in BASE_CONFIG.items() if value[:1] in ("{", "[")}
TARGETS = [
    (top, path, value) for top, document in sorted(STRUCTURED.items()) for path, value in _paths(document, ())
]


def _same_type(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return type(a) is type(b)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    """One valid lab-ha config with exactly one mutation that must be rejected at a known key."""
    top, path, value = draw(st.sampled_from(TARGETS))
    document = copy.deepcopy(STRUCTURED[top])
    parent: Any = document
    for part in path[:-1]:
        parent = parent[part]
    kind = draw(st.sampled_from(["unknown-key", "wrong-type", "bad-enum"]))
    if kind == "unknown-key" and isinstance(value, dict):
        target: Any = document
        for part in path:
            target = target[part]
        name = draw(
            st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12).map(lambda s: s + "X")
        )
        target[name] = draw(st.sampled_from(OTHER_TYPES))
        expected = _key_path(f"naomi:{top.split(':', 1)[1]}", (*path, name))
    elif kind == "bad-enum" and path and path[-1] in ENUMS:
        parent[path[-1]] = draw(st.sampled_from(["bogus", "AMD64", "", "x86_64"]))
        expected = _key_path(f"naomi:{top.split(':', 1)[1]}", path)
    else:
        if not path:
            return {**BASE_CONFIG, top: draw(st.sampled_from(["text", "7", "[1, 2]"]))}, top
        replacement = draw(st.sampled_from([o for o in OTHER_TYPES if not _same_type(o, value)]))
        parent[path[-1]] = replacement
        expected = _key_path(f"naomi:{top.split(':', 1)[1]}", path)
    return {**BASE_CONFIG, top: json.dumps(document)}, expected


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(malformed())
def test_generated_malformed_configs_are_rejected_naming_the_key(case: tuple[dict[str, str], str]) -> None:
    config, expected_key = case
    registered: list[Record] = []
    try:
        evaluate(PROGRAM, "fuzz", config, BASE_SECRETS, registered=registered)
    except pulumi.RunError as error:
        message = str(error)
    else:
        pytest.fail(f"accepted a malformed config (expected an error at {expected_key})")
    assert message.startswith("invalid stack config: naomi:"), message
    assert "\n" not in message and "Traceback" not in message
    assert expected_key in message, (expected_key, message)
    assert registered == []
