"""Write infra/dashboards/ray.json: Ray's Grafana dashboards, from the pinned Ray's own factory.

`pulumi up` must not need Ray (an operator's machine installs the core only), so the dashboards
the monitoring component deploys are generated here, once per Ray version, and committed.
tests/test_light_deploy.py fails when the file differs from what the installed Ray generates.

    .venv/bin/python scripts/ray_dashboards.py     # needs the workloads extra
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from infra.monitoring import DASHBOARDS_FILE  # noqa: E402
from infra.versions import RAY_VERSION  # noqa: E402


def generate() -> dict[str, Any]:
    """The file's content: Ray's version and its dashboards by ConfigMap file name."""
    import ray
    from ray.dashboard.modules.metrics import grafana_dashboard_factory as factory

    if ray.__version__ != RAY_VERSION:
        raise SystemExit(
            f"Ray {ray.__version__} is installed but the cluster runs {RAY_VERSION}: "
            "dashboards must come from the same version (uv sync --frozen --extra workloads)"
        )
    dashboards = {}
    for make in (
        factory.generate_default_grafana_dashboard,
        factory.generate_serve_grafana_dashboard,
        factory.generate_train_grafana_dashboard,
        factory.generate_data_grafana_dashboard,
    ):
        content, uid = make()
        dashboards[f"ray-{uid}.json"] = json.loads(content)
    return {"generatedBy": "scripts/ray_dashboards.py", "ray": ray.__version__, "dashboards": dashboards}


def text(document: dict[str, Any]) -> str:
    """One key per line, sorted: a Ray upgrade shows as a readable diff."""
    return json.dumps(document, sort_keys=True, indent=1) + "\n"


def main() -> None:
    DASHBOARDS_FILE.write_text(text(generate()))
    print(f"wrote {DASHBOARDS_FILE.relative_to(PROJECT)} (Ray {RAY_VERSION})")


if __name__ == "__main__":
    main()
