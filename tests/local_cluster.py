"""Run a render's Jobs, CronJobs and servers on this machine, as the cluster would run them.

A `LocalCluster` holds one render (an evaluation of the real stack program) and runs its
containers as rendered: environment, command line and `$(VAR)` expansion as the kubelet builds them
(`naomi.cluster.startup`), Secrets and ConfigMaps of the render mounted as files, emptyDirs as
scratch folders shared by the containers of one pod, init containers first. What it substitutes,
and nothing else:
- generated values: every `pulumi_random` result becomes a concrete string derived from the
  resource's name, its `keepers` and a salt (`GeneratedValues`), which is what the provider does
  (same inputs, same state; a keepers change replaces the value);
- cluster Services: `<service>.<namespace>.svc.cluster.local[:port]` becomes a loopback endpoint
  the test started (PGHOST also gets the PGPORT of the local server);
- programs: `python` is this interpreter, `mlflow` this environment's, PostgreSQL's client
  binaries are Debian's 15 (the image's are 17); servers listen on 127.0.0.1 only.

`rollout(before, after)` is how `pulumi up` and the controllers treat a second render: a Job whose
name or spec changed is a new Job and runs; a Deployment/StatefulSet whose pod template changed
restarts its pods; a Secret is updated in place, and a running container keeps the environment it
was started with (the kubelet resolves `secretKeyRef` once, when it creates the container).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naomi.cluster.startup import command_line, environment, rewrite_paths
from naomi.render.engine import Evaluation, evaluate, load_stack_file, stack_program
from naomi.render.tree import render
from tests.postgres_server import BIN as POSTGRES_BIN
from tests.postgres_server import PostgresServer

PROJECT = Path(__file__).resolve().parent.parent
RANDOM_TYPES = ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString")
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_SERVICE = re.compile(r"\b([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local(?::(\d+))?")


def evaluate_stack_with(stack: str, extra: Mapping[str, Any] | None = None) -> Evaluation:
    """The stack's render with extra `naomi:` keys (e.g. `credentials`) set on top of its file."""
    config, secret_keys = load_stack_file(PROJECT / "stacks" / f"Pulumi.{stack}.yaml")
    for key, value in (extra or {}).items():
        config[f"naomi:{key}"] = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return evaluate(stack_program(PROJECT), stack, config, secret_keys)


def _rewrite_script(script: str, mounts: Mapping[str, str]) -> str:
    """Mount paths inside a shell script (followed by `/`, a space, a quote or the end) -> folders."""
    if not mounts:
        return script
    ordered = sorted(mounts, key=len, reverse=True)
    pattern = re.compile("|".join(f"{re.escape(m.rstrip('/'))}(?=[/\\s\"';]|$)" for m in ordered))
    local = {m.rstrip("/"): mounts[m].rstrip("/") for m in ordered}
    return pattern.sub(lambda match: local[match.group(0)], script)


class GeneratedValues:
    """Concrete values for `<secret:NAME:result>` placeholders, as the random provider keeps them."""

    def __init__(self, evaluation: Evaluation, salt: str) -> None:
        self.salt = salt
        self.values: dict[str, str] = {}
        for record in evaluation.records:
            if record.type not in RANDOM_TYPES:
                continue
            length = int(record.inputs.get("length", 32))
            keepers = json.dumps(record.inputs.get("keepers") or {}, sort_keys=True)
            seed = hashlib.sha256(f"{salt}\0{record.name}\0{keepers}".encode()).digest()
            lower = record.type.endswith("RandomString") and record.inputs.get("upper") is False
            alphabet = "abcdefghijklmnopqrstuvwxyz0123456789" if lower else _ALPHABET
            stream = hashlib.shake_256(seed).digest(length)
            self.values[f"<secret:{record.name}:result>"] = "".join(
                alphabet[b % len(alphabet)] for b in stream
            )

    def next_render(self, evaluation: Evaluation) -> GeneratedValues:
        """The values after an `up` with `evaluation`: kept where inputs are the same, new where
        `keepers` changed (the provider's replacement)."""
        return GeneratedValues(evaluation, self.salt)

    def resolve(self, text: str) -> str:
        return re.sub(r"<secret:[^<>:]+:result>", lambda m: self.values.get(m.group(0), m.group(0)), text)

    def of(self, resource_name: str) -> str:
        return self.values[f"<secret:{resource_name}:result>"]


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass
class ContainerRun:
    name: str
    returncode: int
    output: str


@dataclass
class PodRun:
    containers: list[ContainerRun] = field(default_factory=list)

    def logs(self, container: str) -> str:
        return next(c.output for c in self.containers if c.name == container)

    @property
    def succeeded(self) -> bool:
        return bool(self.containers) and all(c.returncode == 0 for c in self.containers)


