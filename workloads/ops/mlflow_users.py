"""Reconcile MLflow's logins: the admin's password, one scoped user per consumer, their grants.

Run by the `mlflow-users-<hash>` Job on every `pulumi up` that changes a password or a grant (its
name carries both), and by the suspended `mlflow-users` CronJob when an operator re-applies them
(after a restore). The server runs with `default_permission = NO_PERMISSIONS`, so a user sees
exactly what it is granted here.

The admin. MLflow creates it only when it is missing (mlflow 3.17.2 `mlflow/server/auth/__init__.py`
create_admin_user: `if not store.has_user(username)`), so a rotated `admin_password` in
basic_auth.ini never reaches the user store and the new admin login would be refused. Changing it
over REST needs a working admin login, which the rotation has just replaced; so the admin's
password is written through MLflow's own auth store, as create_admin_user itself does when it
replaces a legacy password (`mlflow/server/auth/sqlalchemy_store.py` SqlAlchemyStore.update_user),
with the database and credentials the server reads (`read_auth_config`, MLFLOW_AUTH_CONFIG_PATH).

Everything else goes through the auth REST API as that admin (`mlflow/server/auth/routes.py`):
`users/create` or `users/update-password` for every scoped user (always: the Secret is the truth),
then each user's direct grants (`users/permissions/list`, rows of its `__user_<id>__` role) are
made equal to the plan with `users/permissions/grant` and `revoke`. Experiment grants name
experiments; the plan's experiments are created first, so grants exist before training runs. So
are the pipelines' registered models: for a model that does not exist MLflow answers a non-admin
403, not 404 (`validate_can_read_model_or_prompt_version` denies when
`_registered_model_or_prompt_target` finds no model), and the registration Job could not tell
"not trained yet" (start the first training) from "denied".
A serving user also gets READ on the experiments that hold versions of its models (model
artifacts live under the experiment: the artifact proxy checks experiment READ,
`_authorize_artifact_proxy_resolved`). Finally each user's login is checked (`users/current`).

    MLFLOW_TRACKING_URI=http://mlflow:5000/mlflow MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini \\
      python mlflow_users.py --plan users.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

Grant = tuple[str, str]  # (resource_type, resource_pattern)


@dataclass(frozen=True)
class UserPlan:
    username: str
    password_env: str
    # (resource_type, resource name or "*", permission); experiments by name
    grants: tuple[tuple[str, str, str], ...]
    # registered models whose versions' experiments this user may read
    model_experiments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    experiments: tuple[str, ...]
    users: tuple[UserPlan, ...]
    registered_models: tuple[str, ...] = ()


def load_plan(path: Path) -> Plan:
    document = json.loads(path.read_text())
    return Plan(
        experiments=tuple(document.get("experiments", ())),
        registered_models=tuple(document.get("registeredModels", ())),
        users=tuple(
            UserPlan(
                username=user["username"],
                password_env=user["passwordEnv"],
                grants=tuple((g["resourceType"], g["resource"], g["permission"]) for g in user["grants"]),
                model_experiments=tuple(user.get("modelExperiments", ())),
            )
            for user in document["users"]
        ),
    )


class ApiError(RuntimeError):
    def __init__(self, response: requests.Response) -> None:
        self.status = response.status_code
        try:
            self.code = str(response.json().get("error_code", ""))
        except ValueError:
            self.code = ""
        super().__init__(
            f"{response.request.method} {response.url} -> {response.status_code}: {response.text[:300]}"
        )


class Api:
    """The tracking server's REST API with one login."""

    def __init__(self, uri: str, username: str, password: str) -> None:
        self.uri = uri.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (username, password)

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.session.request(method, f"{self.uri}{path}", timeout=60, **kwargs)
        if response.status_code >= 400:
            raise ApiError(response)
        return response.json() if response.content else {}

    def get(self, path: str, **params: str) -> dict[str, Any]:
        return self.call("GET", path, params=params)


