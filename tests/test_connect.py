"""`naomi connect` from "a laptop": the files it writes, used for real through the real Traefik.

The edge-lab gateway (the rendered IngressRoutes, Middlewares and Traefik's entry point, on the
real binary: `tests.test_gateway_traefik.local_gateway`) runs on 127.0.0.1 in front of three real
backends: a Ray head with token auth, dashboard and job API; the render's MLflow pod (the
session's shared platform, `tests.platform_model.shared_platform`: PostgreSQL, auth on, users
made by the rendered users Job, artifacts proxied into a moto S3 server); and, behind the Flyte
gRPC route (h2c), a stand-in for FlyteAdmin's gRPC API (flyteidl's generated service, answering
the few calls tried here and recording what reached it; FlyteAdmin itself is not installable
here). The stack outputs come from a fake `pulumi` on PATH, shaped as the edge-lab render exports
them. The laptop addresses the gateway as `https://localhost:<port>` (the certificate names
localhost too): `localhost:*` is one of the Host patterns the rendered MLflow allows, standing
in for the gateway's own address. `naomi connect` writes the files, then the laptop runbook runs
as written: `naomi connect`, then its Ray and Flyte bash commands, its Ray Python block and its
MLflow Python block, each section in its own shell after sourcing the env file (at the same time:
they are independent, as three terminals would be).

Ray listens on every interface: the Ray tests need a loopback-only network namespace
(scripts/test.sh). One Ray head, one Traefik, one runbook run for the module; the platform is
the session's (shared with tests/test_mlflow_server.py and others).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.flyte import GRPC_API, GRPC_PORT, GRPC_SERVICE
from infra.ray import DASHBOARD_PORT
from naomi import connect
from naomi.paths import PROJECT_DIR
from naomi.render.engine import Evaluation
from naomi.render.tree import Rendered
from naomi.verify import gateway_routes
from tests.ray_env import stop_process_group
from tests.test_gateway_traefik import LocalGateway, free_port, gateway_objects, local_gateway

STACK = "edge-lab"
RUNBOOK = PROJECT_DIR / "docs" / "runbooks" / "laptop.md"
BIN = Path(sys.executable).parent
STAND_IN_VERSION = "stand-in-for-flyteadmin"
MLFLOW_BUCKET = "mlflow"  # infra.mlflow MlflowArgs.bucket's default, as edge-lab renders it
RAY_SERVICE = f"naomi-ray/ray-head-svc:{DASHBOARD_PORT}"
MLFLOW_SERVICE = "naomi-platform/mlflow:5000"
FLYTE_GRPC_SERVICE = f"naomi-platform/{GRPC_SERVICE}:{GRPC_PORT}"


# --- a stand-in for what has no local binary: FlyteAdmin ---------------------------------------


@dataclass
class StandInAdmin:
    """FlyteAdmin's gRPC service (flyteidl's generated servicer) on 127.0.0.1 without TLS (h2c, as
    flyte-binary serves it): answers GetVersion, ListProjects and registrations, records each
    call's method and metadata; every other method answers UNIMPLEMENTED (the servicer's default)."""

    calls: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    port: int = 0

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]

    @contextlib.contextmanager
    def running(self) -> Iterator[StandInAdmin]:
        import grpc
        from flyteidl.admin import launch_plan_pb2, project_pb2, task_pb2, version_pb2, workflow_pb2
        from flyteidl.service import admin_pb2_grpc

        record = self.calls

        class Admin(admin_pb2_grpc.AdminServiceServicer):  # type: ignore[misc]
            def _seen(self, method: str, request: Any, context: Any) -> None:
                record.append((method, {k: str(v) for k, v in context.invocation_metadata()}, request))

            def GetVersion(self, request: Any, context: Any) -> Any:
                self._seen("GetVersion", request, context)
                return version_pb2.GetVersionResponse(
                    control_plane_version=version_pb2.Version(Version=STAND_IN_VERSION)
                )

            def ListProjects(self, request: Any, context: Any) -> Any:
                self._seen("ListProjects", request, context)
                return project_pb2.Projects(projects=[project_pb2.Project(id="naomi", name="naomi")])

            def CreateTask(self, request: Any, context: Any) -> Any:
                self._seen("CreateTask", request, context)
                return task_pb2.TaskCreateResponse()

            def CreateWorkflow(self, request: Any, context: Any) -> Any:
                self._seen("CreateWorkflow", request, context)
                return workflow_pb2.WorkflowCreateResponse()

            def CreateLaunchPlan(self, request: Any, context: Any) -> Any:
                self._seen("CreateLaunchPlan", request, context)
                return launch_plan_pb2.LaunchPlanCreateResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        admin_pb2_grpc.add_AdminServiceServicer_to_server(Admin(), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield self
        finally:
            server.stop(grace=None)


# --- a real Ray head --------------------------------------------------------------------------


def _wait(ready: Any, process: subprocess.Popen[bytes], log: Path, what: str, seconds: float) -> None:
    """Poll `ready()` until true (bounded); fail with the log when the process exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)  # polling interval, bounded by the deadline
    raise TimeoutError(f"{what} not ready after {seconds:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without the AWS/MLflow/Ray settings a laptop would not have."""
    drop = ("AWS_", "MLFLOW_", "RAY_ADDRESS", "RAY_AUTH", "RAY_API_SERVER", "RAY_JOB", "FLYTE")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, **extra}


