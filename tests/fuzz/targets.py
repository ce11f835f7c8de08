"""Fuzz targets (atheris, coverage-guided): the data loader and every request parser.

Each target feeds the fuzzer's bytes to one parser; the parser's own validation error is the only
acceptable failure (any other exception is a finding: atheris prints it and exits non-zero). Run
one target for a bounded time, seeded from `corpus(<target>)`:

    python -m tests.fuzz.targets qoe-data -max_total_time=3 <corpus folder>
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["workloads"]):
    from workloads.common.serving import parse_feedback, parse_tensor
    from workloads.mnist.serving import DigitsInfo, parse_images
    from workloads.qoe.data import DataValidationError, read_reports, synthetic_reports
    from workloads.qoe.serving import ModelInfo, parse_windows
    from workloads.triggers.receiver import parse_payload

QOE = ModelInfo(name="qoe", version="1", window=10, features=4)
DIGITS = DigitsInfo(name="mnist", version="1", height=8, width=8)


def qoe_data(data: bytes) -> None:
    """The VIAVI loader over plain JSON lines, gzip of fuzzed lines, and raw (corrupt) gzip."""
    mode, body = (data[0] % 3, data[1:]) if data else (0, b"")
    name, raw = {0: ("f.json", body), 1: ("f.json.gz", gzip.compress(body)), 2: ("f.json.gz", body)}[mode]
    with contextlib.suppress(DataValidationError):
        read_reports(raw, name)


def _leaf(fdp: atheris.FuzzedDataProvider, depth: int) -> object:
    """A JSON value where a number belongs: numbers of every size (integers far past float range,
    floats past float32, NaN/inf), strings, bools, null, or deeper nesting."""
    kind = fdp.ConsumeIntInRange(0, 7)
    if kind == 0:
        return fdp.ConsumeInt(fdp.ConsumeIntInRange(1, 600))  # up to ~1,400 digits
    if kind in (1, 2):
        return fdp.ConsumeFloat()  # includes inf, nan, 1e39, subnormals
    if kind == 3:
        return fdp.ConsumeUnicodeNoSurrogates(8)
    if kind == 4:
        return fdp.ConsumeBool()
    if kind == 5 and depth < 40:
        return [_leaf(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 6:
        return None
    return fdp.ConsumeRegularFloat()


def _shaped(fdp: atheris.FuzzedDataProvider, shape: tuple[int, ...]) -> object:
    """Nested lists of about `shape` (sizes sometimes off by one) with fuzzed leaves."""
    if not shape:
        return _leaf(fdp, 0)
    size = shape[0] + fdp.ConsumeIntInRange(-1, 1) if fdp.ConsumeBool() else shape[0]
    return [_shaped(fdp, shape[1:]) for _ in range(max(size, 0))]


def _requests(
    parse: Callable[[bytes], object],
    key: str | None = None,
    shape: tuple[int, ...] = (),
    beside: dict[str, object] | None = None,
) -> Callable[[bytes], None]:
    """Raw bytes, or (structure-aware, input starting with `S`) `{key: nested lists of about
    `shape` with hostile leaves, **beside}`."""

    def target(data: bytes) -> None:
        body = data
        if key is not None and data[:1] == b"S":
            fdp = atheris.FuzzedDataProvider(data[1:])
            body = json.dumps({key: _shaped(fdp, shape), **(beside or {})}).encode()  # NaN/Infinity too
        with contextlib.suppress(ValueError):  # the parsers' validation error (BodyTooLarge is one)
            parse(body)

    return target


TARGETS: dict[str, Callable[[bytes], None]] = {
    "qoe-data": qoe_data,
    "qoe-windows": _requests(lambda body: parse_windows(body, QOE), "windows", (2, 10, 4)),
    "mnist-images": _requests(lambda body: parse_images(body, DIGITS), "images", (1, 8, 8)),
    "model-server-inputs": _requests(
        lambda body: parse_tensor(body, "inputs", (None, 3), ("rows", "items")), "inputs", (2, 3)
    ),
    "feedback": _requests(parse_feedback, "actuals", (2,), {"ids": ["a", "b"]}),
    "alertmanager": _requests(parse_payload),
}


def seeds(target: str) -> list[bytes]:
    """Valid inputs the fuzzer starts from (so it explores past the first bracket)."""
    lines = list(synthetic_reports(steps=2, dus=1))
    window = [[1.5, 2, 3, 4]] * 10
    png = (
        (Path(__file__).parent / "digit.png").read_bytes()
        if (Path(__file__).parent / "digit.png").exists()
        else b""
    )
    return {
        "qoe-data": [b"\x00" + "\n".join(lines).encode(), b"\x01" + lines[1].encode()],
        "qoe-windows": [json.dumps({"windows": [window]}).encode(), b"S" + bytes(range(256))],
        "mnist-images": [
            json.dumps({"images": [[[0, 255] * 4] * 8]}).encode(),
            b"S" + bytes(range(256)),
            *([png] if png else []),
        ],
        "model-server-inputs": [json.dumps({"inputs": [[1, 2.5, -3e38]]}).encode(), b"S" + bytes(range(256))],
        "feedback": [json.dumps({"ids": ["abc"], "actuals": [1.0]}).encode(), b"S" + bytes(range(256))],
        "alertmanager": [
            json.dumps(
                {
                    "version": "4",
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {"naomi_trigger": "t", "alertname": "a"},
                            "annotations": {"summary": "s"},
                            "fingerprint": "f",
                            "startsAt": "2026-01-01T00:00:00Z",
                        }
                    ],
                }
            ).encode()
        ],
    }[target]


def main() -> None:
    target = sys.argv[1]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