def wait_healthy(uri: str, seconds: float) -> None:
    """The server answers /health (the Job may start before the server's pod is ready)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(f"{uri.rstrip('/')}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"mlflow-users: {uri}/health not answering after {seconds:.0f} s")
        time.sleep(2)


def set_admin_password() -> tuple[str, str]:
    """Create or update the admin in MLflow's user store with basic_auth.ini's password."""
    from mlflow.server.auth.config import read_auth_config
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    config = read_auth_config()
    if not config.admin_username or not config.admin_password:
        raise SystemExit("mlflow-users: basic_auth.ini names no admin_username/admin_password")
    store = SqlAlchemyStore()
    store.init_db(config.database_uri)
    if store.has_user(config.admin_username, use_primary=True):
        store.update_user(config.admin_username, password=config.admin_password, is_admin=True)
        print(f"admin {config.admin_username}: password set")
    else:
        store.create_user(config.admin_username, config.admin_password, is_admin=True)
        print(f"admin {config.admin_username}: created")
    return config.admin_username, config.admin_password


def ensure_experiment(api: Api, name: str) -> str:
    try:
        return str(
            api.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)["experiment"][
                "experiment_id"
            ]
        )
    except ApiError as error:
        if error.status != 404:
            raise
    created = api.call("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})
    print(f"experiment {name}: created")
    return str(created["experiment_id"])


def ensure_registered_model(api: Api, name: str) -> None:
    try:
        api.get("/api/2.0/mlflow/registered-models/get", name=name)
        return
    except ApiError as error:
        if error.status != 404:
            raise
    api.call("POST", "/api/2.0/mlflow/registered-models/create", json={"name": name})
    print(f"registered model {name}: created")


def experiment_id(api: Api, name: str) -> str | None:
    try:
        return str(
            api.get("/api/2.0/mlflow/experiments/get-by-name", experiment_name=name)["experiment"][
                "experiment_id"
            ]
        )
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def model_experiment_ids(api: Api, model: str) -> set[str]:
    """Experiments holding a version of registered model `model` (through its run or logged model)."""
    found: set[str] = set()
    token = ""
    while True:
        params = {"filter": f"name='{model}'", "max_results": "200"}
        if token:
            params["page_token"] = token
        page = api.get("/api/2.0/mlflow/model-versions/search", **params)
        for version in page.get("model_versions", []):
            if version.get("run_id"):
                run = api.get("/api/2.0/mlflow/runs/get", run_id=version["run_id"])
                found.add(str(run["run"]["info"]["experiment_id"]))
            elif str(version.get("source", "")).startswith("models:/m-"):
                model_id = version["source"].removeprefix("models:/")
                logged = api.get(f"/api/2.0/mlflow/logged-models/{model_id}")
                found.add(str(logged["model"]["info"]["experiment_id"]))
        token = page.get("next_page_token", "")
        if not token:
            return found


def ensure_user(api: Api, username: str, password: str) -> int:
    """Create the user or set its password; returns its id."""
    try:
        user = api.get("/api/2.0/mlflow/users/get", username=username)["user"]
    except ApiError as error:
        if error.status != 404:
            raise
        user = api.call(
            "POST", "/api/2.0/mlflow/users/create", json={"username": username, "password": password}
        )["user"]
        print(f"user {username}: created")
        return int(user["id"])
    api.call(
        "PATCH", "/api/2.0/mlflow/users/update-password", json={"username": username, "password": password}
    )
    print(f"user {username}: password set")
    return int(user["id"])


def direct_grants(api: Api, username: str, user_id: int) -> dict[Grant, str]:
    """The user's own grants (its synthetic `__user_<id>__` role), not those of shared roles."""
    rows = api.get("/api/3.0/mlflow/users/permissions/list", username=username)["permissions"]
    own = f"__user_{user_id}__"
    return {
        (r["resource_type"], r["resource_pattern"]): r["permission"] for r in rows if r["role_name"] == own
    }


def desired_grants(api: Api, user: UserPlan) -> dict[Grant, str]:
    wanted: dict[Grant, str] = {}
    for resource_type, resource, permission in user.grants:
        if resource_type == "experiment" and resource != "*":
            found = experiment_id(api, resource)
            if found is None:
                print(f"user {user.username}: no experiment {resource!r} yet (granted when it exists)")
                continue
            wanted[(resource_type, found)] = permission
        else:
            wanted[(resource_type, resource)] = permission
    for model in user.model_experiments:
        for found in sorted(model_experiment_ids(api, model)):
            wanted.setdefault(("experiment", found), "READ")
    return wanted


def reconcile_grants(api: Api, username: str, current: dict[Grant, str], wanted: dict[Grant, str]) -> None:
    for (resource_type, pattern), permission in sorted(current.items()):
        if wanted.get((resource_type, pattern)) != permission:
            api.call(
                "POST",
                "/api/3.0/mlflow/users/permissions/revoke",
                json={"username": username, "resource_type": resource_type, "resource_id": pattern},
            )
            print(f"user {username}: revoked {permission} on {resource_type} {pattern}")
    for (resource_type, pattern), permission in sorted(wanted.items()):
        if current.get((resource_type, pattern)) != permission:
            api.call(
                "POST",
                "/api/3.0/mlflow/users/permissions/grant",
                json={
                    "username": username,
                    "resource_type": resource_type,
                    "resource_id": pattern,
                    "permission": permission,
                },
            )
            print(f"user {username}: granted {permission} on {resource_type} {pattern}")


def verify_login(uri: str, username: str, password: str) -> None:
    response = requests.get(
        f"{uri.rstrip('/')}/api/2.0/mlflow/users/current", auth=(username, password), timeout=60
    )
    if response.status_code != 200:
        raise SystemExit(f"mlflow-users: the login of {username} is refused ({response.status_code})")


def reconcile(uri: str, plan: Plan, environment: dict[str, str]) -> None:
    passwords = {}
    for user in plan.users:
        password = environment.get(user.password_env, "")
        if not password:
            raise SystemExit(f"mlflow-users: {user.password_env} (password of {user.username}) is not set")
        passwords[user.username] = password
    admin, admin_password = set_admin_password()
    api = Api(uri, admin, admin_password)
    for name in plan.experiments:
        ensure_experiment(api, name)
    for name in plan.registered_models:
        ensure_registered_model(api, name)
    for user in plan.users:
        user_id = ensure_user(api, user.username, passwords[user.username])
        reconcile_grants(
            api, user.username, direct_grants(api, user.username, user_id), desired_grants(api, user)
        )
    for user in plan.users:
        verify_login(uri, user.username, passwords[user.username])
    verify_login(uri, admin, admin_password)
    print(f"mlflow-users: {len(plan.users)} users and the admin reconciled")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True, help="users.json (users, grants, experiments)")
    parser.add_argument("--wait", type=float, default=600, help="seconds to wait for the server")
    args = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise SystemExit("mlflow-users: MLFLOW_TRACKING_URI is not set")
    wait_healthy(uri, args.wait)
    reconcile(uri, load_plan(args.plan), dict(os.environ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
