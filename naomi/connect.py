"""`naomi connect`: the client configuration for working on a deployed stack from a laptop.

Everything goes through the one gateway (TLS with the stack's CA, basic auth), so this module
owns how each client carries two logins through it:

- Ray job submission (the dashboard's job API at `/ray`). Ray 2.60 checks its token in the
  `Authorization` header and, when that is absent, in `X-Ray-Authorization` ("for proxies and
  KubeRay": ray 2.60.0 `ray/_private/authentication/http_token_authentication.py`,
  `authentication_constants.py`); KubeRay sends it there too (ray-project/kuberay v1.7.0
  `ray-operator/controllers/ray/utils/dashboardclient/dashboard_httpclient.go`). The gateway's
  basic auth reads `Authorization: Basic` only and removes the header (`removeHeader: true`), so a
  client sends `Authorization: Basic <gateway login>` plus `X-Ray-Authorization: Bearer <token>`:
  Traefik checks and drops the first, Ray reads the second. Ray's SDK adds its own bearer
  `Authorization` only when the caller gave none (`get_auth_headers_if_auth_enabled`), which would
  collide with the gateway's. The token is the stack output `rayAuthToken` (the stack generates
  it and gives KubeRay its Secret: infra/ray.py).
- Flyte (FlyteAdmin's gRPC API at `/flyteidl.service.*`): flytekit sends only bearer tokens, so
  the Flyte config names the `naomi-gateway` auth plugin (`naomi.flyte_auth`), which sends the
  gateway login as `Authorization: Basic`; FlyteAdmin itself runs without auth behind it.
- MLflow (`/mlflow`, MLflow's own basic auth; the gateway's is off there): the standard
  `MLFLOW_TRACKING_*` variables, with the gateway CA as the server certificate to trust.

`client_files` is a pure function from a `Connection` to the files' contents; the CLI reads the
stack outputs (`pulumi stack output --show-secrets --json`) and writes them.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FLYTE_AUTH_PLUGIN = "naomi-gateway"  # naomi.flyte_auth, entry point group `flytekit.auth`
FILES = ("ca.pem", "env", "flyte.yaml", "gateway-password", "ray_jobs.py")  # every file it may write


class ConnectError(RuntimeError):
    """A one-line reason `naomi connect` cannot write the files (exit code 2)."""


@dataclass(frozen=True, kw_only=True)
class MlflowLogin:
    uri: str
    username: str
    password: str


@dataclass(frozen=True, kw_only=True)
class Connection:
    """What a laptop needs to reach one stack through its gateway."""

    stack: str
    gateway: str  # https://host:port
    user: str
    password: str
    ca_pem: str  # "" when the gateway's certificate is signed by a CA the system trusts
    ray_token: str | None  # None: the stack runs no Ray
    mlflow: MlflowLogin | None
    flyte: bool

    @property
    def host_port(self) -> str:
        return urllib.parse.urlsplit(self.gateway).netloc

    def basic_auth(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def ray_headers(self) -> dict[str, str]:
        """The gateway's login for Traefik (removed there) and Ray's token for the dashboard."""
        assert self.ray_token is not None
        return {"Authorization": self.basic_auth(), "X-Ray-Authorization": f"Bearer {self.ray_token}"}


def read_stack_outputs(
    stack: str, project_dir: Path, run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> dict[str, Any]:
    """`pulumi stack output --stack X --show-secrets --json` (naomi.verify's reader), as ConnectError."""
    from naomi import verify

    return verify.read_stack_outputs(stack, project_dir, run, reader="naomi connect", error=ConnectError)


def runs_ray(outputs: Mapping[str, Any]) -> bool:
    return "rayDashboard" in (outputs.get("urls") or {})


def gateway_login(outputs: Mapping[str, Any], stack: str, user: str | None) -> tuple[str, str]:
    users = outputs.get("gatewayUsers") or {}
    if not isinstance(users, dict) or not users:
        raise ConnectError(f"the outputs of {stack} have no gatewayUsers (is the platform layer deployed?)")
    chosen = user if user is not None else sorted(users)[0]
    if chosen not in users:
        raise ConnectError(
            f"--user {chosen}: not a gateway user of {stack} (users: {', '.join(sorted(users))})"
        )
    return chosen, str(users[chosen])


def connection_from_outputs(
    stack: str,
    outputs: Mapping[str, Any],
    *,
    user: str | None = None,
) -> Connection:
    """The connection the stack outputs describe."""
    from naomi.verify import VerifyError, gateway_base_url

    try:
        gateway = gateway_base_url(outputs)
    except VerifyError as error:
        raise ConnectError(str(error)) from None
    if not gateway.startswith("https://"):
        raise ConnectError(f"the gateway URL {gateway} is not HTTPS")
    name, password = gateway_login(outputs, stack, user)
    ray_token = None
    if runs_ray(outputs):
        ray_token = str(outputs.get("rayAuthToken") or "")
        if not ray_token:
            raise ConnectError(
                f"the outputs of {stack} have no rayAuthToken (deployed before the stack made Ray's token? pulumi up)"
            )
    mlflow = None
    admin = outputs.get("mlflowAdmin")
    if outputs.get("mlflowTrackingUri") and isinstance(admin, dict):
        mlflow = MlflowLogin(
            uri=str(outputs["mlflowTrackingUri"]),
            username=str(admin.get("username") or ""),
            password=str(admin.get("password") or ""),
        )
    return Connection(
        stack=stack,
        gateway=gateway,
        user=name,
        password=password,
        ca_pem=str(outputs.get("gatewayCaCertificate") or ""),
        ray_token=ray_token,
        mlflow=mlflow,
        flyte="flyteConsole" in (outputs.get("urls") or {}),
    )


def client_files(connection: Connection, folder: Path) -> dict[str, str]:
    """File name -> content for `folder` (absolute: the files name each other by path)."""
    ca = folder / "ca.pem" if connection.ca_pem else None
    files = {"gateway-password": connection.password + "\n"}
    if ca is not None:
        files["ca.pem"] = connection.ca_pem if connection.ca_pem.endswith("\n") else connection.ca_pem + "\n"
    if connection.flyte:
        files["flyte.yaml"] = _flyte_config(connection, folder, ca)
    if connection.ray_token is not None:
        files["ray_jobs.py"] = _ray_snippet(connection, ca)
    files["env"] = _env_file(connection, folder, ca)
    return dict(sorted(files.items()))


def _flyte_config(connection: Connection, folder: Path, ca: Path | None) -> str:
    # flytekit 1.16.31 reads these keys (flytekit/configuration/internal.py Platform, Credentials);
    # `dns:///` is stripped from the endpoint, `command` prints the gateway password.
    admin: dict[str, Any] = {"endpoint": f"dns:///{connection.host_port}", "insecure": False}
    if ca is not None:
        admin["caCertFilePath"] = str(ca)
    admin.update(
        authType=FLYTE_AUTH_PLUGIN,
        clientId=connection.user,
        command=["cat", str(folder / "gateway-password")],
    )
    header = (
        f"# naomi connect {connection.stack}: FlyteAdmin through the gateway "
        f"(pyflyte --config <this file>, or FLYTECTL_CONFIG).\n"
        f"# authType {FLYTE_AUTH_PLUGIN}: the gateway login as basic auth (naomi.flyte_auth).\n"
    )
    body = {"admin": admin, "console": {"endpoint": connection.gateway}}
    return header + yaml.safe_dump(body, sort_keys=False)


def _ray_snippet(connection: Connection, ca: Path | None) -> str:
    verify: str | bool = str(ca) if ca is not None else True
    return (
        f'"""Ray job submission on {connection.stack} through the naomi gateway (written by naomi connect).\n'
        "\n"
        "    from ray_jobs import job_client  # this folder on sys.path\n"
        "\n"
        '    job = job_client().submit_job(entrypoint="python train.py", runtime_env={"working_dir": "."})\n'
        '"""\n'
        "\n"
        "from ray.job_submission import JobSubmissionClient\n"
        "\n"
        f"ADDRESS = {connection.gateway + '/ray'!r}\n"
        f"VERIFY = {verify!r}  # the gateway's CA file (or the system's trust store)\n"
        "# Authorization: the gateway's login (checked and removed by the gateway);\n"
        "# X-Ray-Authorization: Ray's token, which the dashboard reads when Authorization is absent.\n"
        f"HEADERS = {connection.ray_headers()!r}\n"
        "\n"
        "\n"
        "def job_client() -> JobSubmissionClient:\n"
        "    return JobSubmissionClient(ADDRESS, headers=dict(HEADERS), verify=VERIFY)\n"
    )


def _env_file(connection: Connection, folder: Path, ca: Path | None) -> str:
    lines = [
        f"# naomi connect {connection.stack}: source this file in bash or zsh: . {shlex.quote(str(folder / 'env'))}",
        f"export NAOMI_GATEWAY={shlex.quote(connection.gateway)}",
        # `--verify "$NAOMI_CA"` for the ray CLI; `true` lets it use the system's trust store.
        f"export NAOMI_CA={shlex.quote(str(ca) if ca is not None else 'true')}",
    ]
    if connection.mlflow is not None:
        lines += [
            "# MLflow: its own login (the gateway's is off on /mlflow)",
            f"export MLFLOW_TRACKING_URI={shlex.quote(connection.mlflow.uri)}",
            f"export MLFLOW_TRACKING_USERNAME={shlex.quote(connection.mlflow.username)}",
            f"export MLFLOW_TRACKING_PASSWORD={shlex.quote(connection.mlflow.password)}",
        ]
        if ca is not None:
            lines.append(f"export MLFLOW_TRACKING_SERVER_CERT_PATH={shlex.quote(str(ca))}")
    if connection.ray_token is not None:
        lines += [
            '# Ray job CLI: ray job submit --verify "$NAOMI_CA" -- python script.py',
            f"export RAY_API_SERVER_ADDRESS={shlex.quote(connection.gateway + '/ray')}",
            f"export RAY_JOB_HEADERS={shlex.quote(json.dumps(connection.ray_headers()))}",
        ]
    if connection.flyte:
        lines += [
            "# pyflyte and FlyteRemote (Config.auto()) read this config",
            f"export FLYTECTL_CONFIG={shlex.quote(str(folder / 'flyte.yaml'))}",
        ]
    return "\n".join(lines) + "\n"


def write_client_files(files: Mapping[str, str], folder: Path) -> None:
    """Write `files` into `folder` (created 0700), each readable by its owner only: they hold
    the gateway password, MLflow's admin password and Ray's token."""
    if folder.exists() and not folder.is_dir():
        raise ConnectError(f"--out: not a folder: {folder}")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in sorted(set(FILES) - set(files)):  # e.g. ray_jobs.py of a stack that dropped Ray
        (folder / stale).unlink(missing_ok=True)
    for name, text in files.items():
        path = folder / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        path.chmod(0o600)  # an existing file keeps its old mode through os.open
