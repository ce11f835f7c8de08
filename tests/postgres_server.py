"""A real PostgreSQL for the tests: Debian's `postgresql` 15 started on 127.0.0.1 in a scratch folder.

The platform runs the official `postgres:17.6-bookworm` image; the tests run Debian bookworm's 15
(`.ci/run` installs it). Nothing the project relies on differs between the two: roles, `ALTER ROLE
... PASSWORD`, scram-sha-256, `\\gexec`, `pg_dump -Fc`/`pg_restore` of the same major version.

Authentication is the image's (docker-library/postgres `17/bookworm/docker-entrypoint.sh`: `initdb`
without `--auth` trusts local connections, then `pg_setup_hba_conf` appends
`host all all all scram-sha-256`): the Unix socket is trusted, TCP needs the password. The image
also trusts TCP from 127.0.0.1 *inside the pod*; here a TCP client stands for another pod, so
loopback TCP asks for the password (otherwise no test could see a refused password).

`initdb` and `postgres` refuse to run as root: as root the server runs as `nobody` in a folder
under /tmp that `nobody` owns. `shared()` starts one server per test session (stopped at exit);
`start()` starts another, e.g. the "fresh server" a restore goes to.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
_AS_ROOT = os.geteuid() == 0
_RUN_AS = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] if _AS_ROOT else []


def require_postgres() -> Path:
    """The server binaries; skip without them, fail in CI (`.ci/run` installs the package)."""
    if not (BIN / "postgres").is_file():
        message = f"PostgreSQL 15 not installed ({BIN}); apt-get install postgresql"
        if os.environ.get("NAOMI_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return BIN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """One running cluster: TCP on 127.0.0.1:`port` (scram), Unix socket in `socket_dir` (trust)."""

    root: Path
    port: int
    superuser_password: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    def uri(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def client_env(self, **extra: str) -> dict[str, str]:
        """Environment for libpq clients (psql, pg_dump, pg_restore) over TCP as the superuser."""
        return {
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGPASSWORD": self.superuser_password,
            **extra,
        }

    def sql(self, statement: str, *, database: str = "postgres", password: str | None = None) -> str:
        """Run one statement over TCP as the superuser; returns psql's unaligned output."""
        env = self.client_env()
        if password is not None:
            env["PGPASSWORD"] = password
        result = subprocess.run(
            [str(BIN / "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", statement],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresError(result.stderr.strip())
        return result.stdout.strip()

    def can_login(self, user: str, password: str, database: str = "postgres") -> bool:
        import psycopg2

        try:
            psycopg2.connect(self.uri(user, password, database), connect_timeout=5).close()
        except psycopg2.OperationalError as error:
            if "password authentication failed" in str(error):
                return False
            raise
        return True

    def restart(self, superuser_password: str | None = None) -> None:
        """Stop and start on the same data (a pod restart with its volume); the stored superuser
        password stays what it was: only an explicit ALTER ROLE changes it."""
        self._terminate()
        self.process, self.log = _launch(self.root, self.port)
        if superuser_password is not None:
            self.superuser_password = superuser_password

    def _terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: clients are disconnected
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresError(RuntimeError):
    pass


def _as_server_user(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_RUN_AS, *argv], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def _launch(root: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    """postgres on an initialised data folder; returns once it accepts TCP connections."""
    log = root / "server.log"
    log_file = log.open("a")
    if _AS_ROOT:
        os.chown(log, 65534, 65534)
    process = subprocess.Popen(
        [
            *_RUN_AS,
            str(BIN / "postgres"),
            "-D",
            str(root / "data"),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={port}",
            "-c",
            f"unix_socket_directories={root / 'run'}",
            "-c",
            "fsync=off",  # scratch data; durability is not under test
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PostgresError(f"postgres exited: {log.read_text()[-2000:]}")
        ready = subprocess.run(
            [str(BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
        )
        if ready.returncode == 0:
            return process, log
        time.sleep(0.1)
    process.kill()
    raise PostgresError(f"postgres not ready after 60 s: {log.read_text()[-2000:]}")


def start(superuser_password: str) -> PostgresServer:
    """initdb (the superuser gets `superuser_password`) + postgres on a free loopback port."""
    require_postgres()
    root = Path(tempfile.mkdtemp(prefix="naomi-pg-", dir="/tmp" if _AS_ROOT else None))
    (root / "run").mkdir()
    password_file = root / "pwfile"
    password_file.write_text(superuser_password + "\n")
    if _AS_ROOT:
        for path in (root, root / "run", password_file):
            os.chown(path, 65534, 65534)
    init = _as_server_user(
        [
            str(BIN / "initdb"),
            "-D",
            str(root / "data"),
            f"--username={SUPERUSER}",
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-instructions",
        ]
    )
    password_file.unlink()
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresError(f"initdb failed: {init.stderr[-2000:]}")
    port = free_port()
    try:
        process, log = _launch(root, port)
    except PostgresError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return PostgresServer(
        root=root, port=port, superuser_password=superuser_password, process=process, log=log
    )


_SHARED: PostgresServer | None = None


def shared() -> PostgresServer:
    """The session's server (started on first use, stopped when the test process exits)."""
    global _SHARED
    if _SHARED is None or _SHARED.process.poll() is not None:
        import secrets

        _SHARED = start(secrets.token_urlsafe(24))
        atexit.register(_SHARED.stop)
    return _SHARED


def fresh_database(server: PostgresServer, name: str, owner: str, password: str) -> str:
    """A new role and database (dropped first if a previous test left them); returns its URI."""
    server.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    server.sql(f"DROP ROLE IF EXISTS {owner}")
    server.sql(f"CREATE ROLE {owner} LOGIN PASSWORD '{password}'")
    server.sql(f"CREATE DATABASE {name} OWNER {owner}")
    return server.uri(owner, password, name)
