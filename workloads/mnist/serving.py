"""Digit serving: JSON images or an uploaded PNG in, class and probabilities out.

`POST /predict` takes `{"images": [[[0..255] x W] x H] x n]}` or a PNG file as the raw body
(`curl --data-binary @digit.png -H 'content-type: image/png'`); a PNG of any size is converted to
grayscale and resized to the model's input. Everything else is the shared strict app.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from workloads.common.serving import ModelSlot, PrometheusMetrics, Served, parse_tensor
from workloads.common.serving import create_app as create_serving_app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 4096 * 4096
CLASS_BUCKETS = tuple(range(10))


@dataclass(frozen=True)
class DigitsInfo:
    name: str
    version: str
    height: int
    width: int


def parse_images(body: bytes, info: DigitsInfo) -> np.ndarray:
    """(n, 1, H, W) float32 in 0..1 from JSON pixel values (0..255) or one PNG upload."""
    if body.startswith(PNG_MAGIC):
        return _png(body, info)
    images = parse_tensor(body, "images", (None, info.height, info.width), ("images", "rows", "pixels"))
    if images.min() < 0 or images.max() > 255:
        raise ValueError("images: pixel values must lie in 0..255")
    return (images / 255.0).astype(np.float32)[:, None, :, :]


def _png(body: bytes, info: DigitsInfo) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(f"image: larger than {MAX_PIXELS} pixels")
            gray = image.convert("L").resize((info.width, info.height), Image.Resampling.BILINEAR)
            pixels = np.asarray(gray, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"image: not a readable PNG ({type(error).__name__})") from None
    return pixels[None, None, :, :]


class Classifier:
    """CNN logits -> predicted class per image (probabilities via softmax)."""

    def __init__(self, model: Any) -> None:
        import torch

        self.model = model
        self._torch = torch
        torch.set_num_threads(1)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model(self._torch.from_numpy(images)).argmax(1).numpy()


def misclassified(predicted: float, actual: float) -> float:
    return float(predicted != actual)


def served(info: DigitsInfo, predict: Callable[[np.ndarray], Any]) -> Served:
    return Served(
        version=info.version,
        parse=partial(parse_images, info=info),
        predict=predict,
        describe={"input": {"height": info.height, "width": info.width, "formats": ["json", "png"]}},
    )


def create_app(predictor: Callable[[np.ndarray], Any], info: DigitsInfo, *, registry: Any = None) -> Any:
    return create_serving_app(
        name=info.name,
        slot=ModelSlot(served(info, predictor)),
        metrics=PrometheusMetrics(info.name, registry=registry, value_buckets=CLASS_BUCKETS),
        error=misclassified,
    )
