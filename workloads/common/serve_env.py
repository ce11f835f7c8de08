"""The environment of the Ray processes that run naomi's Serve applications (stdlib only: the
stack program reads it for the RayService containers, the benchmark for its local Ray).

ray 2.60 `serve/_private/constants.py` reads these at import:
- `RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD=0`: the replica runs our (async, short) handlers on
  its own event loop instead of handing every request to a second loop in another thread; on two
  cores that hop costs more than the forward pass (measured: 142 -> 181 req/s with 8 clients, same
  machine and load). Our only blocking work, polling and loading a new model version, runs in the
  follower's own thread (`workloads.common.follow`).
"""

from __future__ import annotations

SERVE_PROCESS_ENV: dict[str, str] = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