class JobFailed(AssertionError):
    pass


class LocalCluster:
    def __init__(
        self,
        objects: list[dict[str, Any]],
        values: GeneratedValues,
        workdir: Path,
        services: Mapping[str, Endpoint] | None = None,
    ) -> None:
        self.objects = objects
        self.values = values
        self.workdir = workdir
        self.services: dict[str, Endpoint] = dict(services or {})
        self._pods = 0

    # --- the render ----------------------------------------------------------------------------

    @classmethod
    def of(
        cls, evaluation: Evaluation, values: GeneratedValues, workdir: Path, **kwargs: Any
    ) -> LocalCluster:
        return cls(render(evaluation).kubernetes, values, workdir, **kwargs)

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            metadata = obj.get("metadata") or {}
            if (
                obj["kind"] == kind
                and metadata.get("namespace") == namespace
                and metadata.get("name") == name
            ):
                return obj
        raise KeyError(f"{kind} {namespace}/{name} not in the render")

    def named(self, kind: str, namespace: str, prefix: str) -> dict[str, Any]:
        """The one object of `kind` whose name starts with `prefix` (hash-named Jobs)."""
        found = [
            o
            for o in self.objects
            if o["kind"] == kind
            and o["metadata"].get("namespace") == namespace
            and o["metadata"]["name"].startswith(prefix)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} {kind} objects named {prefix}* in {namespace}")
        return found[0]

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        secret = self.find("Secret", namespace, name)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
        return {k: self.values.resolve(v) for k, v in data.items()}

    def secret(self, namespace: str, name: str, key: str) -> str:
        return self.secret_data(namespace, name)[key]

    def _resolver(self, kind: str, namespace: str) -> Any:
        def resolve(name: str, key: str) -> str | None:
            try:
                data = (
                    self.secret_data(namespace, name)
                    if kind == "Secret"
                    else {k: str(v) for k, v in (self.find(kind, namespace, name).get("data") or {}).items()}
                )
            except KeyError:
                return None
            return "\0".join(data) if key == "*" else data.get(key)

        return resolve

    # --- substitutions -------------------------------------------------------------------------

    def local(self, value: str) -> str:
        """Generated values filled in, cluster Services replaced by the local endpoints."""

        def service(match: re.Match[str]) -> str:
            endpoint = self.services.get(f"{match.group(1)}.{match.group(2)}")
            if endpoint is None:
                return match.group(0)
            return f"{endpoint.host}:{endpoint.port}" if match.group(3) else endpoint.host

        return _SERVICE.sub(service, self.values.resolve(value))

    # --- running containers --------------------------------------------------------------------

    def prepare(
        self,
        namespace: str,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        scratch: Path,
        volume_paths: Mapping[str, Path] | None = None,
    ) -> tuple[list[str], dict[str, str]]:
        """The container's argv and environment here, with its volumes as folders under `scratch`
        (or where `volume_paths` says, e.g. the local server's socket folder)."""
        raw = environment(
            container,
            secret=self._resolver("Secret", namespace),
            config_map=self._resolver("ConfigMap", namespace),
        )
        env = {key: self.local(value) for key, value in raw.items()}
        if "PGHOST" in raw:
            endpoint = self.services.get(".".join(raw["PGHOST"].split(".")[:2]))
            if endpoint is not None:
                env["PGPORT"] = str(endpoint.port)  # the Service's 5432 is the local server's port
        mounts: dict[str, str] = {}
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        for mount in container.get("volumeMounts") or []:
            folder = Path((volume_paths or {}).get(mount["name"], scratch / mount["name"]))
            folder.mkdir(parents=True, exist_ok=True)
            volume = volumes.get(mount["name"])
            if volume is not None and "secret" in volume:
                for key, value in self.secret_data(namespace, volume["secret"]["secretName"]).items():
                    (folder / key).write_text(self.local(value))
            elif volume is not None and "configMap" in volume:
                config_map = self.find("ConfigMap", namespace, volume["configMap"]["name"])
                for key, value in (config_map.get("data") or {}).items():
                    (folder / key).write_text(str(value))
            mounts[mount["mountPath"]] = str(folder)
        env = dict(zip(env, rewrite_paths(list(env.values()), mounts), strict=True))
        words = [self.local(word) for word in command_line(container, env)]
        argv = rewrite_paths(words, mounts)
        if words[:2] in (["/bin/sh", "-c"], ["sh", "-c"], ["/bin/bash", "-c"]) and len(words) > 2:
            argv[2] = _rewrite_script(words[2], mounts)  # also paths followed by a space or a quote
        programs = {"python": sys.executable, "mlflow": str(Path(sys.executable).parent / "mlflow")}
        if argv:  # empty: the image's entrypoint (a server this module starts itself)
            argv[0] = programs.get(argv[0], argv[0])
        env["PATH"] = f"{POSTGRES_BIN}:{Path(sys.executable).parent}:/usr/bin:/bin"
        env.setdefault("HOME", str(scratch))
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        return argv, env

    def run_pod(
        self, namespace: str, pod: Mapping[str, Any], overrides: Mapping[str, Mapping[str, str]] | None = None
    ) -> PodRun:
        """Init containers, then containers, one after another (what a Job's pod does here)."""
        self._pods += 1
        scratch = self.workdir / f"pod-{self._pods}"
        scratch.mkdir(parents=True)
        run = PodRun()
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            argv, env = self.prepare(namespace, pod, container, scratch)
            env.update((overrides or {}).get(container["name"], {}))
            result = subprocess.run(argv, env=env, cwd=scratch, capture_output=True, text=True, timeout=900)
            run.containers.append(
                ContainerRun(container["name"], result.returncode, result.stdout + result.stderr)
            )
            if result.returncode != 0:
                break
        return run

    def run_job(
        self, job: Mapping[str, Any], overrides: Mapping[str, Mapping[str, str]] | None = None
    ) -> PodRun:
        run = self.run_pod(job["metadata"]["namespace"], job["spec"]["template"]["spec"], overrides)
        if not run.succeeded:
            failed = run.containers[-1]
            raise JobFailed(f"Job {job['metadata']['name']} container {failed.name}: {failed.output[-3000:]}")
        return run

    def job_from_cronjob(self, namespace: str, name: str, job_name: str) -> dict[str, Any]:
        """`kubectl create job --from=cronjob/<name> <job_name>`: the CronJob's jobTemplate as a Job."""
        cronjob = self.find("CronJob", namespace, name)
        template = cronjob["spec"]["jobTemplate"]
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": job_name, "namespace": namespace},
            "spec": json.loads(json.dumps(template["spec"])),
        }

    def start(
        self,
        namespace: str,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        scratch: Path,
        argv_edit: Any = None,
    ) -> subprocess.Popen[bytes]:
        """A long-running container as a process group of its own (stopped with `stop`)."""
        argv, env = self.prepare(namespace, pod, container, scratch)
        if argv_edit is not None:
            argv = argv_edit(argv)
        log = (scratch / f"{container['name']}.log").open("ab")
        process = subprocess.Popen(
            argv, env=env, cwd=scratch, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return process


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a server started with `LocalCluster.start`, with every process it spawned."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent (uvicorn workers)
        os.killpg(process.pid, signal.SIGKILL)


@dataclass(frozen=True)
class Rollout:
    """What a second `pulumi up` with render `after` does to a cluster running render `before`."""

    new_jobs: list[str]
    restarted: list[tuple[str, str]]  # (kind, name) whose pod template changed
    changed_secrets: list[str]


def _by_identity(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}


def rollout(before: LocalCluster, after: LocalCluster) -> Rollout:
    old, new = _by_identity(before.objects), _by_identity(after.objects)
    jobs = sorted(
        name for (kind, _, name), obj in new.items() if kind == "Job" and old.get((kind, _, name)) != obj
    )
    restarted = sorted(
        (kind, name)
        for (kind, namespace, name), obj in new.items()
        if kind in ("Deployment", "StatefulSet")
        and (kind, namespace, name) in old
        and old[(kind, namespace, name)]["spec"]["template"] != obj["spec"]["template"]
    )
    secrets = sorted(
        f"{namespace}/{name}"
        for (kind, namespace, name) in new
        if kind == "Secret"
        and (kind, namespace, name) in old
        and before.secret_data(namespace, name) != after.secret_data(namespace, name)
    )
    return Rollout(new_jobs=jobs, restarted=restarted, changed_secrets=secrets)


def iter_jobs(cluster: LocalCluster, namespace: str, names: list[str]) -> Iterator[dict[str, Any]]:
    for name in names:
        yield cluster.find("Job", namespace, name)


def wait_for(
    check: Any,
    what: str,
    seconds: float = 180,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `check()` until it is true (a server coming up), or fail naming `what`."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited: {log.read_text()[-3000:] if log else ''}")
        try:
            if check():
                return
        except Exception:  # refused or reset while the server starts
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what}: not ready after {seconds:.0f} s: {log.read_text()[-3000:] if log else ''}")