@contextlib.contextmanager
def ray_head(token: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """A Ray head with token auth (as KubeRay sets it: RAY_AUTH_MODE=token, RAY_AUTH_TOKEN) and the
    dashboard (job API) on 127.0.0.1; jobs run with this interpreter's environment."""
    import tempfile

    # Under /tmp itself: Ray's socket paths must stay under 108 characters.
    scratch = Path(tempfile.mkdtemp(prefix="ray-connect-", dir="/tmp"))
    dashboard = free_port()
    env = _clean_env(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
        RAY_USAGE_STATS_ENABLED="0",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(PROJECT_DIR),
    )
    argv = [
        str(BIN / "ray"),
        "start",
        "--head",
        f"--port={free_port()}",
        "--num-cpus=1",
        "--include-dashboard=true",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--temp-dir={scratch}",
        "--disable-usage-stats",
        "--block",
    ]
    log = scratch / "head.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield f"http://127.0.0.1:{dashboard}", process, log
    finally:
        stop_process_group(process)
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


# --- the laptop ----------------------------------------------------------------------------------


@dataclass
class Laptop:
    gateway: LocalGateway
    admin: StandInAdmin
    home: Path
    work: Path
    env: dict[str, str]  # the laptop's shell environment (before sourcing the env file)
    outputs: dict[str, Any]
    ray_token: str
    mlflow_login: tuple[str, str]
    s3: Any  # minio.Minio on the moto server behind MLflow
    connect_stdout: str

    @property
    def folder(self) -> Path:
        return self.home / ".naomi" / STACK

    @property
    def url(self) -> str:
        """The gateway as the laptop addresses it (the stack output's gateway stands for it)."""
        return f"https://localhost:{self.gateway.traefik.port}"

    def shell(self, script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """A bash session on the laptop running `script` (strict mode), in the work folder."""
        return subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + script],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.work,
            timeout=timeout,
            check=False,
        )


def stack_outputs(
    rendered: Rendered, gateway_url: str, gateway: LocalGateway, mlflow_admin: tuple[str, str], ray_token: str
) -> dict[str, Any]:
    """The render's stack outputs with the local gateway's address and real values for its secrets."""
    outputs: dict[str, Any] = yaml.safe_load(rendered.files["outputs.yaml"])
    rendered_base = connect.connection_from_outputs(
        STACK, {**outputs, "gatewayUsers": {"admin": "x"}, "rayAuthToken": "x"}
    ).gateway
    outputs = json.loads(json.dumps(outputs).replace(rendered_base, gateway_url))
    outputs.update(
        gatewayUsers=dict(gateway.passwords),
        gatewayCaCertificate=gateway.ca_pem,
        mlflowAdmin={"username": mlflow_admin[0], "password": mlflow_admin[1]},
        rayAuthToken=ray_token,
    )
    return outputs


