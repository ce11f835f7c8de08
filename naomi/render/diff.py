"""Object-level diff of two renders: what a pull request changes, without cluster credentials.

The base revision is exported with `git archive` into a temporary folder and rendered there
by its own code (in a subprocess, so old and new modules never mix); the head is the
working tree. Every render file is one object, so the diff lists objects added, removed and
changed, with a unified diff of each changed object. Command steps are labelled with what
`pulumi up` would do to them (`naomi.render.lifecycle`: create/update/replace/delete), and a
replace or delete that runs a destructive delete command is marked loudly.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import yaml

from naomi.render.engine import RenderError
from naomi.render.lifecycle import StepChange, plan_from_trees, steps_from_tree


@dataclass(frozen=True)
class TreeDiff:
    added: list[str]
    removed: list[str]
    changed: dict[str, str]
    # Command files (base path for removed steps, head path otherwise) -> what pulumi would do.
    steps: dict[str, StepChange] = field(default_factory=dict)
    # Releases whose chart one side could not render (not in the chart cache): their chart
    # objects are left out of the comparison instead of showing as added or removed.
    uncompared: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def _label(self, path: str) -> str:
        step = self.steps.get(path)
        return f" — {step.label()}" if step is not None else ""

    def markdown(self, title: str) -> str:
        lines = [f"### {title}", ""]
        if self.empty:
            lines.append("No changes.")
            return "\n".join(lines) + "\n"
        lines.append(f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed")
        lines.append("")
        for release in self.uncompared:
            lines.append(
                f"> Chart objects of `{release}` not compared: its chart is not in the chart cache on "
                "one side (run `naomi charts pull` and diff again)."
            )
            lines.append("")
        loud = [step for step in self.steps.values() if step.destructive]
        if loud:
            lines.append(f"> **WARNING: {len(loud)} step(s) would run a destructive delete:**")
            for step in loud:
                lines.append(f"> - `{step.resource}`: {step.operation} ({step.reason})")
            lines.append("")
        for path in self.added:
            lines.append(f"- added `{path}`{self._label(path)}")
        for path in self.removed:
            lines.append(f"- removed `{path}`{self._label(path)}")
        for path, patch in self.changed.items():
            lines.extend(
                [f"- changed `{path}`{self._label(path)}", "", "```diff", patch.rstrip("\n"), "```", ""]
            )
        return "\n".join(lines) + "\n"


def _unrendered_releases(tree: dict[str, str]) -> set[str]:
    """`<namespace>/<release>` of every Helm release rendered without its chart (no sha256)."""
    missing = set()
    for path, text in tree.items():
        if path.startswith("helm/"):
            document = yaml.safe_load(text) or {}
            if document.get("chart") and not document.get("sha256"):
                missing.add(f"{document.get('namespace')}/{document.get('release')}")
    return missing


def _release_of(path: str, text: str) -> str | None:
    """The release a chart object or CRD file came from (its `# helm release` first line)."""
    if path.startswith("crds/"):
        return path.split("/")[1]
    first = text.split("\n", 1)[0]
    if first.startswith("# helm release "):
        return first.removeprefix("# helm release ").split(":", 1)[0]
    return None


def diff_files(base: dict[str, str], head: dict[str, str]) -> TreeDiff:
    uncompared = sorted(_unrendered_releases(base) | _unrendered_releases(head))
    if uncompared:
        names = {release.split("/", 1)[1] for release in uncompared}

        def keep(path: str, text: str) -> bool:
            release = _release_of(path, text)
            return release is None or (release not in uncompared and release not in names)

        base = {p: t for p, t in base.items() if keep(p, t)}
        head = {p: t for p, t in head.items() if keep(p, t)}
    added = sorted(set(head) - set(base))
    removed = sorted(set(base) - set(head))
    changed = {}
    for path in sorted(set(base) & set(head)):
        if base[path] != head[path]:
            patch = difflib.unified_diff(
                base[path].splitlines(keepends=True),
                head[path].splitlines(keepends=True),
                fromfile=f"base/{path}",
                tofile=f"head/{path}",
                n=3,
            )
            changed[path] = "".join(patch)
    return TreeDiff(
        added=added, removed=removed, changed=changed, steps=_step_labels(base, head), uncompared=uncompared
    )


def _step_labels(base: dict[str, str], head: dict[str, str]) -> dict[str, StepChange]:
    plan = plan_from_trees(base, head)
    labels: dict[str, StepChange] = {}
    for tree in (base, head):  # head paths win for steps present in both
        for path, resource in _paths_by_resource(tree).items():
            if resource in plan:
                labels[path] = plan[resource]
    return labels


def _paths_by_resource(tree: dict[str, str]) -> dict[str, str]:
    """Command file path -> its resource id."""
    return {path: resource for path in tree for resource in steps_from_tree({path: tree[path]})}


def read_tree(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*.yaml"))
        if path.is_file()
    }


def render_revision(project_dir: Path, revision: str, stack: str, workdir: Path) -> dict[str, str]:
    """Render `stack` as it was at git `revision`, with that revision's own code."""
    archive = subprocess.run(
        ["git", "-C", str(project_dir), "archive", "--format=tar", revision],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()
        raise RenderError(
            f"cannot read git revision {revision!r}: {message[-1] if message else 'git failed'}"
        )
    source = workdir / "source"
    source.mkdir()
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    if not (source / "stacks" / f"Pulumi.{stack}.yaml").is_file():
        return {}
    try:
        return render_source(source, stack, workdir / "render")
    except RenderError as error:
        raise RenderError(f"rendering {stack} at {revision} failed: {error}") from None


def render_source(source: Path, stack: str, out: Path) -> dict[str, str]:
    """Render `stack` of the project tree at `source` with that tree's own code (a subprocess
    importing it first); the written tree, or RenderError with the last line it printed."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "naomi.cli",
            "render",
            "--stack",
            stack,
            "--out",
            str(out),
            "--project-dir",
            str(source),
        ],
        cwd=source,
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError((result.stderr.strip().splitlines() or ["no output"])[-1])
    return read_tree(out)


def diff_against_revision(project_dir: Path, revision: str, stack: str, head: dict[str, str]) -> TreeDiff:
    with tempfile.TemporaryDirectory(prefix="naomi-diff-") as workdir:
        base = render_revision(project_dir, revision, stack, Path(workdir))
    return diff_files(base, head)