class PostgresPod:
    """The postgres StatefulSet's pod: Debian's server keeps the data; the rendered postStart hook
    runs after each start, with the rendered container's environment."""

    def __init__(
        self,
        cluster: LocalCluster,
        namespace: str = "naomi-platform",
        name: str = "postgres",
        server: PostgresServer | None = None,
    ) -> None:
        from tests.postgres_server import start

        self.namespace, self.name = namespace, name
        pod, container = self._container(cluster)
        _, env = cluster.prepare(namespace, pod, container, cluster.workdir / "postgres-env")
        # The image's first start: initdb with POSTGRES_PASSWORD (docker-entrypoint.sh). A server
        # passed in is a volume initialised earlier with another password: the hook must fix it.
        self.server = server if server is not None else start(env["POSTGRES_PASSWORD"])
        cluster.services[f"{name}.{namespace}"] = Endpoint("127.0.0.1", self.server.port)
        self.run_hook(cluster)
        self.server.superuser_password = env["POSTGRES_PASSWORD"]

    def _container(self, cluster: LocalCluster) -> tuple[dict[str, Any], dict[str, Any]]:
        pod = cluster.find("StatefulSet", self.namespace, self.name)["spec"]["template"]["spec"]
        return pod, pod["containers"][0]

    def run_hook(self, cluster: LocalCluster) -> None:
        pod, container = self._container(cluster)
        if "postStart" not in (container.get("lifecycle") or {}):
            return  # no hook: the kubelet runs nothing after the start
        scratch = cluster.workdir / f"postgres-hook-{os.urandom(4).hex()}"
        argv, env = cluster.prepare(
            self.namespace,
            pod,
            {**container, "command": container["lifecycle"]["postStart"]["exec"]["command"]},
            scratch,
            volume_paths={"run": self.server.socket_dir},
        )
        env["PGPORT"] = str(self.server.port)  # the socket is named by the port (5432 in the pod)
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise AssertionError(f"postStart hook failed: {result.stdout}{result.stderr}")

    def restart(self, cluster: LocalCluster) -> None:
        """The pod restarted with `cluster`'s render (its new environment), on the same volume."""
        pod, container = self._container(cluster)
        _, env = cluster.prepare(self.namespace, pod, container, cluster.workdir / "postgres-env")
        self.server.restart()
        self.run_hook(cluster)
        self.server.superuser_password = env["POSTGRES_PASSWORD"]
        cluster.services[f"{self.name}.{self.namespace}"] = Endpoint("127.0.0.1", self.server.port)


