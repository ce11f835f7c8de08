"""Sliding-window features over every active cell, vectorized, with a time-ordered split.

For each cell whose target series actually varies (NAOMI trained on a constant cell), windows of
`window` consecutive measurements of the chosen features predict the target `horizon` steps
after the window. Windows come from `numpy.lib.stride_tricks.sliding_window_view` (no Python
loop over windows). Splits are by time (train before validation before test), so no future
leaks into training. Stored as Parquet: the windows as one fixed-size list column of float32.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from workloads.qoe.data import NUMERIC_FIELDS, CellReports, DataValidationError

FEATURE_NAMES = tuple(name for name, _, _ in NUMERIC_FIELDS)


@dataclass(frozen=True)
class FeatureSpec:
    window: int = 10
    horizon: int = 1
    features: tuple[str, ...] = ("pdcp_bytes_dl", "pdcp_bytes_ul", "avail_prb_dl", "throughput")
    target: str = "pdcp_bytes_dl"
    min_std: float = 1e-6  # a cell whose target never moves has nothing to learn
    split: tuple[float, float] = (0.7, 0.85)  # train / validation / test cut points in time

    def __post_init__(self) -> None:
        if self.window < 2 or self.horizon < 1:
            raise ValueError("FeatureSpec: window >= 2 and horizon >= 1")
        unknown = sorted((set(self.features) | {self.target}) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"FeatureSpec: unknown features {unknown}; known: {', '.join(FEATURE_NAMES)}")
        if not 0 < self.split[0] < self.split[1] < 1:
            raise ValueError("FeatureSpec.split must be increasing fractions in (0, 1)")


@dataclass(frozen=True)
class Windows:
    x: np.ndarray  # (n, window, features) float32
    y: np.ndarray  # (n,) float32
    last: np.ndarray  # (n,) float32: the target's last observed value (naive baseline)
    slope: np.ndarray  # (n,) float32: last step's change of the target (linear baseline)
    time_ms: np.ndarray  # (n,) int64: timestamp of the predicted point
    cell: np.ndarray  # (n,) object

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def take(self, mask: np.ndarray) -> Windows:
        return Windows(
            self.x[mask], self.y[mask], self.last[mask], self.slope[mask], self.time_ms[mask], self.cell[mask]
        )

    def to_parquet(self) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        _, window, width = self.x.shape
        flat = pa.FixedSizeListArray.from_arrays(
            pa.array(self.x.reshape(-1), type=pa.float32()), window * width
        )
        cells = pa.array(self.cell.astype(str)).dictionary_encode()
        table = pa.table(
            {
                "x": flat,
                "y": self.y,
                "last": self.last,
                "slope": self.slope,
                "time_ms": self.time_ms,
                "cell": cells,
            },
            metadata={"window": str(window), "features": str(width)},
        )
        sink = io.BytesIO()
        # Measured floats barely compress: snappy, and dictionary encoding only for cell names,
        # write and read ~10x faster than zstd with default dictionaries (benchmarks/qoe_features.py).
        pq.write_table(table, sink, compression="snappy", use_dictionary=["cell"])
        return sink.getvalue()

    @classmethod
    def from_parquet(cls, data: bytes) -> Windows:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        meta = table.schema.metadata or {}
        try:
            window, width = int(meta[b"window"]), int(meta[b"features"])
        except (KeyError, ValueError):
            raise DataValidationError("feature table lacks window/features metadata") from None
        values = table["x"].combine_chunks().flatten().to_numpy()
        if values.size != table.num_rows * window * width or not np.isfinite(values).all():
            raise DataValidationError("feature table: windows have the wrong shape or non-finite values")
        return cls(
            x=values.reshape(table.num_rows, window, width).astype(np.float32),
            y=table["y"].to_numpy().astype(np.float32),
            last=table["last"].to_numpy().astype(np.float32),
            slope=table["slope"].to_numpy().astype(np.float32),
            time_ms=table["time_ms"].to_numpy().astype(np.int64),
            cell=_strings(table["cell"]),
        )


def _strings(column: Any) -> np.ndarray:
    """A (possibly dictionary-encoded) string column as an object array, without per-row Python."""
    import pyarrow as pa

    array = column.combine_chunks()
    if pa.types.is_dictionary(array.type):
        dictionary = np.asarray(array.dictionary.to_pylist(), dtype=object)
        return dictionary[array.indices.to_numpy(zero_copy_only=False)]
    return np.asarray(array.to_pylist(), dtype=object)


@dataclass(frozen=True)
class Splits:
    train: Windows
    validation: Windows
    test: Windows
    active_cells: tuple[str, ...]
    cut_ms: tuple[int, int] = field(default=(0, 0))


def _rows_by_cell(reports: CellReports) -> dict[str, np.ndarray]:
    """Row indices of each cell, ordered by time (one sort for the whole table)."""
    names, codes = np.unique(reports.cell.astype(str), return_inverse=True)
    order = np.lexsort((reports.timestamp_ms, codes))
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return {str(name): order[bounds[i] : bounds[i + 1]] for i, name in enumerate(names)}


def active_cells(reports: CellReports, spec: FeatureSpec) -> list[str]:
    target = reports.values[spec.target]
    return [
        cell for cell, rows in _rows_by_cell(reports).items() if float(np.std(target[rows])) > spec.min_std
    ]


def make_windows(reports: CellReports, spec: FeatureSpec) -> tuple[Windows, list[str]]:
    """All windows of all active cells, ordered by time within each cell."""
    by_cell = _rows_by_cell(reports)
    target = reports.values[spec.target].astype(np.float32)
    cells = [cell for cell, rows in by_cell.items() if float(np.std(target[rows])) > spec.min_std]
    columns = np.stack([reports.values[name] for name in spec.features], axis=1).astype(np.float32)
    parts: list[Windows] = []
    for cell in cells:
        rows = by_cell[cell]
        count = rows.size - spec.window - spec.horizon + 1
        if count <= 0:
            continue
        series = columns[rows]
        windows = sliding_window_view(series, spec.window, axis=0)[:count].transpose(0, 2, 1)
        target_series = target[rows]
        last_index = np.arange(count) + spec.window - 1
        last = target_series[last_index]
        slope = last - target_series[last_index - 1]
        label_index = last_index + spec.horizon
        parts.append(
            Windows(
                x=windows,  # a strided view: the one copy happens in the final concatenate
                y=target_series[label_index],
                last=last,
                slope=slope,
                time_ms=reports.timestamp_ms[rows][label_index],
                cell=np.full(count, cell, dtype=object),
            )
        )

    if not parts:
        raise DataValidationError(f"no active cell has more than {spec.window + spec.horizon} measurements")
    return Windows(
        x=np.concatenate([p.x for p in parts]),
        y=np.concatenate([p.y for p in parts]),
        last=np.concatenate([p.last for p in parts]),
        slope=np.concatenate([p.slope for p in parts]),
        time_ms=np.concatenate([p.time_ms for p in parts]),
        cell=np.concatenate([p.cell for p in parts]),
    ), cells


def split_by_time(windows: Windows, spec: FeatureSpec, cells: list[str]) -> Splits:
    """Train on the earliest windows, validate on the next, test on the latest."""
    times = np.unique(windows.time_ms)
    first = int(times[int(len(times) * spec.split[0])])
    second = int(times[int(len(times) * spec.split[1])])
    return Splits(
        train=windows.take(windows.time_ms < first),
        validation=windows.take((windows.time_ms >= first) & (windows.time_ms < second)),
        test=windows.take(windows.time_ms >= second),
        active_cells=tuple(cells),
        cut_ms=(first, second),
    )


def build(reports: CellReports, spec: FeatureSpec | None = None) -> Splits:
    spec = spec or FeatureSpec()
    windows, cells = make_windows(reports, spec)
    return split_by_time(windows, spec, cells)
