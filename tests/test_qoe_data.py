"""QoE data: strict loading (hostile input rejected, nothing evaluated), synthetic data, windows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_shared
from workloads.common.storage import LocalStore
from workloads.qoe.data import (
    CellReports,
    DataValidationError,
    ingest,
    load_file,
    load_reports,
    synthetic_reports,
)
from workloads.qoe.features import FeatureSpec, Windows, build, make_windows

GOOD_CELL = {
    "nrCellIdentity": "c1/B13",
    "throughput": 1.5,
    "x": 0.0,
    "y": 0.0,
    "prbMeasReport": {"availPrbDl": 91, "availPrbUl": 91, "measPeriodPrb": 10},
    "pdcpByteMeasReport": {"pdcpBytesUl": 10.0, "pdcpBytesDl": 20.0, "measPeriodPdcpBytes": 10},
}


def _line(cell: dict | None = None, **report: object) -> str:  # type: ignore[type-arg]
    body = {
        "du-id": 1001,
        "measTimeStampRf": "2021-07-02T13:09:28.328",
        "cellMeasReportList": [cell or GOOD_CELL],
    }
    body.update(report)
    return json.dumps({"cellMeasReport": body})


def _with(path: str, value: object) -> dict:  # type: ignore[type-arg]
    cell = json.loads(json.dumps(GOOD_CELL))
    target = cell
    *parents, last = path.split(".")
    for parent in parents:
        target = target[parent]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return cell


_DELETE = object()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            _line(_with("throughput", "12")),
            'line 2: cellMeasReportList[0].throughput: expected a number, got "12"',
        ),
        (
            _line(_with("pdcpByteMeasReport.pdcpBytesDl", _DELETE)),
            "line 2: cellMeasReportList[0].pdcpByteMeasReport.pdcpBytesDl: missing",
        ),
        (
            _line(_with("prbMeasReport.availPrbDl", True)),
            "line 2: cellMeasReportList[0].prbMeasReport.availPrbDl: expected a number, got true",
        ),
        (_line(_with("x", [1, 2])), "line 2: cellMeasReportList[0].x: expected a number, got list"),
        (_line(**{"du-id": "1001"}), 'line 2: cellMeasReport.du-id: expected a number, got "1001"'),
        (
            _line(measTimeStampRf="yesterday"),
            "line 2: cellMeasReport.measTimeStampRf: not an ISO timestamp: 'yesterday'",
        ),
        (
            _line(cellMeasReportList=[]),
            "line 2: cellMeasReport.cellMeasReportList: expected a non-empty list",
        ),
        (
            '{"cellMeasReport": {"du-id": 1001, "throughput": NaN}}',
            "line 2: not valid JSON (NaN is not a number)",
        ),
        ("{not json", "line 2: not valid JSON"),
        ('["a", "list"]', "line 2: expected an object"),
    ],
    ids=[
        "string-number",
        "missing-field",
        "bool",
        "wrong-shape",
        "string-du",
        "bad-time",
        "empty",
        "nan",
        "garbage",
        "not-object",
    ],
)
def test_hostile_records_are_rejected_naming_the_line(line: str, message: str) -> None:
    with pytest.raises(DataValidationError) as caught:
        load_reports([_line(), line, _line()])
    assert str(caught.value).startswith(message)


def test_an_expression_where_a_number_belongs_is_never_evaluated(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    expression = f"__import__('pathlib').Path('{marker}').write_text('x')"
    with pytest.raises(DataValidationError, match=r"throughput: expected a number, got \"__import__"):
        load_reports([_line(_with("throughput", expression))])
    assert not marker.exists()


def test_failed_ingest_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    lines = [_line() for _ in range(100)] + [_line(_with("throughput", "NaN"))]
    with pytest.raises(DataValidationError):
        ingest(lines, store, "datasets/qoe/reports.parquet")
    assert store.list() == [] and not (tmp_path / "store").exists()
    ingest(lines[:100], store, "datasets/qoe/reports.parquet")
    assert store.list() == ["datasets/qoe/reports.parquet"]


def test_synthetic_data_is_deterministic_and_valid() -> None:
    first = list(synthetic_reports(steps=50, seed=3))
    assert first == list(synthetic_reports(steps=50, seed=3))
    assert first != list(synthetic_reports(steps=50, seed=4))
    reports = load_reports(first)
    assert len(reports) == 50 * 8 * 3
    assert set(np.unique(reports.cell.astype(str))) >= {"c1/B2", "c8/N77"}


def test_reports_round_trip_through_parquet() -> None:
    reports = load_reports(synthetic_reports(steps=30))
    again = CellReports.from_parquet(reports.to_parquet())
    assert np.array_equal(again.timestamp_ms, reports.timestamp_ms)
    assert list(again.cell) == list(reports.cell)
    for name, values in reports.values.items():
        assert np.array_equal(again.values[name], values), name


def test_windows_are_exact_and_time_ordered() -> None:
    lines = []
    for step in range(20):
        cell = _with("pdcpByteMeasReport.pdcpBytesDl", float(step * step))
        lines.append(_line(cell, measTimeStampRf=f"2021-07-02T13:00:00.{step * 10:03d}"))
    reports = load_reports(lines)
    spec = FeatureSpec(window=4, horizon=2, features=("pdcp_bytes_dl",), split=(0.5, 0.75))
    windows, cells = make_windows(reports, spec)
    assert cells == ["c1/B13"]
    assert len(windows) == 20 - 4 - 2 + 1
    assert windows.x[0, :, 0].tolist() == [0.0, 1.0, 4.0, 9.0]
    assert windows.y[0] == 25.0  # value at index 3 + 2
    assert windows.last[0] == 9.0 and windows.slope[0] == 5.0
    splits = build(reports, spec)
    assert splits.train.time_ms.max() < splits.validation.time_ms.min()
    assert splits.validation.time_ms.max() < splits.test.time_ms.min()


def test_constant_cells_are_left_out() -> None:
    lines = [
        _line(_with("pdcpByteMeasReport.pdcpBytesDl", 2.56), measTimeStampRf=f"2021-07-02T13:00:00.{i:03d}")
        for i in range(30)
    ]
    with pytest.raises(DataValidationError, match="no active cell"):
        make_windows(load_reports(lines), FeatureSpec())


def test_feature_table_round_trip_and_rejects_non_finite() -> None:
    splits = build(load_reports(synthetic_reports(steps=120)))
    again = Windows.from_parquet(splits.train.to_parquet())
    assert np.array_equal(again.x, splits.train.x) and np.array_equal(again.y, splits.train.y)
    broken = Windows(
        splits.train.x.copy(),
        splits.train.y,
        splits.train.last,
        splits.train.slope,
        splits.train.time_ms,
        splits.train.cell,
    )
    broken.x[0, 0, 0] = np.nan
    with pytest.raises(DataValidationError, match="non-finite"):
        Windows.from_parquet(broken.to_parquet())


def test_real_viavi_reports_load_and_the_constant_cell_is_excluded() -> None:
    path = require_shared("data/qoe/cell.json.gz")
    reports = load_file(path)
    assert len(reports) == 40_515
    splits = build(reports)
    assert "c2/B2" not in splits.active_cells
    assert {"c2/B13", "c13/B13", "c10/N77"} <= set(splits.active_cells)
    assert len(splits.train) > len(splits.test) > 0


def test_truncated_gzip_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "cell.json.gz"
    data = gzip.compress("\n".join(synthetic_reports(steps=20)).encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataValidationError, match=rf"^{path}: truncated gzip stream \(Compressed file ended"):
        load_file(path)
