"""Serving follows the registry: the version behind a model URI, polled, loaded, swapped in.

A model server or Ray Serve replica is given `models:/<name>@<alias>` (or a pinned
`models:/<name>/<version>`, or an MLflow 3 logged-model URI `models:/m-<id>`). `Follower` asks
MLflow which version that is, loads it *beside* the one being served and swaps the `ModelSlot`
in one assignment, so requests in flight finish on the old model and the next ones get the new
one: nothing is dropped. It polls every `poll_seconds` (bounded: MLflow's HTTP timeout and retries
are capped unless the environment sets them), so retrain -> promote reaches users without a
restart. Until the registry has a version the slot says what it waits for (a clear 503 on
/predict) and counts as ready, so a bare cluster's serving objects come up; a version that
exists but fails to load keeps the slot not ready (a rollout waits, old pods keep serving).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from workloads.common.registry import absent
from workloads.common.serving import ModelSlot, Served

LOG = logging.getLogger("naomi.serving")
DEFAULT_POLL_SECONDS = 30.0
# MLflow's own defaults (120 s timeout, 7 retries with backoff) would let one poll hang for many
# minutes; a poll must end well before the next one is due.
BOUNDED_HTTP = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}


@dataclass(frozen=True)
class ModelReference:
    """A parsed `models:/` URI."""

    uri: str
    name: str  # registered model name, or the logged model's id
    alias: str | None = None
    version: str | None = None
    logged: bool = False  # models:/m-<id>: an MLflow 3 logged model without a registry version

    @property
    def pinned(self) -> bool:
        """The URI names one thing for good: nothing to follow once it is loaded."""
        return self.alias is None

    def describe(self) -> str:
        if self.alias is not None:
            return f"registered model {self.name!r} has no version with the alias {self.alias!r} yet"
        if self.logged:
            return f"logged model {self.name!r} does not exist"
        return f"registered model {self.name!r} has no version {self.version} yet"


def parse_model_uri(model_uri: str) -> ModelReference:
    """`models:/<name>@<alias>`, `models:/<name>/<version>` or `models:/m-<id>`; ValueError otherwise."""
    if not model_uri.startswith("models:/"):
        raise ValueError(
            f"model URI {model_uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>"
        )
    reference = model_uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        if not name or not alias:
            raise ValueError(f"model URI {model_uri!r}: expected models:/<name>@<alias>")
        return ModelReference(model_uri, name, alias=alias)
    name, slash, version = reference.partition("/")
    if not slash and name.startswith("m-") and len(name) > 2:
        return ModelReference(model_uri, name, logged=True)
    if not name or not version.isdigit():
        raise ValueError(f"model URI {model_uri!r}: the version must be a number")
    return ModelReference(model_uri, name, version=version)


def registry_version(reference: ModelReference) -> str | None:
    """The version `reference` names in the registry now (the model id for a logged model);
    None when it does not exist (yet). Other errors (an unreachable registry) propagate."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        if reference.alias is not None:
            return str(client.get_model_version_by_alias(reference.name, reference.alias).version)
        if reference.logged:
            client.get_logged_model(reference.name)
            return reference.name
        return str(client.get_model_version(reference.name, str(reference.version)).version)
    except MlflowException as error:
        if absent(error):
            return None
        raise


def version_uri(reference: ModelReference, version: str) -> str:
    """What to load for `version`: the version itself, never the alias (which may move meanwhile)."""
    return reference.uri if reference.logged else f"models:/{reference.name}/{version}"


class Follower:
    """Keeps `slot` on the version behind `model_uri`; `load(uri, version)` builds a `Served`."""

    def __init__(
        self,
        model_uri: str,
        load: Callable[[str, str], Served],
        slot: ModelSlot,
        *,
        poll_seconds: float = DEFAULT_POLL_SECONDS,
        on_swap: Callable[[str], None] = lambda version: None,
        resolve: Callable[[ModelReference], str | None] = registry_version,
    ) -> None:
        self.reference = parse_model_uri(model_uri)
        self._load = load
        self._slot = slot
        self._poll_seconds = poll_seconds
        self._on_swap = on_swap
        self._resolve = resolve
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        slot.wait(f"looking up {model_uri} in the model registry", settled=False)
        for variable, value in BOUNDED_HTTP.items():
            os.environ.setdefault(variable, value)

    def poll_once(self) -> str:
        """One look at the registry: 'swapped', 'unchanged', 'absent', 'unreachable' or 'load-failed'."""
        served = self._slot.served
        try:
            version = self._resolve(self.reference)
        except Exception as error:
            LOG.warning("model registry unreachable for %s: %s", self.reference.uri, error)
            if served is None:
                self._slot.wait(f"cannot reach the model registry ({type(error).__name__})", settled=False)
            return "unreachable"
        if version is None:
            if served is None:  # a loaded model keeps answering if its alias is removed
                self._slot.wait(self.reference.describe(), settled=True)
            return "absent"
        if served is not None and served.version == version:
            return "unchanged"
        try:
            fresh = self._load(version_uri(self.reference, version), version)
        except Exception as error:
            LOG.error("version %s of %s failed to load: %s", version, self.reference.uri, error)
            if served is None:
                self._slot.wait(f"version {version} failed to load ({type(error).__name__})", settled=False)
            return "load-failed"
        self._slot.swap(fresh)
        self._on_swap(version)
        LOG.info("now serving %s version %s", self.reference.name, version)
        return "swapped"

    def start(self, *, poll_now: bool = True) -> None:
        """Poll in a daemon thread until `stop` (a pinned URI stops once it is loaded);
        `poll_now=False` when the caller has just polled itself."""

        def loop() -> None:
            if not poll_now and self._stop.wait(self._poll_seconds):
                return
            while not (self._slot.served is not None and self.reference.pinned):
                self.poll_once()
                if self._stop.wait(self._poll_seconds):
                    return

        self._thread = threading.Thread(target=loop, name=f"follow {self.reference.uri}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the polling thread to end; True when it has (stopped, or pinned and loaded)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()