def fake_pulumi(folder: Path, outputs: Mapping[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "pulumi"
    fake.write_text(
        f"#!/bin/sh\n[ \"$1 $2 $4\" = 'stack output {STACK}' ] || exit 3\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n"
    )
    fake.chmod(0o755)


def flyte_entry_point(folder: Path) -> Path:
    """A dist-info declaring pyproject's `flytekit.auth` entry points, as installing naomi makes
    one (the shared venv predates the declaration); flytekit finds plugins through importlib.metadata."""
    declared = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]["entry-points"]
    info = folder / "naomi_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: naomi-entry-points\nVersion: 0\n")
    lines = ["[flytekit.auth]", *(f"{name} = {target}" for name, target in declared["flytekit.auth"].items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return folder


TRAIN_MESSAGE = "train.py ran on the cluster"
TRAIN_PY = f"print({TRAIN_MESSAGE!r})\n"  # what the runbook's Ray example submits


@pytest.fixture(scope="module")
def laptop(
    renders: dict[str, Rendered],
    evaluations: dict[str, Evaluation],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Laptop]:
    from tests.ray_env import require_loopback_only_network

    require_loopback_only_network()
    for module in ("ray", "mlflow", "flytekit", "grpc", "moto"):
        pytest.importorskip(module)
    import requests

    from tests.platform_model import admin_login, shared_platform

    scratch = tmp_path_factory.mktemp("laptop")
    objects = gateway_objects(renders[STACK])
    ray_token = secrets.token_hex(20)  # 40 letters and digits, as infra/ray.py's RandomPassword
    with contextlib.ExitStack() as stack:
        ray_url, ray_process, ray_log = stack.enter_context(ray_head(ray_token))
        admin = stack.enter_context(StandInAdmin().running())
        platform = shared_platform(evaluations[STACK], tmp_path_factory.mktemp("platform"))
        assert platform.mlflow is not None
        _wait(
            lambda: (
                requests.get(
                    f"{ray_url}/api/jobs/", headers={"X-Ray-Authorization": f"Bearer {ray_token}"}, timeout=2
                ).status_code
                == 200
            ),
            ray_process,
            ray_log,
            "ray head",
            90,
        )
        gateway = stack.enter_context(
            local_gateway(
                objects,
                scratch / "traefik",
                routes=gateway_routes(objects),
                servers={
                    MLFLOW_SERVICE: f"http://127.0.0.1:{platform.mlflow.port}",
                    RAY_SERVICE: ray_url,
                    FLYTE_GRPC_SERVICE: f"http://127.0.0.1:{admin.port}",
                },
            )
        )
        gateway_url = f"https://localhost:{gateway.traefik.port}"
        mlflow_admin = admin_login(platform.cluster)
        outputs = stack_outputs(renders[STACK], gateway_url, gateway, mlflow_admin, ray_token)
        fake_pulumi(scratch / "bin", outputs)
        home, work = scratch / "home", scratch / "work"
        home.mkdir()
        work.mkdir()
        (work / "train.py").write_text(TRAIN_PY)
        env = _clean_env(
            HOME=str(home),
            PATH=f"{scratch / 'bin'}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONPATH=f"{PROJECT_DIR}{os.pathsep}{flyte_entry_point(scratch / 'entry-points')}",
            TMPDIR=str(scratch),
            RAY_USAGE_STATS_ENABLED="0",
            MLFLOW_DISABLE_TELEMETRY="true",
            COLUMNS="200",
        )
        written = subprocess.run(
            [str(BIN / "naomi"), "connect", "--stack", STACK],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=60,
            check=False,
        )
        assert written.returncode == 0, written.stderr
        yield Laptop(
            gateway,
            admin,
            home,
            work,
            env,
            outputs,
            ray_token,
            mlflow_admin,
            platform.s3.client,
            written.stdout,
        )


# --- the files -----------------------------------------------------------------------------------


def test_connect_writes_the_files_for_every_client_owner_only(laptop: Laptop) -> None:
    folder = laptop.folder
    assert laptop.connect_stdout == (
        f"wrote {folder}: ca.pem, env, flyte.yaml, gateway-password, ray_jobs.py "
        f"(gateway {laptop.url}, user admin)\n"
        f"next: . {folder / 'env'}  (then docs/runbooks/laptop.md)\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(connect.FILES)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == dict.fromkeys(connect.FILES, 0o600)
    assert (folder / "ca.pem").read_text() == laptop.gateway.ca_pem
    assert (folder / "gateway-password").read_text() == laptop.gateway.passwords["admin"] + "\n"


def test_the_flyte_config_is_what_flytekit_reads(laptop: Laptop) -> None:
    from flytekit.configuration import PlatformConfig

    config = PlatformConfig.auto(str(laptop.folder / "flyte.yaml"))
    assert (config.endpoint, config.insecure, config.ca_cert_file_path) == (
        f"localhost:{laptop.gateway.traefik.port}",
        False,
        str(laptop.folder / "ca.pem"),
    )
    assert (config.auth_mode, config.client_id, config.command) == (
        "naomi-gateway",
        "admin",
        ["cat", str(laptop.folder / "gateway-password")],
    )
    assert config.client_credentials_secret is None  # would force authType ClientSecret


# --- the laptop runbook, as written ---------------------------------------------------------------


def runbook_commands() -> list[str]:
    """The bash blocks of docs/runbooks/laptop.md, one command a line (as tests/test_docs.py reads them)."""
    text = RUNBOOK.read_text(encoding="utf-8")
    return [
        command
        for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
        for line in block.splitlines()
        if (command := re.sub(r"\s+#\s.*$", "", line).strip())
    ]


def runbook_python(section: str) -> str:
    """The Python block of the runbook's section `section` (its heading's text after the number)."""
    text = RUNBOOK.read_text(encoding="utf-8")
    body = re.split(rf"^## \d+\. {re.escape(section)}$", text, flags=re.MULTILINE)[1].split("\n## ")[0]
    (block,) = re.findall(r"```python\n(.*?)```", body, flags=re.DOTALL)
    return str(block)


@dataclass
class RunbookRun:
    commands: list[str]
    steps: dict[str, str]  # step -> what it printed (stdout and stderr)
    admin_calls: list[str]  # FlyteAdmin methods called during the run
    admin_metadata: list[dict[str, str]]


def _session(steps: dict[str, str]) -> str:
    """A bash script running `steps` (name -> shell code) in order, each after a `>>> name` line."""
    return "".join(f"echo {shlex.quote(f'>>> {name}')}\n{code}\n" for name, code in steps.items())


@pytest.fixture(scope="module")
def runbook(laptop: Laptop) -> RunbookRun:
    """The runbook as a person follows it: step 2 (`naomi connect`), then sections 4 to 6 each in
    its own shell (run at the same time: they are independent) after step 3 (sourcing the env
    file): the Ray and Flyte bash commands, the Ray Python block, the MLflow Python block."""
    commands = runbook_commands()
    connect_step, source, *bash = commands
    first = laptop.shell(_session({connect_step: connect_step}))
    assert first.returncode == 0, first.stderr[-4000:]
    sessions = {
        "bash": {command: command for command in bash},
        "ray": {"python: Ray jobs": f"python - <<'EOF'\n{runbook_python('Ray jobs')}EOF"},
        "mlflow": {"python: MLflow": f"python - <<'EOF'\n{runbook_python('MLflow')}EOF"},
    }
    before = len(laptop.admin.calls)
    with futures.ThreadPoolExecutor(max_workers=len(sessions)) as pool:  # one reader per session
        done = dict(
            zip(
                sessions,
                pool.map(lambda steps: laptop.shell(f"{source}\n" + _session(steps), 240), sessions.values()),
                strict=True,
            )
        )
    steps: dict[str, str] = {}
    for name, result in done.items():
        assert result.returncode == 0, f"{name}: {(result.stdout + result.stderr)[-4000:]}"
        printed = re.split(r"^>>> .*$", result.stdout, flags=re.MULTILINE)[1:]
        steps.update(zip(sessions[name], printed, strict=True))
    calls = laptop.admin.calls[before:]
    return RunbookRun(
        commands,
        steps,
        [method for method, _, _ in calls],
        [metadata for _, metadata, _ in calls],
    )


def test_the_runbook_has_the_steps_this_test_runs(runbook: RunbookRun) -> None:
    assert [c.split()[0] for c in runbook.commands] == ["naomi", ".", "ray", "pyflyte"]


def test_the_runbook_submits_a_ray_job_with_the_cli_through_the_gateway(runbook: RunbookRun) -> None:
    submit = runbook.steps[runbook.commands[2]]
    # The working dir uploaded, the job ran it, the CLI followed its logs to the end.
    assert TRAIN_MESSAGE in submit, submit
    assert re.search(r"Job 'raysubmit_\w+' succeeded", submit), submit


def test_the_runbook_submits_a_ray_job_from_python_with_ray_jobs_py(runbook: RunbookRun) -> None:
    printed = runbook.steps["python: Ray jobs"]
    # The log websocket (tail_job_logs) through the gateway, then the job's status.
    assert TRAIN_MESSAGE in printed, printed
    assert re.search(r"^raysubmit_\w+ SUCCEEDED$", printed, flags=re.MULTILINE), printed


def test_the_runbook_logs_an_mlflow_run_through_the_gateway(laptop: Laptop, runbook: RunbookRun) -> None:
    import requests

    printed = runbook.steps["python: MLflow"]
    (run_id,) = re.findall(r"^run (\w+)$", printed, flags=re.MULTILINE)
    answer = requests.get(
        f"{laptop.url}/mlflow/api/2.0/mlflow/runs/get",
        params={"run_id": run_id},
        auth=laptop.mlflow_login,
        verify=str(laptop.folder / "ca.pem"),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    run = answer.json()["run"]
    assert [(m["key"], m["value"]) for m in run["data"]["metrics"]] == [("loss", 0.5)]
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:/")  # proxied: no S3 on the laptop
    stored = [o.object_name for o in laptop.s3.list_objects(MLFLOW_BUCKET, recursive=True)]
    assert any(name.endswith(f"{run_id}/artifacts/notes.json") for name in stored), stored


def test_the_runbook_asks_flyteadmin_its_version_through_the_gateway(
    laptop: Laptop, runbook: RunbookRun
) -> None:
    info = runbook.steps[runbook.commands[3]]
    assert f"Flyte Backend Version: {STAND_IN_VERSION}" in info, info
    assert f"Flyte Backend Endpoint: localhost:{laptop.gateway.traefik.port}" in info, info
    # pyflyte's GetVersion reached the stand-in through the gateway, the gateway login removed.
    assert runbook.admin_calls == ["GetVersion"]
    assert "authorization" not in runbook.admin_metadata[0]


# --- Ray -----------------------------------------------------------------------------------------


def test_ray_needs_the_gateway_login_and_its_token(laptop: Laptop) -> None:
    import requests

    url = f"{laptop.url}/ray/api/jobs/"
    ca = str(laptop.folder / "ca.pem")
    login = {"Authorization": laptop.gateway.login()["Authorization"]}
    token = f"Bearer {laptop.ray_token}"

    def get(headers: dict[str, str]) -> tuple[int, str, str | None]:
        response = requests.get(url, headers=headers, verify=ca, timeout=10)
        return response.status_code, response.text, response.headers.get("WWW-Authenticate")

    gateway_refusal = (401, "401 Unauthorized\n", 'Basic realm="naomi"')
    assert get({}) == gateway_refusal
    # Ray's own default header is the gateway's: Ray's SDK alone cannot pass the gateway.
    assert get({"Authorization": token}) == gateway_refusal
    assert get(login) == (401, "Unauthorized: Missing authentication token", None)  # Ray
    assert get({**login, "X-Ray-Authorization": "Bearer not-the-token"}) == (
        403,
        "Forbidden: Invalid authentication token",
        None,
    )
    assert get({**login, "X-Ray-Authorization": token})[0] == 200
    # What ray_jobs.py sends is exactly these two.
    written = (laptop.folder / "ray_jobs.py").read_text()
    assert repr({**login, "X-Ray-Authorization": token}) in written


# --- MLflow --------------------------------------------------------------------------------------


def test_mlflow_refuses_the_laptop_without_its_password(laptop: Laptop) -> None:
    import requests

    url = f"{laptop.url}/mlflow/api/2.0/mlflow/experiments/search"
    ca = str(laptop.folder / "ca.pem")
    anonymous = requests.post(url, json={"max_results": 1}, verify=ca, timeout=10)
    # MLflow's own challenge, not the gateway's (its auth is off on /mlflow).
    assert (anonymous.status_code, anonymous.headers.get("WWW-Authenticate")) == (401, 'Basic realm="mlflow"')
    login = requests.post(url, json={"max_results": 1}, auth=laptop.mlflow_login, verify=ca, timeout=10)
    assert login.status_code == 200


# --- Flyte ---------------------------------------------------------------------------------------


def _flyte_endpoint(laptop: Laptop) -> tuple[str, Any]:
    import grpc

    credentials = grpc.ssl_channel_credentials((laptop.folder / "ca.pem").read_bytes())
    return f"127.0.0.1:{laptop.gateway.traefik.port}", credentials


def test_flyteremote_reaches_flyteadmin_grpc_with_the_gateway_login(laptop: Laptop) -> None:
    from flytekit.configuration import Config
    from flytekit.remote import FlyteRemote

    from naomi import flyte_auth

    flyte_auth.register()  # in a script; pyflyte finds the plugin through the entry point
    remote = FlyteRemote(
        Config.auto(str(laptop.folder / "flyte.yaml")), default_project="naomi", default_domain="production"
    )
    before = len(laptop.admin.calls)
    assert [p.id for p in remote.client.list_projects().projects] == ["naomi"]
    assert laptop.admin.methods()[before:] == ["ListProjects"]
    metadata = laptop.admin.calls[-1][1]
    assert "authorization" not in metadata  # checked and removed by the gateway
    assert metadata["x-forwarded-proto"] == "https"


def test_flyteadmin_grpc_refuses_calls_without_the_gateway_login(laptop: Laptop) -> None:
    import grpc
    from flyteidl.admin import project_pb2
    from flyteidl.service import admin_pb2_grpc

    endpoint, credentials = _flyte_endpoint(laptop)
    before = len(laptop.admin.calls)
    wrong = "Basic " + base64.b64encode(b"admin:not-the-password").decode()
    token = "Bearer " + laptop.gateway.passwords["admin"]  # what stock flytekit would send
    with grpc.secure_channel(endpoint, credentials) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        for metadata in ((), (("authorization", wrong),), (("authorization", token),)):
            with pytest.raises(grpc.RpcError) as refused:
                stub.ListProjects(project_pb2.ProjectListRequest(), metadata=metadata, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
        login = "Basic " + base64.b64encode(f"admin:{laptop.gateway.passwords['admin']}".encode()).decode()
        answer, call = stub.ListProjects.with_call(
            project_pb2.ProjectListRequest(), metadata=(("authorization", login),), timeout=10
        )
    assert [p.id for p in answer.projects] == ["naomi"]
    # The gateway's security headers travel on gRPC answers too.
    assert dict(call.initial_metadata())["strict-transport-security"] == "max-age=31536000"
    assert laptop.admin.methods()[before:] == ["ListProjects"]


def test_pyflyte_registers_without_upload_through_the_gateway(laptop: Laptop) -> None:
    (laptop.work / "laptop_wf.py").write_text(
        "from flytekit import task, workflow\n\n\n"
        "@task\ndef double(x: int) -> int:\n    return 2 * x\n\n\n"
        "@workflow\ndef twice(x: int = 1) -> int:\n    return double(x=double(x=x))\n"
    )
    before = len(laptop.admin.calls)
    done = laptop.shell(
        f". ~/.naomi/{STACK}/env\npyflyte register --copy none --version v1 --image registry.local/laptop:1 "
        "--project naomi --domain production laptop_wf.py",
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    registered = laptop.admin.calls[before:]
    assert [method for method, _, _ in registered] == ["CreateTask", "CreateWorkflow", "CreateLaunchPlan"]
    task = registered[0][2]
    assert (task.id.project, task.id.domain, task.id.name, task.id.version) == (
        "naomi",
        "production",
        "laptop_wf.double",
        "v1",
    )
    assert task.spec.template.container.image == "registry.local/laptop:1"
    assert all("authorization" not in metadata for _, metadata, _ in registered)


# --- the refusals: one line, exit code 2, nothing written ---------------------------------------


def _connect(
    tmp_path: Path, outputs: Mapping[str, Any] | None, *args: str
) -> subprocess.CompletedProcess[str]:
    path = os.environ.get("PATH", "")
    if outputs is not None:
        fake_pulumi(tmp_path / "bin", outputs)
        path = f"{tmp_path / 'bin'}{os.pathsep}{path}"
    else:
        path = str(tmp_path / "empty")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "naomi.cli",
            "connect",
            "--stack",
            STACK,
            "--out",
            str(tmp_path / "out"),
            *args,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, "COLUMNS": "200"},
        cwd=PROJECT_DIR,
        timeout=60,
        check=False,
    )


def _refused(result: subprocess.CompletedProcess[str], tmp_path: Path) -> str:
    assert (result.returncode, result.stdout) == (2, "")
    assert not (tmp_path / "out").exists()
    return result.stderr


BASE = {
    "urls": {
        "mlflow": "https://192.168.50.10:30443/mlflow/",
        "rayDashboard": "https://192.168.50.10:30443/ray/",
    },
    "gatewayUsers": {"admin": "pw"},
    "rayAuthToken": "tok",
}


def test_without_the_pulumi_cli_it_says_what_it_reads(tmp_path: Path) -> None:
    assert _refused(_connect(tmp_path, None), tmp_path) == (
        "error: pulumi CLI not found; naomi connect reads: pulumi stack output --stack edge-lab --show-secrets --json\n"
    )


def test_a_stack_without_gateway_users_or_that_user_is_refused(tmp_path: Path) -> None:
    assert _refused(_connect(tmp_path, {**BASE, "gatewayUsers": {}}), tmp_path) == (
        "error: the outputs of edge-lab have no gatewayUsers (is the platform layer deployed?)\n"
    )
    assert _refused(_connect(tmp_path, BASE, "--user", "bob"), tmp_path) == (
        "error: --user bob: not a gateway user of edge-lab (users: admin)\n"
    )


def test_a_stack_running_ray_without_its_token_output_is_refused(tmp_path: Path) -> None:
    outputs = {key: value for key, value in BASE.items() if key != "rayAuthToken"}
    assert _refused(_connect(tmp_path, outputs), tmp_path) == (
        "error: the outputs of edge-lab have no rayAuthToken "
        "(deployed before the stack made Ray's token? pulumi up)\n"
    )


def test_an_out_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    result = _connect(tmp_path, BASE)
    assert (result.returncode, result.stderr) == (2, f"error: --out: not a folder: {tmp_path / 'out'}\n")
    assert (tmp_path / "out").read_text() == "mine"


# --- pure pieces ---------------------------------------------------------------------------------


def test_a_stack_without_ray_flyte_mlflow_or_ca_gets_only_what_it_has(tmp_path: Path) -> None:
    outputs = {"urls": {"grafana": "https://gw.example:30443/grafana/"}, "gatewayUsers": {"ops": "pw"}}
    connection = connect.connection_from_outputs(STACK, outputs)
    files = connect.client_files(connection, tmp_path)
    assert sorted(files) == ["env", "gateway-password"]
    assert files["env"] == (
        f"# naomi connect edge-lab: source this file in bash or zsh: . {tmp_path / 'env'}\n"
        "export NAOMI_GATEWAY=https://gw.example:30443\n"
        "export NAOMI_CA=true\n"
    )
    connect.write_client_files(files, tmp_path / "out")
    (tmp_path / "out" / "ray_jobs.py").write_text("stale")  # from when the stack ran Ray
    connect.write_client_files(files, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["env", "gateway-password"]


def test_ray_headers_carry_the_gateway_login_and_the_token() -> None:
    connection = connect.Connection(
        stack=STACK,
        gateway="https://192.168.50.10:30443",
        user="admin",
        password="pw",
        ca_pem="",
        ray_token="tok",
        mlflow=None,
        flyte=False,
    )
    assert connection.ray_headers() == {
        "Authorization": "Basic " + base64.b64encode(b"admin:pw").decode(),
        "X-Ray-Authorization": "Bearer tok",
    }


def test_what_connect_reads_is_what_the_stack_renders(renders: dict[str, Rendered]) -> None:
    """The outputs and the RayCluster connect relies on, as the edge-lab render has them."""
    outputs = yaml.safe_load(renders[STACK].files["outputs.yaml"])
    assert {
        "gatewayUsers",
        "gatewayCaCertificate",
        "mlflowTrackingUri",
        "mlflowAdmin",
        "rayAuthToken",
    } <= set(outputs)
    assert {"rayDashboard", "flyteConsole"} <= set(outputs["urls"])
    # Token auth on, with the Secret the stack makes (whose token infra/ray.py exports as rayAuthToken).
    (cluster,) = [o for o in renders[STACK].kubernetes if o["kind"] == "RayCluster"]
    auth = cluster["spec"]["authOptions"]
    assert auth["mode"] == "token"
    (token_secret,) = [
        o
        for o in renders[STACK].kubernetes
        if o["kind"] == "Secret"
        and (o["metadata"]["namespace"], o["metadata"]["name"])
        == (cluster["metadata"]["namespace"], auth["secretName"])
    ]
    assert set(token_secret["stringData"]) == {"auth_token"}
    grpc = next(
        o
        for o in renders[STACK].kubernetes
        if o["kind"] == "IngressRoute" and o["metadata"]["name"] == "flyte-grpc"
    )
    (rule,) = grpc["spec"]["routes"]
    assert rule["services"] == [
        {"name": GRPC_SERVICE, "namespace": "naomi-platform", "port": GRPC_PORT, "scheme": "h2c"}
    ]
    assert [m["name"] for m in rule["middlewares"]] == ["security-headers", "basic-auth"]
    assert rule["match"] == " || ".join(
        f"Path(`/flyteidl.service.{s}`) || PathPrefix(`/flyteidl.service.{s}/`)" for s in GRPC_API
    )


def test_the_flyte_plugin_sends_basic_auth_from_its_command(tmp_path: Path) -> None:
    pytest.importorskip("flytekit")
    from flytekit.clients.auth_helper import get_authenticator
    from flytekit.configuration import PlatformConfig

    from naomi import flyte_auth

    flyte_auth.register()
    (tmp_path / "pw").write_text("s3cret\n")
    config = PlatformConfig(
        endpoint="gw:1", auth_mode="naomi-gateway", client_id="admin", command=["cat", str(tmp_path / "pw")]
    )
    authenticator = get_authenticator(config, None)
    assert authenticator.fetch_grpc_call_auth_metadata() == (
        "authorization",
        "Basic " + base64.b64encode(b"admin:s3cret").decode(),
    )
    broken = PlatformConfig(endpoint="gw:1", auth_mode="naomi-gateway", client_id="admin", command=["false"])
    with pytest.raises(RuntimeError, match=r"admin\.command 'false' did not print the gateway password"):
        get_authenticator(broken, None).fetch_grpc_call_auth_metadata()
    with pytest.raises(
        RuntimeError, match=r"admin.clientId must name the gateway user \(authType naomi-gateway\)"
    ):
        get_authenticator(PlatformConfig(endpoint="gw:1", auth_mode="naomi-gateway"), None)