class MlflowPod:
    """The mlflow Deployment's pod: the server and its metrics sidecar, as rendered, on loopback."""

    def __init__(self, namespace: str = "naomi-platform", name: str = "mlflow") -> None:
        from tests.postgres_server import free_port

        self.namespace, self.name = namespace, name
        self.port = free_port()
        self.metrics_port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.scratch: Path | None = None

    @property
    def url(self) -> str:
        # `localhost:*` is one of the rendered allowed Host patterns (127.0.0.1:<port> is not).
        return f"http://localhost:{self.port}/mlflow"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, cluster: LocalCluster) -> None:
        import httpx

        cluster.services[f"{self.name}.{self.namespace}"] = Endpoint("localhost", self.port)
        pod = cluster.find("Deployment", self.namespace, self.name)["spec"]["template"]["spec"]
        self.scratch = cluster.workdir / f"mlflow-pod-{os.urandom(4).hex()}"
        self.scratch.mkdir(parents=True)
        server, sidecar = pod["containers"]

        def server_argv(argv: list[str]) -> list[str]:
            argv = ["127.0.0.1" if word == "0.0.0.0" else word for word in argv]  # loopback only
            argv[argv.index("--port") + 1] = str(self.port)
            return argv

        def sidecar_argv(argv: list[str]) -> list[str]:
            argv[argv.index("--port") + 1] = str(self.metrics_port)
            return [*argv, "--host", "127.0.0.1"]

        self.processes = [
            cluster.start(self.namespace, pod, server, self.scratch, server_argv),
            cluster.start(self.namespace, pod, sidecar, self.scratch, sidecar_argv),
        ]
        log = self.scratch / "mlflow.log"
        wait_for(
            lambda: httpx.get(f"{self.url}/health", timeout=5).status_code == 200,
            "mlflow",
            seconds=300,
            process=self.processes[0],
            log=log,
        )
        wait_for(
            lambda: httpx.get(self.metrics_url.replace("/metrics", "/healthz"), timeout=5).status_code == 200,
            "mlflow metrics sidecar",
            process=self.processes[1],
            log=self.scratch / "metrics.log",
        )

    def stop(self) -> None:
        for process in self.processes:
            stop(process)
        self.processes = []

    def restart(self, cluster: LocalCluster) -> None:
        self.stop()
        self.start(cluster)
