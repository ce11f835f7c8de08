"""Pulumi.yaml and the stack files as the Pulumi CLI of the minimum version we state reads them.

The CLI validates Pulumi.yaml against its project schema, `sdk/go/common/workspace/project.json`
in pulumi/pulumi (embedded in the CLI; `ValidateProject` in project.go), then merges each
stack's config with the project's declarations (`mergeConfig` in config.go). The schema file is
upstream material: it lies in ../shared/reference/pulumi/<tag>/, taken with `git show
v3.187.0:sdk/go/common/workspace/project.json`, never in the project.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from naomi.paths import PROJECT_DIR
from naomi.render.engine import stack_config
from stacks.config import load_stack_config
from tests.conftest import EXAMPLE_STACKS

MINIMUM_CLI = "v3.187.0"
PROJECT_SCHEMA = f"reference/pulumi/{MINIMUM_CLI}/project.json"
# sha256 of the file at that tag (commit ba984452ea927e63cc995be2bfe1a4192adcc608).
PROJECT_SCHEMA_SHA256 = "647abc4d994e33aa4cc3f7fd74811338b17ad0e51d99fc39b2326fc6f41f091c"


def _project() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    return document


def _schema() -> dict[str, Any]:
    """Pulumi's project schema at the minimum CLI: `$NAOMI_PULUMI_SCHEMA`, or `../shared` when it
    carries one. Neither the Pulumi CLI nor its schema is obtainable from the package registries CI
    reaches (the npm package ships no project.json), so without the file these tests skip, even in
    CI; `test_the_cli_defaults_mean_the_same_as_leaving_keys_out` models the CLI's config rule
    without it."""
    import os

    configured = os.environ.get("NAOMI_PULUMI_SCHEMA")
    if configured:
        path = Path(configured)
    else:
        from naomi.paths import shared_dir

        shared = shared_dir()
        path = shared / PROJECT_SCHEMA if shared is not None else Path("/nonexistent")
    if not path.is_file():
        pytest.skip(
            f"Pulumi's project.json {MINIMUM_CLI} not available (set NAOMI_PULUMI_SCHEMA to "
            f"`git show {MINIMUM_CLI}:sdk/go/common/workspace/project.json` of pulumi/pulumi)"
        )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PROJECT_SCHEMA_SHA256, (
        f"{path} is not the file at the tag"
    )
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _errors(schema: dict[str, Any], project: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}|{e.message}" for e in validator.iter_errors(project)
    )


def test_pulumi_yaml_is_valid_for_the_minimum_cli() -> None:
    assert _errors(_schema(), _project()) == []


def test_readme_states_the_minimum_cli() -> None:
    assert f"Pulumi CLI {MINIMUM_CLI} or later" in (PROJECT_DIR / "README.md").read_text()


def test_a_cli_without_object_config_types_refuses_pulumi_yaml() -> None:
    """Before pulumi/pulumi#20129 the schema's config types were string, integer, boolean, array."""
    older = copy.deepcopy(_schema())
    older["$defs"]["simpleConfigType"]["enum"].remove("object")
    refused = sorted(e.split("|", 1)[0] for e in _errors(older, _project()))
    objects = sorted(
        f"config/{key}" for key, entry in _project()["config"].items() if entry.get("type") == "object"
    )
    assert len(objects) == 13
    assert refused == objects


def _with_cli_defaults(stack: str) -> tuple[dict[str, str], list[str]]:
    """A stack's config as `mergeConfig` completes it (sdk/go/common/workspace/config.go at
    v3.187.0): each declared key the stack leaves out gets its default (createConfigValue: a
    primitive as its text, an object as JSON); a key without default or value is an error."""
    config, secret_keys, _ = stack_config(PROJECT_DIR, stack)
    missing = []
    for key, entry in _project()["config"].items():
        if key in config:
            continue
        if "default" not in entry and "value" not in entry:
            missing.append(key)
            continue
        value = entry.get("default", entry.get("value"))
        config[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    assert missing == [], f"Stack '{stack}' is missing configuration values {missing}"
    return config, secret_keys


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_the_cli_defaults_mean_the_same_as_leaving_keys_out(stack: str) -> None:
    config, secret_keys, _ = stack_config(PROJECT_DIR, stack)
    merged, _ = _with_cli_defaults(stack)
    assert len(merged) > len(config)
    assert load_stack_config(merged, set(secret_keys)) == load_stack_config(config, set(secret_keys))


@pytest.mark.parametrize("path", sorted((PROJECT_DIR / "stacks").glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_example_stacks_carry_no_salt_or_ciphertext(path: Path) -> None:
    """`pulumi stack init` and `pulumi config set --secret` write them with the user's passphrase."""
    document = yaml.safe_load(path.read_text())
    assert "encryptionsalt" not in document
    assert "secure:" not in path.read_text()
