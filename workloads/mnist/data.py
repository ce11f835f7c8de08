"""Digit images: the embedded offline dataset, the object-store layout, strict loading.

The embedded default is scikit-learn's bundled digits (1,797 grayscale 8x8 images, 10 labels):
it ships inside the package, so nothing is downloaded at run time. On the object store a dataset
is one `.npz` with `images` (uint8, n x H x W) and `labels` (int64 in 0..9), or NAOMI's layout of
one folder per label holding `.npy` images (`<prefix>/<label>/<name>.npy`). Loading validates
shapes, dtypes and label range and never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from workloads import catalogue
from workloads.common.storage import Store

SEED_KEY = catalogue.pipeline("mnist").dataset  # the embedded digits, uploaded by the seed Job
CLASSES = 10


@dataclass(frozen=True)
class Digits:
    images: np.ndarray  # uint8 (n, H, W)
    labels: np.ndarray  # int64 (n,)

    def __post_init__(self) -> None:
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images: expected uint8 (n, H, W), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels: expected ({len(self.images)},), got {self.labels.shape}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= CLASSES):
            raise ValueError(f"labels: expected integers in 0..{CLASSES - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=self.images, labels=self.labels)
        return buffer.getvalue()

    @staticmethod
    def from_npz(data: bytes) -> Digits:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
            # ValueError: numpy refusing pickled (object) data, which is never loaded.
            raise ValueError(f"npz: not a readable archive without pickles ({error})") from None
        if set(arrays) != {"images", "labels"}:
            raise ValueError(f"npz: expected arrays images and labels, got {sorted(arrays)}")
        images, labels = arrays["images"], arrays["labels"]
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels: expected integers, got {labels.dtype}")
        return Digits(images=images, labels=labels.astype(np.int64))


def embedded_digits() -> Digits:
    """scikit-learn's bundled digits, scaled from 0..16 to 0..255 (no download)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255 / 16)), 0, 255).astype(np.uint8)
    return Digits(images=images, labels=bunch.target.astype(np.int64))


def seed(store: Store, key: str = SEED_KEY) -> bool:
    """Upload the embedded dataset unless it is already there; True if it was written."""
    if store.exists(key):
        return False
    store.put(key, embedded_digits().to_npz())
    return True


def load_folders(store: Store, prefix: str) -> Digits:
    """NAOMI's layout: `<prefix>/<label>/<image>.npy`, each a uint8 H x W array."""
    images, labels = [], []
    for key in store.list(prefix.rstrip("/") + "/"):
        label = key[len(prefix.rstrip("/")) + 1 :].split("/", 1)[0]
        if not label.isdigit() or not key.endswith(".npy"):
            raise ValueError(f"{key}: expected <prefix>/<label 0-9>/<name>.npy")
        array = np.load(io.BytesIO(store.get(key)), allow_pickle=False)
        images.append(array)
        labels.append(int(label))
    if not images:
        raise ValueError(f"{prefix}: no images found")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise ValueError(f"{prefix}: images of different shapes {sorted(shapes)}")
    return Digits(images=np.stack(images).astype(np.uint8), labels=np.asarray(labels, dtype=np.int64))


def load(store: Store, key: str) -> Digits:
    return Digits.from_npz(store.get(key)) if key.endswith(".npz") else load_folders(store, key)
