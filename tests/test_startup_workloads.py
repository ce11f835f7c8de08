"""Start-up from the render (CHECKS 19) for the workloads' own servers: the trigger receiver
(lab-ha) here, the generic model server (edge-lab's `qoe-edge` on a bare cluster, beside the real
MLflow server it reads) in tests/test_serving_follow.py; each started as the kubelet would start it (`naomi.cluster.startup`: environment from
the rendered Secrets and ConfigMaps, the image's ENTRYPOINT read from its Dockerfile, command and
args with `$(VAR)` expanded) and probed with the kubelet's requests (Host `<pod IP>:<port>`).

Substituted, as in tests/test_startup.py: cluster Service addresses (MLflow -> the real MLflow
server of tests/test_mlflow_server.py, the object store -> a moto S3 server), generated secrets
the render only names (`<secret:...>`: the MLflow password is the test server's), mount paths
(scratch folders) and `0.0.0.0` (loopback). The test run is in its own network namespace, so the
rendered ports are used as they are.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from naomi.cluster.startup import (
    Image,
    command_line,
    environment,
    probe_request,
    probe_succeeded,
    rewrite_paths,
)
from naomi.paths import PROJECT_DIR
from naomi.render.tree import Rendered
from tests.test_startup import POD_IP, RenderedData, find


def entrypoint(image_folder: str) -> Image:
    """The image's ENTRYPOINT as its Dockerfile declares it (exec form)."""
    text = (PROJECT_DIR / "images" / image_folder / "Dockerfile").read_text()
    declared = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    return Image(entrypoint=tuple(json.loads(declared[-1]))) if declared else Image()


def start_as_rendered(argv: list[str], env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    argv = ["127.0.0.1" if word == "0.0.0.0" else word for word in argv]
    assert argv[0] == "python", argv
    argv[0] = sys.executable  # the image's python: this environment holds the same pins
    env = {**env, "PYTHONPATH": str(PROJECT_DIR), "PATH": str(Path(sys.executable).parent)}
    log = (workdir / "server.log").open("w")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def probe_until(
    container: dict[str, Any], probe: str, process: subprocess.Popen[bytes], log: Path
) -> httpx.Response:
    request = probe_request(container[probe], container, POD_IP)
    assert request is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the kubelet repeats a probe until it succeeds
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}: {log.read_text()[-3000:]}")
        try:
            response = httpx.get(
                request.url("127.0.0.1"), headers={**request.headers, "Host": request.host_header}
            )
            if probe_succeeded(response.status_code):
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    # The server's own lines, without uvicorn's access log of the probes themselves.
    lines = [line for line in log.read_text().splitlines() if f'"GET {request.path} HTTP' not in line]
    pytest.fail(f"{probe} GET {request.path} never succeeded: " + "\n".join(lines)[-3000:])


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.mark.slow
def test_trigger_receiver_as_rendered_answers_its_probes(
    renders: dict[str, Rendered], s3_endpoint: str, tmp_path: Path
) -> None:
    from minio import Minio

    objects = renders["lab-ha"].kubernetes
    pod = find(objects, "Deployment", "naomi-workloads", "trigger-receiver")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    data = RenderedData(objects, "naomi-workloads")
    client = Minio(s3_endpoint, "testing", "testing", secure=False, region="us-east-1")
    if not client.bucket_exists("datasets"):
        client.make_bucket("datasets")
    env = environment(container, secret=data.secret, config_map=data.config_map)
    env["AWS_ENDPOINT_URL"] = re.sub(
        r"http://object-store\.[a-z-]+\.svc\.cluster\.local:9000",
        f"http://{s3_endpoint}",
        env["AWS_ENDPOINT_URL"],
    )
    mounts: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        folder = tmp_path / mount["name"]
        folder.mkdir()
        mounts[mount["mountPath"]] = str(folder)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        if "configMap" in volume:
            for key, value in data.config_maps[volume["configMap"]["name"]].items():
                (folder / key).write_text(value)
    env = dict(zip(env, rewrite_paths(list(env.values()), mounts), strict=True))
    argv = rewrite_paths(command_line(container, env, entrypoint("workloads")), mounts)
    process = start_as_rendered(argv, env, tmp_path)
    try:
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe_until(container, probe, process, tmp_path / "server.log").json()["triggers"] == [
                "qoe-error"
            ]
        port = probe_request(container["readinessProbe"], container, POD_IP)
        assert port is not None
        refused = httpx.post(f"http://127.0.0.1:{port.port}/alerts", json={"version": "4", "alerts": []})
        assert refused.status_code == 401  # the rendered token is required
        accepted = httpx.post(
            f"http://127.0.0.1:{port.port}/alerts",
            json={"version": "4", "alerts": []},
            headers={"authorization": f"Bearer {env['TRIGGER_TOKEN']}"},
        )
        assert accepted.status_code == 200 and accepted.json() == {"outcomes": []}
    finally:
        stop(process)
