"""Kubernetes quantities as numbers (CPU cores, bytes), for sizing decisions and benchmarks."""

from __future__ import annotations

_MEMORY = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity: str | int) -> int:
    text = str(quantity)
    for suffix in sorted(_MEMORY, key=len, reverse=True):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * _MEMORY[suffix])
    return int(text)
