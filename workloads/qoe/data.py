"""O-RAN / VIAVI cell measurement reports: a strict streaming loader and a synthetic generator.

Input is gzip JSON lines as the VIAVI RIC-Test simulator writes them (see
`../shared/data/qoe/README.md`): an optional `{"metadata": ...}` line, then one
`{"cellMeasReport": {...}}` per line, each carrying a list of per-cell reports. Every value is
type-checked while streaming; the first bad record stops the load with an error naming the line
and the field, and nothing is ever evaluated (a string where a number belongs is an error, not
code). A file that cannot be read (truncated or corrupt gzip, not UTF-8, permissions) is an error
naming the file and what is wrong. Anything hostile (nesting past the parser's depth, integers of
thousands of digits, numbers beyond float range) is a `DataValidationError`, never another
exception (fuzzed in tests/test_fuzz.py). The result is a typed columnar table, stored as Parquet.

The embedded default is `synthetic_reports`: deterministic data in the same schema with daily
load patterns, bursts, idle cells and anomalies, so every pipeline runs offline.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np

from workloads.common.storage import Store

NUMERIC_FIELDS: tuple[tuple[str, str | None, str], ...] = (
    # (column, parent object, field)
    ("throughput", None, "throughput"),
    ("x", None, "x"),
    ("y", None, "y"),
    ("avail_prb_dl", "prbMeasReport", "availPrbDl"),
    ("avail_prb_ul", "prbMeasReport", "availPrbUl"),
    ("meas_period_prb", "prbMeasReport", "measPeriodPrb"),
    ("pdcp_bytes_ul", "pdcpByteMeasReport", "pdcpBytesUl"),
    ("pdcp_bytes_dl", "pdcpByteMeasReport", "pdcpBytesDl"),
    ("meas_period_pdcp_bytes", "pdcpByteMeasReport", "measPeriodPdcpBytes"),
)
COLUMNS = ("du_id", "timestamp_ms", "cell", *(name for name, _, _ in NUMERIC_FIELDS))
MAX_LINE_BYTES = 1_000_000
MAX_DU_ID = 2**63 - 1  # stored as int64


class DataValidationError(ValueError):
    """A record that does not match the schema; names the line and the field."""


@dataclass(frozen=True)
class CellReports:
    """One row per (timestamp, cell): typed numpy columns."""

    du_id: np.ndarray  # int64
    timestamp_ms: np.ndarray  # int64, milliseconds since the epoch (UTC)
    cell: np.ndarray  # object (str)
    values: dict[str, np.ndarray]  # float64 per numeric column

    def __len__(self) -> int:
        return int(self.timestamp_ms.shape[0])

    def to_parquet(self) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "du_id": self.du_id,
                "timestamp_ms": self.timestamp_ms,
                "cell": self.cell.astype(str),
                **{name: self.values[name] for name, _, _ in NUMERIC_FIELDS},
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue()

    @classmethod
    def from_parquet(cls, data: bytes) -> CellReports:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise DataValidationError(f"parquet table lacks columns: {', '.join(missing)}")
        return cls(
            du_id=table["du_id"].to_numpy().astype(np.int64),
            timestamp_ms=table["timestamp_ms"].to_numpy().astype(np.int64),
            cell=np.asarray(table["cell"].to_pylist(), dtype=object),
            values={name: table[name].to_numpy().astype(np.float64) for name, _, _ in NUMERIC_FIELDS},
        )


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = json.dumps(value)[:40] if not isinstance(value, (dict, list)) else type(value).__name__
        raise DataValidationError(f"{where}: expected a number, got {shown}")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range (hundreds of digits)
        raise DataValidationError(
            f"{where}: expected a finite number, got an integer beyond float range"
        ) from None
    if not math.isfinite(number):
        raise DataValidationError(f"{where}: expected a finite number, got {value}")
    return number


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataValidationError(f"{where}: expected an object")
    return value


def _timestamp_ms(value: Any, where: str) -> int:
    if not isinstance(value, str):
        raise DataValidationError(f"{where}: expected an ISO timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise DataValidationError(f"{where}: not an ISO timestamp: {value[:40]!r}") from None
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.replace(tzinfo=None) - (parsed.utcoffset() or timedelta(0))
    except OverflowError:  # e.g. year 1 with a positive offset
        raise DataValidationError(f"{where}: timestamp out of range: {value[:40]!r}") from None
    return int((parsed - datetime(1970, 1, 1)).total_seconds() * 1000)


def iter_rows(lines: Iterable[str | bytes]) -> Iterator[tuple[int, int, str, tuple[float, ...]]]:
    """Validated rows (du_id, timestamp_ms, cell, numbers...) from JSON lines; raises on the first bad one."""
    for number, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise DataValidationError(f"line {number}: longer than {MAX_LINE_BYTES} bytes")
        try:
            text = raw.decode("utf-8", errors="strict") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise DataValidationError(f"line {number}: not UTF-8 text") from None
        if not text.strip():
            continue
        try:
            record = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise DataValidationError(f"line {number}: not valid JSON (nested too deeply)") from None
        except ValueError as error:  # JSONDecodeError, NaN/Infinity, integers over the digit limit
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataValidationError(f"line {number}: not valid JSON ({message})") from None
        record = _object(record, f"line {number}")
        if "metadata" in record and len(record) == 1:
            continue
        report = _object(record.get("cellMeasReport"), f"line {number}: cellMeasReport")
        du = _number(report.get("du-id"), f"line {number}: cellMeasReport.du-id")
        if not du.is_integer() or not 0 <= du <= MAX_DU_ID:
            raise DataValidationError(
                f"line {number}: cellMeasReport.du-id: expected an integer from 0 to {MAX_DU_ID}, got {du}"
            )
        stamp = _timestamp_ms(report.get("measTimeStampRf"), f"line {number}: cellMeasReport.measTimeStampRf")
        cells = report.get("cellMeasReportList")
        if not isinstance(cells, list) or not cells:
            raise DataValidationError(
                f"line {number}: cellMeasReport.cellMeasReportList: expected a non-empty list"
            )
        for index, cell in enumerate(cells):
            where = f"line {number}: cellMeasReportList[{index}]"
            cell = _object(cell, where)
            name = cell.get("nrCellIdentity")
            if not isinstance(name, str) or not 0 < len(name) <= 64:
                raise DataValidationError(f"{where}.nrCellIdentity: expected a cell name string")
            values = []
            for _, parent, field in NUMERIC_FIELDS:
                container = cell if parent is None else _object(cell.get(parent), f"{where}.{parent}")
                path = f"{where}.{field}" if parent is None else f"{where}.{parent}.{field}"
                if field not in container:
                    raise DataValidationError(f"{path}: missing")
                values.append(_number(container[field], path))
            yield int(du), stamp, name, tuple(values)


def _reject_constant(name: str) -> None:
    raise DataValidationError(f"{name} is not a number")


def load_reports(stream: IO[bytes] | Iterable[bytes | str]) -> CellReports:
    """Load and validate a whole JSON-lines stream; nothing is returned unless every line is valid."""
    du_ids: list[int] = []
    stamps: list[int] = []
    cells: list[str] = []
    numbers: list[tuple[float, ...]] = []
    for du, stamp, cell, values in iter_rows(stream):
        du_ids.append(du)
        stamps.append(stamp)
        cells.append(cell)
        numbers.append(values)
    if not numbers:
        raise DataValidationError("no cell measurement reports in the input")
    matrix = np.asarray(numbers, dtype=np.float64)
    return CellReports(
        du_id=np.asarray(du_ids, dtype=np.int64),
        timestamp_ms=np.asarray(stamps, dtype=np.int64),
        cell=np.asarray(cells, dtype=object),
        values={name: matrix[:, i] for i, (name, _, _) in enumerate(NUMERIC_FIELDS)},
    )


def load_file(path: Path) -> CellReports:
    """A `.json.gz` (or plain `.json`/`.jsonl`) file of reports; DataValidationError naming the
    file when it cannot be read (missing, truncated or corrupt gzip, permissions) or is invalid."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            return load_reports(stream)
    except DataValidationError as error:
        raise DataValidationError(f"{path}: {error}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataValidationError(f"{path}: {unreadable(error)}") from None


def read_reports(raw: bytes, name: str) -> CellReports:
    """Reports from the bytes of an object named `name` (gzip when it ends in `.gz`)."""
    stream: IO[bytes] = gzip.GzipFile(fileobj=io.BytesIO(raw)) if name.endswith(".gz") else io.BytesIO(raw)
    try:
        return load_reports(stream)
    except DataValidationError as error:
        raise DataValidationError(f"{name}: {error}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataValidationError(f"{name}: {unreadable(error)}") from None


def unreadable(error: BaseException) -> str:
    """What is wrong with a file that cannot be read, in a few words."""
    if isinstance(error, EOFError):
        return f"truncated gzip stream ({error})"
    if isinstance(error, gzip.BadGzipFile):
        return f"not a gzip file ({error})"
    if isinstance(error, zlib.error):
        return f"corrupt gzip data ({error})"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, IsADirectoryError):
        return "is a directory"
    return f"unreadable ({type(error).__name__}: {error})"


# --- synthetic data in the same schema ------------------------------------------------------


def synthetic_reports(
    *,
    steps: int = 2000,
    cells_per_du: int = 3,
    dus: int = 8,
    seed: int = 7,
    start: str = "2021-07-02T13:00:00",
) -> Iterator[str]:
    """JSON lines like the VIAVI simulator's: load cycles, bursts, idle cells, anomalies (deterministic)."""
    rng = np.random.default_rng(seed)
    layers = ("B2", "B13", "N77")[:cells_per_du]
    start_time = datetime.fromisoformat(start)
    n_cells = dus * cells_per_du
    active = rng.random(n_cells) < 0.6
    base = rng.uniform(300, 3000, n_cells)
    period = rng.uniform(150, 600, n_cells)
    phase = rng.uniform(0, 2 * np.pi, n_cells)
    t = np.arange(steps)[:, None]
    load = base * (1 + 0.6 * np.sin(2 * np.pi * t / period + phase))
    load += rng.normal(0, 0.05, (steps, n_cells)) * base
    bursts = rng.random((steps, n_cells)) < 0.01
    load += bursts * rng.uniform(1, 3, (steps, n_cells)) * base
    for _ in range(3):
        load[1:] = 0.7 * load[1:] + 0.3 * load[:-1]
    anomalies = rng.random(n_cells) < 0.15
    anomaly_start = rng.integers(steps // 4, 3 * steps // 4, n_cells)
    for cell in np.flatnonzero(anomalies):
        load[anomaly_start[cell] : anomaly_start[cell] + steps // 20, cell] *= 0.1
    load = np.where(active[None, :], np.maximum(load, 0), 0.0)
    prb = np.where(active[None, :], np.clip(273 - load / base.max() * 200, 5, 273), 273).round()
    metadata = {"metadata": {"simulator": {"PRODUCT": "naomi synthetic", "VERSION": "1"}, "seed": seed}}
    yield json.dumps(metadata)
    for step in range(steps):
        stamp = (start_time + timedelta(milliseconds=10 * step)).isoformat(timespec="milliseconds")
        for du in range(dus):
            reports = []
            for layer_index, layer in enumerate(layers):
                cell = du * cells_per_du + layer_index
                dl = float(round(load[step, cell], 2))
                reports.append(
                    {
                        "nrCellIdentity": f"c{du + 1}/{layer}",
                        "throughput": round(dl / 1000, 4),
                        "x": float(du),
                        "y": float(layer_index),
                        "prbMeasReport": {
                            "availPrbDl": int(prb[step, cell]),
                            "availPrbUl": int(prb[step, cell]),
                            "measPeriodPrb": 10,
                        },
                        "pdcpByteMeasReport": {
                            "pdcpBytesUl": round(dl * 0.3, 2),
                            "pdcpBytesDl": dl,
                            "measPeriodPdcpBytes": 10,
                        },
                    }
                )
            yield json.dumps(
                {
                    "cellMeasReport": {
                        "du-id": 1001 + du,
                        "measTimeStampRf": stamp,
                        "cellMeasReportList": reports,
                    }
                }
            )


def ingest(lines: Iterable[bytes | str] | IO[bytes], store: Store, key: str) -> CellReports:
    """Validate every record, then store the table as Parquet: all or nothing."""
    reports = load_reports(lines)
    store.put(key, reports.to_parquet())
    return reports
