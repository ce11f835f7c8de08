"""Bounded load on a local endpoint (benchmarks and smoke tests): paced or concurrent POSTs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class LoadResult:
    latencies: list[float]  # seconds
    errors: int
    seconds: float

    def summary(self) -> str:
        ms = np.asarray(self.latencies) * 1000
        return (
            f"{len(ms) / self.seconds:.0f} req/s, p50 {np.percentile(ms, 50):.2f} ms, "
            f"p99 {np.percentile(ms, 99):.2f} ms, errors {self.errors}"
        )


def paced(url: str, body: bytes, *, rate: float, count: int, warmup: int = 30) -> LoadResult:
    """`count` requests at `rate` per second on one keep-alive connection (after `warmup`)."""
    import httpx

    latencies, errors = [], 0
    with httpx.Client(timeout=10) as client:
        for _ in range(warmup):
            client.post(url, content=body, headers=HEADERS)
        start = time.perf_counter()
        for index in range(count):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            sent = time.perf_counter()
            errors += client.post(url, content=body, headers=HEADERS).status_code != 200
            latencies.append(time.perf_counter() - sent)
    return LoadResult(latencies, errors, time.perf_counter() - start)


def concurrent(url: str, body: bytes, *, clients: int, per_client: int) -> LoadResult:
    """`clients` threads, each sending `per_client` requests back to back on its own connection."""
    import httpx

    def worker(count: int) -> tuple[list[float], int]:
        times, failed = [], 0
        with httpx.Client(timeout=10) as client:
            for _ in range(count):
                sent = time.perf_counter()
                failed += client.post(url, content=body, headers=HEADERS).status_code != 200
                times.append(time.perf_counter() - sent)
        return times, failed

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(worker, [per_client] * clients))
    return LoadResult(
        [t for times, _ in results for t in times], sum(e for _, e in results), time.perf_counter() - began
    )
