"""The gateway's basic auth for flytekit: the `naomi-gateway` authenticator plugin.

flytekit 1.16.31 sends only bearer tokens: every built-in authenticator answers
`fetch_grpc_call_auth_metadata` with `(header, "Bearer <token>")`, the header being
`authorization` or, for `proxyCommand`, `proxy-authorization` (flytekit/clients/auth/
authenticator.py, flytekit/clients/auth_helper.py get_proxy_authenticator). The gateway's basic
auth reads `Authorization: Basic` and nothing else (traefik/traefik v3.7.9
pkg/middlewares/auth/basic_auth.go: `req.BasicAuth()`), so no stock flytekit setting passes it.
flytekit resolves an `admin.authType` it does not know through its authenticator plugins
(`register_authenticator_plugin`, else the `flytekit.auth` entry-point group; auth_helper.py
get_authenticator / _load_authenticator_plugin) with `(PlatformConfig, ClientConfigStore)`.
This plugin answers every gRPC call (and flytekit's HTTP session) with `authorization: Basic
<user:password>`: the user is `admin.clientId`, the password what `admin.command` prints (the
file `naomi connect` writes, or any secret store's command line). Traefik checks it and removes
it (`removeHeader: true`) before FlyteAdmin.

Loaded by flytekit only: this module imports flytekit at import time.
"""

from __future__ import annotations

import base64
import subprocess
from typing import Any

from flytekit.clients.auth.authenticator import Authenticator  # type: ignore[import-untyped]
from flytekit.clients.auth.exceptions import AuthenticationError  # type: ignore[import-untyped]
from flytekit.clients.auth.keyring import Credentials  # type: ignore[import-untyped]

NAME = "naomi-gateway"


class GatewayBasicAuthenticator(Authenticator):  # type: ignore[misc]
    """`authorization: Basic base64(clientId:password)` on every call; the password from `command`."""

    def __init__(self, cfg: Any, cfg_store: Any = None) -> None:
        if not cfg.client_id:
            raise AuthenticationError(f"admin.clientId must name the gateway user (authType {NAME})")
        if not cfg.command:
            raise AuthenticationError(f"admin.command must print the gateway password (authType {NAME})")
        super().__init__(cfg.endpoint, "authorization")
        self._user = str(cfg.client_id)
        self._command = [str(part) for part in cfg.command]

    def refresh_credentials(self) -> None:
        try:
            done = subprocess.run(self._command, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError) as error:
            raise AuthenticationError(
                f"admin.command {' '.join(self._command)!r} did not print the gateway password: {error}"
            ) from None
        password = done.stdout.strip()
        if not password:
            raise AuthenticationError(f"admin.command {' '.join(self._command)!r} printed nothing")
        login = base64.b64encode(f"{self._user}:{password}".encode()).decode()
        self._set_credentials(Credentials(access_token=login, for_endpoint=self._endpoint))

    def fetch_grpc_call_auth_metadata(self) -> tuple[str, str]:
        # On the first call, and never as a bearer token: the gateway wants Basic.
        if self.get_credentials() is None:
            self.refresh_credentials()
        return self._header_key, f"Basic {self.get_credentials().access_token}"


def register() -> None:
    """Make `authType: naomi-gateway` known to flytekit in this process (FlyteRemote in a script,
    where naomi's `flytekit.auth` entry point is not installed)."""
    from flytekit.clients.auth_helper import register_authenticator_plugin  # type: ignore[import-untyped]

    register_authenticator_plugin(NAME, GatewayBasicAuthenticator)
