"""Judge an older revision's render with today's cluster-model checks.

    .venv/bin/python scripts/check_revision.py <git revision> [--stack edge-lab]

The revision is rendered by its own code (`naomi.render.diff.render_revision`); its Helm releases
are rendered with today's chart renderer from the chart cache (`NAOMI_CHARTS`), its custom
resources expanded with today's operator models, and today's checks run over all of it: Pod
Security admission, the Traefik CRD provider's view of the routes, placement, and the flows the
*current* components declare proven against the revision's NetworkPolicies (a revision without
declared flows did not state what it needed; today's declarations say it). This is how the
defects of issue 13 were shown failing on the code before their fixes.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from naomi.cluster import charts
from naomi.cluster.checks import admission_problems, declared_flows, expanders, flyte_executions, inventory
from naomi.cluster.flows import prove
from naomi.cluster.gateway import route_problems, traefik_settings
from naomi.cluster.model import ClusterModel
from naomi.cluster.placement import placement_problems
from naomi.paths import PROJECT_DIR
from naomi.render.diff import render_revision
from naomi.render.engine import evaluate_stack


def revision_objects(files: dict[str, str], cache: Path) -> list[tuple[str, dict[str, Any]]]:
    objects: list[tuple[str, dict[str, Any]]] = []
    for path, text in sorted(files.items()):
        if path.startswith("k8s/") and not text.startswith("# helm release"):
            objects.append(("pulumi", yaml.safe_load(text)))
    for path, text in sorted(files.items()):
        if not path.startswith("helm/"):
            continue
        release = yaml.safe_load(text)
        archive = charts.archive_path(cache, str(release["chart"]), str(release["version"]))
        rendered = charts.render_release(
            archive, release.get("values") or {}, release=release["release"], namespace=release["namespace"]
        )
        origin = f"helm:{release['namespace']}/{release['release']}"
        objects += [(origin, obj) for obj in rendered.objects]
    return objects


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("revision")
    parser.add_argument("--stack", default="edge-lab")
    args = parser.parse_args()
    cache = charts.cache_dir()
    with tempfile.TemporaryDirectory() as workdir:
        files = render_revision(PROJECT_DIR, args.revision, args.stack, Path(workdir))
    objects = revision_objects(files, cache)
    releases = SimpleNamespace(helm=[yaml.safe_load(t) for p, t in files.items() if p.startswith("helm/")])
    objects += flyte_executions(releases, objects)  # type: ignore[arg-type]
    model = ClusterModel.from_objects(objects, expanders(objects))
    today = evaluate_stack(PROJECT_DIR, args.stack)
    claims = {
        item.describe(): bool((item.obj.get("spec") or {}).get("volumeClaimTemplates"))
        for item in model.objects
        if item.kind == "StatefulSet"
    }
    sections = {
        "admission": admission_problems(model),
        "gateway": route_problems(
            [i.obj for i in model.objects], traefik_settings(i.obj for i in model.objects)
        )
        if traefik_settings(i.obj for i in model.objects)
        else ["no Traefik Deployment in the model"],
        "placement": placement_problems(
            [(p.owner, p.spec, claims.get(p.owner, False)) for p in model.pods], inventory(today)
        ),
        "flows": prove(model, declared_flows(today)).failures,
    }
    print(f"{args.stack} at {args.revision}: {len(model.pods)} pods in the model")
    for name, problems in sections.items():
        print(f"## {name}: {len(problems)} problem(s)")
        for problem in problems:
            print(f"- {problem}")


if __name__ == "__main__":
    main()
