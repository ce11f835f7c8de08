"""The follower's decisions without a registry: what a server answers with, and whether it is
ready, for every answer the registry can give (absent, unreachable, a version that fails to
load, a new version, an alias removed), and the model URIs it accepts (MLflow 3 logged models
included: the QoE benchmark served one and failed on it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from workloads.common.follow import Follower, ModelReference, parse_model_uri, version_uri
from workloads.common.serving import ModelSlot, Served


def test_model_uris() -> None:
    assert parse_model_uri("models:/qoe@champion") == ModelReference(
        "models:/qoe@champion", "qoe", alias="champion"
    )
    assert parse_model_uri("models:/qoe/3").version == "3"
    logged = parse_model_uri("models:/m-4ec342c801f44e51951f815ff479285b")
    assert logged.logged and logged.pinned and version_uri(logged, logged.name) == logged.uri
    assert version_uri(parse_model_uri("models:/qoe@champion"), "7") == "models:/qoe/7"
    for bad, message in (
        ("s3://bucket/model", "expected models:/<name>@<alias>"),
        ("models:/qoe/latest", "the version must be a number"),
        ("models:/@champion", "expected models:/<name>@<alias>"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_model_uri(bad)


class Registry:
    """What the registry answers next: a version, None (absent) or an exception (outage)."""

    def __init__(self) -> None:
        self.answer: Any = None
        self.broken: set[str] = set()
        self.loaded: list[str] = []

    def resolve(self, reference: ModelReference) -> str | None:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def load(self, uri: str, version: str) -> Served:
        if version in self.broken:
            raise OSError("artifact missing")
        self.loaded.append(uri)
        return Served(version=version, parse=lambda body: np.zeros(1), predict=lambda rows: rows)


def test_every_registry_answer() -> None:
    registry, slot, swaps = Registry(), ModelSlot(), []
    follower = Follower(
        "models:/qoe@champion", registry.load, slot, resolve=registry.resolve, on_swap=swaps.append
    )
    assert not slot.settled  # not ready before the first look

    registry.answer = ConnectionError("refused")
    assert follower.poll_once() == "unreachable" and not slot.settled
    assert slot.waiting == "cannot reach the model registry (ConnectionError)"

    registry.answer = None  # a bare cluster: nothing to wait for, ready, 503 with the reason
    assert follower.poll_once() == "absent" and slot.settled and slot.served is None
    assert slot.waiting == "registered model 'qoe' has no version with the alias 'champion' yet"

    registry.answer, registry.broken = "1", {"1"}  # a version that does not load: not ready
    assert follower.poll_once() == "load-failed" and not slot.settled
    assert slot.waiting == "version 1 failed to load (OSError)"

    registry.broken = set()
    assert follower.poll_once() == "swapped" and slot.served is not None and slot.served.version == "1"
    assert registry.loaded == ["models:/qoe/1"] and swaps == ["1"]  # the version, never the alias
    assert follower.poll_once() == "unchanged" and len(registry.loaded) == 1

    registry.answer, registry.broken = "2", {"2"}  # a broken new version: keep serving version 1
    assert follower.poll_once() == "load-failed" and slot.served.version == "1" and slot.settled
    registry.answer = ConnectionError("refused")  # an outage: keep serving
    assert follower.poll_once() == "unreachable" and slot.served.version == "1"
    registry.answer = None  # the alias removed: keep serving what answers
    assert follower.poll_once() == "absent" and slot.served.version == "1"
    registry.answer, registry.broken = "2", set()
    assert follower.poll_once() == "swapped" and slot.served.version == "2" and swaps == ["1", "2"]


def test_a_pinned_version_stops_polling_once_loaded() -> None:
    registry, slot = Registry(), ModelSlot()
    registry.answer = "3"
    follower = Follower("models:/qoe/3", registry.load, slot, resolve=registry.resolve, poll_seconds=0.01)
    follower.start()
    assert follower.join(timeout=10)  # ends by itself: nothing left to follow
    assert registry.loaded == ["models:/qoe/3"]
