"""What `pulumi up` would do to each command step, computed offline from two renders.

pulumi-command 1.2.1 decides per resource (read at that tag):
- `triggers` is tagged `replaceOnChanges` (provider/pkg/provider/common/inputs.go): a change
  *replaces* the resource, whatever its description says about `update`;
- every other input change (create, update, delete, connection, environment, ...) is an
  update, which runs `update` (or `create` when there is no update;
  provider/pkg/provider/{remote,local}/commandController.go);
- Delete runs the delete command stored in the *old* state (`req.State`), and a replace
  deletes the old resource after creating the new one (Pulumi's default create-before-delete),
  so a replace runs the old `delete` too; a step that disappears runs its delete.

A step is matched across the renders by its resource id (file paths carry an order index that
shifts when steps are added). A step whose input takes another step's output (a
`<generated:NAME:stdout>` placeholder) is updated when that step is updated or replaced, as
`pulumi preview` shows it (the output becomes unknown). Secrets render as placeholders, so a
change of a secret alone (a rotated SSH key) is visible only when the evaluations differ in
the placeholder; `plan_from_steps` takes the inputs straight from an evaluation for that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from naomi.render.engine import Evaluation
from naomi.render.tree import COMMAND_TYPES

Operation = Literal["create", "update", "replace", "delete"]
# Inputs whose change is an update (everything a command resource takes but triggers).
UPDATE_INPUTS = (
    "create",
    "update",
    "delete",
    "connection",
    "environment",
    "stdin",
    "interpreter",
    "dir",
    "logging",
    "addPreviousOutputInEnv",
    "assetPaths",
    "archivePaths",
)
_OUTPUT_REFERENCE = re.compile(r"<generated:([^:>]+):(stdout|stderr)>")


@dataclass(frozen=True)
class StepChange:
    resource: str
    operation: Operation
    reason: str
    delete_runs: str | None  # the delete command that would run, if any

    @property
    def destructive(self) -> bool:
        return self.delete_runs is not None

    def label(self) -> str:
        text = f"{self.operation} ({self.reason})"
        if self.destructive:
            return f"**{self.operation.upper()} RUNS A DESTRUCTIVE DELETE** ({self.reason})"
        return text


def _name(resource: str) -> str:
    return resource.rsplit("::", 1)[-1]


def plan_from_steps(
    base: Mapping[str, Mapping[str, Any]], head: Mapping[str, Mapping[str, Any]]
) -> dict[str, StepChange]:
    """`base`/`head`: resource id -> command inputs. Only steps that change are returned."""
    changes: dict[str, StepChange] = {}
    for resource in sorted(set(head) - set(base)):
        changes[resource] = StepChange(resource, "create", "new step", None)
    for resource in sorted(set(base) - set(head)):
        delete = base[resource].get("delete")
        changes[resource] = StepChange(resource, "delete", "step removed", delete or None)
    for resource in sorted(set(base) & set(head)):
        old, new = base[resource], head[resource]
        if list(old.get("triggers") or []) != list(new.get("triggers") or []):
            delete = old.get("delete")
            changes[resource] = StepChange(resource, "replace", "triggers changed", delete or None)
            continue
        differing = [key for key in UPDATE_INPUTS if old.get(key) != new.get(key)]
        if differing:
            changes[resource] = StepChange(resource, "update", f"{', '.join(differing)} changed", None)
    _propagate_unknown_outputs(head, changes)
    return changes


def _propagate_unknown_outputs(head: Mapping[str, Mapping[str, Any]], changes: dict[str, StepChange]) -> None:
    by_name = {_name(resource): resource for resource in head}
    pending = True
    while pending:
        pending = False
        for resource, inputs in head.items():
            if resource in changes:
                continue
            sources = {match.group(1) for match in _OUTPUT_REFERENCE.finditer(yaml.safe_dump(dict(inputs)))}
            changed = sorted(
                s for s in sources if by_name.get(s) in changes and changes[by_name[s]].operation != "delete"
            )
            if changed:
                changes[resource] = StepChange(
                    resource, "update", f"output of {', '.join(changed)} changes", None
                )
                pending = True


def steps_from_tree(files: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Command inputs by resource id from a render tree (`commands/**.yaml`)."""
    steps: dict[str, dict[str, Any]] = {}
    for path, text in files.items():
        if path.startswith("commands/"):
            document = yaml.safe_load(text)
            steps[document["resource"]] = document
    return steps


def steps_from_evaluation(evaluation: Evaluation) -> dict[str, dict[str, Any]]:
    """Command inputs by resource id from an evaluation (secret placeholders kept)."""
    return {record.id: record.inputs for record in evaluation.records if record.type in COMMAND_TYPES}


def plan_from_trees(base: Mapping[str, str], head: Mapping[str, str]) -> dict[str, StepChange]:
    return plan_from_steps(steps_from_tree(base), steps_from_tree(head))


def destructive(changes: Iterable[StepChange]) -> list[StepChange]:
    return [change for change in changes if change.destructive]
