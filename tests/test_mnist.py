"""MNIST pieces without Ray: strict data loading, the promotion gate, the upload endpoint."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from workloads.common.storage import LocalStore
from workloads.mnist.data import SEED_KEY, Digits, embedded_digits, load, seed
from workloads.mnist.model import DigitsCNN
from workloads.mnist.registry import decide
from workloads.mnist.serving import Classifier, DigitsInfo, create_app
from workloads.mnist.train import split


def test_embedded_dataset_is_offline_and_seeding_is_idempotent(tmp_path: Path) -> None:
    digits = embedded_digits()
    assert len(digits) == 1797 and digits.images.shape[1:] == (8, 8) and set(digits.labels) == set(range(10))
    store = LocalStore(tmp_path)
    assert seed(store) is True
    before = (tmp_path / SEED_KEY).stat().st_mtime_ns
    assert seed(store) is False and (tmp_path / SEED_KEY).stat().st_mtime_ns == before
    again = load(store, SEED_KEY)
    assert np.array_equal(again.images, digits.images) and np.array_equal(again.labels, digits.labels)


def test_split_is_stratified_and_reproducible() -> None:
    train, test = split(embedded_digits())
    assert len(train) + len(test) == 1797
    counts = np.bincount(test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38
    again = split(embedded_digits())[1]
    assert np.array_equal(again.labels, test.labels)


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not an archive", "npz: not a readable archive"),
        (_npz(images=np.zeros((2, 8, 8), np.uint8)), "expected arrays images and labels"),
        (_npz(images=np.zeros((2, 8, 8), np.float64), labels=np.zeros(2, int)), "images: expected uint8"),
        (
            _npz(images=np.zeros((2, 8, 8), np.uint8), labels=np.array([0, 10])),
            "labels: expected integers in 0..9",
        ),
        (
            _npz(images=np.zeros((2, 8, 8), np.uint8), labels=np.array(["1", "2"])),
            "labels: expected integers",
        ),
        (
            _npz(images=np.zeros((2, 8, 8), np.uint8), labels=np.array([{"a": 1}, 2], dtype=object)),
            "not a readable",
        ),
    ],
    ids=["garbage", "missing-labels", "float-images", "label-range", "string-labels", "pickled-object"],
)
def test_hostile_npz_is_refused_without_unpickling(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Digits.from_npz(data)


def test_folder_per_label_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    for label in (3, 7):
        buffer = io.BytesIO()
        np.save(buffer, np.full((8, 8), label, np.uint8))
        store.put(f"datasets/naomi/{label}/a.npy", buffer.getvalue())
    digits = load(store, "datasets/naomi")
    assert sorted(digits.labels.tolist()) == [3, 7]
    store.put("datasets/naomi/x/b.npy", b"")
    with pytest.raises(ValueError, match=r"expected <prefix>/<label 0-9>/<name>\.npy"):
        load(store, "datasets/naomi")


def test_gate_needs_the_threshold_and_the_champion() -> None:
    assert decide(0.85, 0.9, None).promote is False
    assert decide(0.95, 0.9, None).promote is True
    kept = decide(0.95, 0.9, 0.97)
    assert kept.promote is False and "does not beat the champion" in kept.reason
    assert decide(0.98, 0.9, 0.97).promote is True


@pytest.fixture(scope="module")
def client() -> TestClient:
    model = DigitsCNN(4).eval()
    return TestClient(
        create_app(Classifier(model), DigitsInfo("mnist", "1", 8, 8)), raise_server_exceptions=False
    )


def test_json_and_png_uploads_are_classified(client: TestClient) -> None:
    from PIL import Image

    answer = client.post("/predict", json={"images": np.zeros((2, 8, 8)).tolist()})
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    buffer = io.BytesIO()
    Image.fromarray(np.full((28, 28, 3), 200, np.uint8)).save(buffer, format="PNG")
    upload = client.post("/predict", content=buffer.getvalue(), headers={"content-type": "image/png"})
    assert upload.status_code == 200 and 0 <= upload.json()["predictions"][0] <= 9


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image: not a readable PNG"),
        (b'{"images": [[[300]]]}', "images[0]: expected 8 rows"),
        (
            b'{"images": ' + str(np.full((1, 8, 8), 300).tolist()).encode() + b"}",
            "pixel values must lie in 0..255",
        ),
        (b"GIF89a", "malformed JSON"),
    ],
    ids=["broken-png", "shape", "range", "other-format"],
)
def test_bad_uploads_get_4xx(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/predict", content=body)
    assert 400 <= response.status_code < 500 and message in response.json()["error"]
    assert client.get("/healthz").status_code == 200
