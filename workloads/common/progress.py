"""Per-epoch progress from Ray Train workers back to the process that runs the training.

The training loop runs in Ray Train worker processes; a display (`naomi run`) lives in the
driver. Rank 0 puts one small record per finished epoch into a Ray queue that a driver thread
drains into the caller's `on_epoch`. Without a listener (a RayJob on the cluster) no queue
exists and the loop reports nothing extra.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

OnEpoch = Callable[[int, int, dict[str, float]], None]
"""on_epoch(epoch, epochs, metrics): `epoch` counts from 1 when that epoch has finished."""


@contextmanager
def epoch_feed(on_epoch: OnEpoch | None) -> Iterator[Any]:
    """A queue handle to pass to the workers (None without `on_epoch`), drained while open."""
    if on_epoch is None:
        yield None
        return
    from ray.util.queue import Empty, Queue

    # No CPU: the trainers hold every CPU of a laptop-sized Ray (TOOLING.md: 2 cores).
    queue = Queue(actor_options={"num_cpus": 0})
    done = threading.Event()

    def drain() -> None:
        while True:
            try:
                record = queue.get(timeout=0.2)
            except Empty:
                if done.is_set():
                    return
                continue
            on_epoch(int(record["epoch"]), int(record["epochs"]), dict(record["metrics"]))

    thread = threading.Thread(target=drain, name="epoch-feed", daemon=True)
    thread.start()
    try:
        yield queue
    finally:
        done.set()
        thread.join()
        queue.shutdown()


def report_epoch(feed: Any, epoch: int, epochs: int, metrics: dict[str, Any]) -> None:
    """From rank 0 in the worker loop: epoch `epoch` (from 0) of `epochs` is done."""
    if feed is not None:
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and k != "epoch"}
        feed.put_nowait({"epoch": epoch + 1, "epochs": epochs, "metrics": numbers})
