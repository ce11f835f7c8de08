"""The retraining chain on real components: Prometheus' rule engine (promtool) evaluates the
rendered PrometheusRule over the series the serving apps export, and Debian's Alertmanager runs
the configuration rendered from our chart values, notifying the real trigger receiver with the
bearer token read from its credentials file.

Only what points outside this machine is changed in the rendered Alertmanager configuration: the
receiver's Service URL (a loopback port), the credentials file's path (a scratch file holding the
token) and the route's timers (30 s / 5 m / 1 h become 1 s / 1 s / 3 s, so a repeat arrives within
the test; the rendered values are asserted first). Firing -> exactly one launch; the repeat ->
none; resolved -> none. Synchronisation is by polling with deadlines.
"""

from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from naomi.render.tree import Rendered
from workloads.common.serving import serve_locally
from workloads.common.storage import LocalStore
from workloads.triggers.receiver import ObjectState, Receiver, create_app, load_rules

PROMTOOL = shutil.which("promtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


def _require(binary: str | None, package: str) -> str:
    if binary is None:
        import os

        message = f"{package} is not installed (apt-get install {package}; .ci/run does)"
        if os.environ.get("NAOMI_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _one(rendered: Rendered, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in rendered.kubernetes if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


# --- Prometheus: the rule as rendered, over the series as exported ----------------------------


def _promtool_test(tmp_path: Path, groups: list[dict[str, Any]], tests: list[dict[str, Any]]) -> str:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [_require(PROMTOOL, "prometheus"), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_rendered_rule_fires_on_the_exported_series(renders: dict[str, Rendered], tmp_path: Path) -> None:
    """lab-ha's `qoe-error` trigger (mean error > 500 for 15m) over the counters Ray Serve
    replicas export through Ray's metrics port (`ray_` prefix, per-replica labels) and the
    generic server exports itself: pending at 10 min, firing after `for`, with `naomi_trigger`."""
    groups = _one(renders["lab-ha"], "PrometheusRule", "naomi-retraining")["spec"]["groups"]
    ray = '{model="qoe",WorkerId="replica-a",Component="core_worker"}'
    generic = '{model="qoe",pod="qoe-edge-1"}'
    high_error = [  # one Ray Serve replica: 60 scored predictions a minute, error 600 each
        {"series": f"ray_naomi_serving_feedback_error_total{ray}", "values": "0+36000x60"},
        {"series": f"ray_naomi_serving_feedback_total{ray}", "values": "0+60x60"},
    ]
    both = [  # plus a generic server answering well: the mean over both runtimes is 350
        *high_error,
        {"series": f"naomi_serving_feedback_error_total{generic}", "values": "0+6000x60"},
        {"series": f"naomi_serving_feedback_total{generic}", "values": "0+60x60"},
    ]
    firing = {
        "exp_labels": {"naomi_trigger": "qoe-error", "severity": "info"},
        "exp_annotations": {
            "summary": "retraining trigger qoe-error: naomi:qoe_abs_error:mean5m > 500",
            "workflow": "qoe_train",
        },
    }
    _promtool_test(
        tmp_path,
        groups,
        [
            {
                "interval": "1m",
                "input_series": high_error,
                "promql_expr_test": [
                    {
                        "expr": "naomi:qoe_abs_error:mean5m",
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "naomi:qoe_abs_error:mean5m", "value": 600}],
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "10m", "alertname": "NaomiRetrain_qoe_error", "exp_alerts": []},
                    {"eval_time": "25m", "alertname": "NaomiRetrain_qoe_error", "exp_alerts": [firing]},
                ],
            },
            {
                "interval": "1m",
                "input_series": both,
                "promql_expr_test": [
                    {
                        "expr": "naomi:qoe_abs_error:mean5m",
                        "eval_time": "20m",
                        "exp_samples": [{"labels": "naomi:qoe_abs_error:mean5m", "value": 350}],
                    }
                ],
                "alert_rule_test": [
                    {"eval_time": "40m", "alertname": "NaomiRetrain_qoe_error", "exp_alerts": []}
                ],
            },
        ],
    )


# --- Alertmanager: the configuration as rendered, notifying the real receiver ------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _until(condition: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds:.0f} s")


class Recording:
    def __init__(self) -> None:
        self.names: list[str] = []

    def launch(self, workflow: str, inputs: Any, reason: str, name: str) -> str:
        self.names.append(name)
        return name


@pytest.fixture
def alertmanager_config(renders: dict[str, Rendered]) -> dict[str, Any]:
    (release,) = [r for r in renders["lab-ha"].helm if r["chart"] == "kube-prometheus-stack"]
    return copy.deepcopy(release["values"]["alertmanager"]["config"])


def test_alertmanager_delivers_one_launch_per_firing_alert(
    renders: dict[str, Rendered], alertmanager_config: dict[str, Any], tmp_path: Path
) -> None:
    config = alertmanager_config
    (route,) = config["route"]["routes"]
    assert (route["group_wait"], route["repeat_interval"], config["route"]["group_interval"]) == (
        "30s",
        "1h",
        "5m",
    )
    (receiver_config,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    (webhook,) = receiver_config["webhook_configs"]
    assert webhook["max_alerts"] == 20 and webhook["send_resolved"] is True

    token = "alertmanager-bearer-" + "x" * 20
    credentials = tmp_path / "secrets" / "token"
    credentials.parent.mkdir()
    credentials.write_text(token)
    rules = load_rules(_one(renders["lab-ha"], "ConfigMap", "trigger-rules")["data"]["triggers.json"])
    launcher = Recording()
    receiver = Receiver(rules, launcher, state=ObjectState(LocalStore(tmp_path / "objects")))
    server, port = serve_locally(create_app(receiver, credentials.read_text()))

    webhook["url"] = f"http://127.0.0.1:{port}/alerts"
    webhook["http_config"]["authorization"]["credentials_file"] = str(credentials)
    route.update(group_wait="1s", group_interval="1s", repeat_interval="3s")
    config["route"].update(group_wait="1s", group_interval="1s")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    check = subprocess.run(
        [_require(AMTOOL, "prometheus-alertmanager"), "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    api = _free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            _require(ALERTMANAGER, "prometheus-alertmanager"),
            f"--config.file={tmp_path / 'alertmanager.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{api}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{api}"

    def post_alert(ends: datetime | None = None) -> None:
        # What Prometheus sends for the rendered rule once it fires (labels of the rule).
        (rule,) = _one(renders["lab-ha"], "PrometheusRule", "naomi-retraining")["spec"]["groups"][1]["rules"]
        alert: dict[str, Any] = {
            "labels": {"alertname": rule["alert"], **rule["labels"]},
            "annotations": rule["annotations"],
            "startsAt": started.isoformat(),
        }
        if ends is not None:
            alert["endsAt"] = ends.isoformat()
        response = httpx.post(f"{base}/api/v2/alerts", json=[alert], timeout=10)
        assert response.status_code == 200, response.text

    def decisions() -> list[str]:
        return [h["decision"] for h in receiver.history]

    try:
        _until(lambda: _ready(base), 30, "Alertmanager ready")
        started = datetime.now(UTC) - timedelta(minutes=16)
        post_alert()
        _until(lambda: "launched" in decisions(), 30, "the firing alert reaches the receiver")
        assert len(launcher.names) == 1

        def repeated() -> bool:
            post_alert()  # Prometheus re-sends a firing alert every evaluation
            return "duplicate" in decisions()

        _until(repeated, 30, "Alertmanager repeats the notification")
        assert len(launcher.names) == 1

        post_alert(ends=datetime.now(UTC))
        _until(lambda: "resolved" in decisions(), 30, "the resolved notification reaches the receiver")
        assert len(launcher.names) == 1
        assert set(decisions()) <= {"launched", "duplicate", "resolved"}, decisions()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        server.should_exit = True


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
