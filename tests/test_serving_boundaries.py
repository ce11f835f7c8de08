"""The model servers' input validators at their boundaries (issue 17, mutation testing): strict JSON,
tensor shapes (exact sizes, 1..MAX_ROWS rows), the float32 range (inclusive), feedback bodies and
the signed feedback ids (forged, truncated, expired, non-finite). Exact messages: callers see them.
Pure functions and a fake request; no server."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from workloads.common import serving
from workloads.common.serving import (
    FLOAT32_MAX,
    MAX_FEEDBACK,
    MAX_ROWS,
    BodyTooLarge,
    FeedbackIds,
    check_numbers,
    check_tensor,
    feedback_key,
    parse_feedback,
    parse_tensor,
    read_body,
    shown,
    strict_json,
)


def _run(coroutine: Any) -> Any:
    """Run on a loop of its own: `asyncio.run` would leave the thread without a current loop
    (set_event_loop(None)), which the Pulumi SDK in later tests of the session needs."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _message(call: Any, *args: Any) -> str:
    with pytest.raises(ValueError) as raised:
        call(*args)
    return str(raised.value)


# --- strict JSON ------------------------------------------------------------------------------


def test_strict_json_parses_json() -> None:
    assert strict_json(b'{"a": [1, 2.5, null, true]}') == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b"", "malformed JSON: Expecting value: line 1 column 1 (char 0)"),
        (b"\xff", "malformed JSON: utf-8"),  # UnicodeDecodeError's first argument: terse, as it is
        (b"[NaN]", "malformed JSON: NaN is not allowed in JSON input"),
        (b"[-Infinity]", "malformed JSON: -Infinity is not allowed in JSON input"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON: nested too deeply"),
    ],
)
def test_strict_json_refuses(body: bytes, message: str) -> None:
    assert _message(strict_json, body) == message


def test_strict_json_refuses_huge_integers() -> None:
    assert _message(strict_json, b"1" * 5000).startswith("malformed JSON: Exceeds the limit (4300 digits)")


# --- shown ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (None, "null"),
        (0, "0"),
        (-12, "-12"),
        (10**29, "1" + "0" * 29),
        (-(10**29), "-1" + "0" * 29),
        (10**30, "an integer of more than 30 digits"),
        (10**59, "an integer of more than 30 digits"),
        (10**60, "an integer of more than 30 digits"),
        (10**400, "an integer of more than 30 digits"),
        (1.5, "1.5"),
        ("x" * 40, json.dumps("x" * 30)),
        ("a\nb", '"a\\nb"'),
        ([1], "a list"),
        ({"a": 1}, "an object"),
        (b"x", "bytes"),
    ],
)
def test_shown(value: Any, text: str) -> None:
    assert shown(value) == text


# --- numbers and tensors ----------------------------------------------------------------------


def test_the_float32_range_is_inclusive() -> None:
    check_numbers([FLOAT32_MAX, -FLOAT32_MAX, 0, 1.5, -3], "x")
    assert (
        _message(check_numbers, [0, FLOAT32_MAX * 1.0000001], "x")
        == f"x[1]: {FLOAT32_MAX * 1.0000001!r} is outside the float32 range (|x| <= 3.403e+38)"
    )
    assert (
        _message(check_numbers, [-(10**39)], "x")
        == "x[0]: an integer of more than 30 digits is outside the float32 range (|x| <= 3.403e+38)"
    )
    assert _message(check_numbers, [float("nan")], "y").startswith("y[0]: nan is outside the float32 range")


@pytest.mark.parametrize("item", [True, False, "1", None, [1], {"a": 1}])
def test_only_numbers_are_numbers(item: Any) -> None:
    assert _message(check_numbers, [1, item], "v") == f"v: expected finite numbers, got {shown(item)}"


def test_tensor_shapes() -> None:
    units = ("rows", "steps", "features")
    check_tensor([[[1, 2]]], (None, 1, 2), "w", units)
    check_tensor([[[1, 2]]] * MAX_ROWS, (None, 1, 2), "w", units)
    rows = f"w: expected a list of 1 to {MAX_ROWS} rows"
    assert _message(check_tensor, [], (None, 1, 2), "w", units) == rows
    assert _message(check_tensor, [[[1, 2]]] * (MAX_ROWS + 1), (None, 1, 2), "w", units) == rows
    assert _message(check_tensor, {"a": 1}, (None, 1, 2), "w", units) == rows
    assert (
        _message(check_tensor, [[[1, 2]], [[1]]], (None, 1, 2), "w", units) == "w[1][0]: expected 2 features"
    )
    assert _message(check_tensor, [[[1, 2], [3, 4]]], (None, 1, 2), "w", units) == "w[0]: expected 1 steps"
    assert _message(check_tensor, [[[1, 2, 3]]], (None, 1, 2), "w", units) == "w[0][0]: expected 2 features"
    assert _message(check_tensor, [[7]], (None, 1, 2), "w", units) == "w[0][0]: expected 2 features"
    assert _message(check_tensor, [[[1, "a"]]], (None, 1, 2), "w", units) == (
        'w[0][0]: expected finite numbers, got "a"'
    )
    assert _message(check_tensor, (1, 2), (2,), "v", ("numbers",)) == "v: expected 2 numbers"
    assert _message(check_tensor, [[1e39]], (None, 1), "v", ("rows", "n")) == (
        "v[0][0]: 1e+39 is outside the float32 range (|x| <= 3.403e+38)"
    )


def test_parse_tensor() -> None:
    array = parse_tensor(b'{"x": [[1, 2.5]]}', "x", (None, 2), ("rows", "numbers"))
    assert array.dtype == np.float32 and array.tolist() == [[1.0, 2.5]]
    expected = 'expected {"x": [...]} and nothing else'
    for body in (b"[]", b'{"x": [[1, 2]], "y": 1}', b'{"y": [[1, 2]]}', b"{}"):
        assert _message(parse_tensor, body, "x", (None, 2), ("rows", "numbers")) == expected
    assert _message(parse_tensor, b'{"x": [[1]]}', "x", (None, 2), ("rows", "numbers")) == (
        "x[0]: expected 2 numbers"
    )
    assert _message(parse_tensor, b'{"x": [NaN]}', "x", (None,), ("rows",)) == (
        "malformed JSON: NaN is not allowed in JSON input"
    )


# --- feedback bodies --------------------------------------------------------------------------


def _feedback(ids: Any, actuals: Any) -> bytes:
    return json.dumps({"ids": ids, "actuals": actuals}).encode()


def test_parse_feedback() -> None:
    assert parse_feedback(_feedback(["a", "b" * 200], [1, 2.5])) == (["a", "b" * 200], [1.0, 2.5])
    ids = [str(i) for i in range(MAX_FEEDBACK)]
    assert parse_feedback(_feedback(ids, [0] * MAX_FEEDBACK))[0] == ids
    shape = 'expected {"ids": [...], "actuals": [...]}'
    for body in (b"[]", b'{"ids": []}', b'{"ids": [], "actuals": [], "x": 1}'):
        assert _message(parse_feedback, body) == shape
    wrong_ids = f"ids: expected a list of 1 to {MAX_FEEDBACK} prediction ids"
    for ids_value in ([], [*ids, "x"], "a", [1], ["b" * 201]):
        assert _message(parse_feedback, _feedback(ids_value, [0])) == wrong_ids
    assert _message(parse_feedback, _feedback(["a", "b"], [1])) == "actuals: expected 2 numbers"
    assert _message(parse_feedback, _feedback(["a"], [True])) == "actuals: expected finite numbers, got true"
    assert _message(parse_feedback, _feedback(["a"], "1")) == "actuals: expected 1 numbers"


# --- the request body limit -------------------------------------------------------------------


class FakeRequest:
    def __init__(self, chunks: list[bytes], length: str | None = None) -> None:
        self.headers = {} if length is None else {"content-length": length}
        self.chunks = chunks

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _read(request: FakeRequest, limit: int) -> bytes:
    return _run(read_body(request, limit))  # type: ignore[arg-type]


def test_the_body_limit_is_inclusive_declared_and_streamed() -> None:
    assert _read(FakeRequest([b"ab", b"cd"], "4"), 4) == b"abcd"
    assert _read(FakeRequest([b"ab", b"cd"]), 4) == b"abcd"
    assert _read(FakeRequest([b"abcd"], "not-a-number"), 4) == b"abcd"
    for request in (FakeRequest([b"x"], "5"), FakeRequest([b"abc", b"de"]), FakeRequest([b"x"], "9" * 16)):
        with pytest.raises(BodyTooLarge) as raised:
            _read(request, 4)
        assert str(raised.value) == "body larger than 4 bytes"
    # a 15-digit declaration is compared by value, not refused for its length
    assert _read(FakeRequest([b"x"], "000000000000001"), 10**15) == b"x"


def test_the_default_body_limit_is_a_million_bytes() -> None:
    assert _run(read_body(FakeRequest([b"x"], "1000000"))) == b"x"  # type: ignore[arg-type]
    with pytest.raises(BodyTooLarge) as raised:
        _run(read_body(FakeRequest([b"x"], "1000001")))  # type: ignore[arg-type]
    assert str(raised.value) == "body larger than 1000000 bytes"


# --- feedback ids -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_feedback_key_comes_from_the_environment_or_is_random(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAOMI_FEEDBACK_KEY", "shared")
    assert feedback_key() == b"shared"
    monkeypatch.setenv("NAOMI_FEEDBACK_KEY", "")
    first, second = feedback_key(), feedback_key()
    assert len(first) == 32 and first != second
    monkeypatch.delenv("NAOMI_FEEDBACK_KEY")
    assert len(feedback_key()) == 32


def test_feedback_ids_round_trip_until_they_expire() -> None:
    clock = Clock()
    ids = FeedbackIds(b"key", ttl_seconds=60, clock=clock)
    token = ids.issue("7", 1.25)
    assert "=" not in token and ids.read(token) == ("7", 1.25)
    assert ids.issue("7", 1.25) != token  # a nonce: two predictions of one value differ
    clock.now += 60
    assert ids.read(token) == ("7", 1.25)  # the ttl is inclusive
    clock.now += 0.002
    assert ids.read(token) is None


def test_the_default_ttl_is_seven_days() -> None:
    clock = Clock()
    ids = FeedbackIds(b"key", clock=clock)
    token = ids.issue("1", 0.0)
    clock.now += 7 * 86_400
    assert ids.read(token) == ("1", 0.0)
    clock.now += 1
    assert ids.read(token) is None


def test_the_version_is_kept_to_64_bytes() -> None:
    ids = FeedbackIds(b"key", clock=Clock())
    assert ids.read(ids.issue("v" * 100, 2.0)) == ("v" * 64, 2.0)


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_forged_truncated_and_foreign_ids_are_refused() -> None:
    clock = Clock()
    ids = FeedbackIds(b"key", clock=clock)
    token = ids.issue("3", 4.5)
    raw = _raw(token)
    assert FeedbackIds(b"other", clock=clock).read(token) is None
    tampered = bytearray(raw)
    tampered[0] ^= 1
    assert ids.read(_token(bytes(tampered))) is None
    tampered = bytearray(raw)
    tampered[-1] ^= 1
    assert ids.read(_token(bytes(tampered))) is None
    assert ids.read("!!!!") is None
    assert ids.read("a") is None
    assert ids.read("") is None
    assert ids.read(_token(raw[:-1])) is None


def test_an_id_exactly_as_long_as_the_header_and_signature_is_read() -> None:
    import hashlib
    import hmac

    clock = Clock()
    payload = struct.pack(">dQ6s", 2.0, int(clock.now * 1000), b"nonce!")  # an empty version
    signature = hmac.new(b"key", payload, hashlib.sha256).digest()[:16]
    assert FeedbackIds(b"key", clock=clock).read(_token(payload + signature)) == ("", 2.0)
    short = payload[:-1]
    signature = hmac.new(b"key", short, hashlib.sha256).digest()[:16]
    assert FeedbackIds(b"key", clock=clock).read(_token(short + signature)) is None


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_signed_non_finite_prediction_is_refused(value: float) -> None:
    ids = FeedbackIds(b"key", clock=Clock())
    assert ids.read(ids.issue("1", value)) is None


def test_an_id_issued_in_the_future_is_read() -> None:
    clock = Clock()
    ids = FeedbackIds(b"key", ttl_seconds=10, clock=clock)
    token = ids.issue("1", 1.0)
    clock.now -= 1000
    assert ids.read(token) == ("1", 1.0)


def test_shown_never_converts_a_huge_integer() -> None:
    # str() of an int over 4,300 digits raises (CPython's int_max_str_digits); shown must not.
    assert shown(10**5000) == "an integer of more than 30 digits"
    assert shown(-(10**5000)) == "an integer of more than 30 digits"


@pytest.mark.parametrize("version", ["", "1", "12", "123", "1234"])
def test_ids_of_every_padding_length_round_trip(version: str) -> None:
    ids = FeedbackIds(b"key", clock=Clock())
    token = ids.issue(version, 0.5)
    assert "=" not in token and ids.read(token) == (version, 0.5)


def test_a_version_cut_inside_a_character_reads_with_a_replacement() -> None:
    ids = FeedbackIds(b"key", clock=Clock())
    version = "a" + "é" * 40  # 81 bytes: the 64-byte cut falls inside an é
    assert ids.read(ids.issue(version, 1.0)) == ("a" + "é" * 31 + "\ufffd", 1.0)


def test_the_id_is_unpadded_urlsafe_base64_of_payload_and_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    import hmac

    monkeypatch.setattr(serving.secrets, "token_bytes", lambda n: b"\x01" * n)
    clock = Clock()
    ids = FeedbackIds(b"key", clock=clock)

    def expected(version: str) -> str:
        payload = struct.pack(">dQ6s", 0.5, int(clock.now * 1000), b"\x01" * 6) + version.encode()
        signature = hmac.new(b"key", payload, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode()

    # an id that needs no padding and ends in "X": only padding is ever stripped
    version = next(str(i) for i in range(10_000) if expected(str(i)).endswith("X") and len(str(i)) % 3 == 1)
    assert ids.issue(version, 0.5) == expected(version)
    assert ids.read(expected(version)) == (version, 0.5)


def test_a_declared_length_over_15_digits_is_refused_whatever_the_limit() -> None:
    with pytest.raises(BodyTooLarge):
        _read(FakeRequest([b"x"], "1" + "0" * 15), 10**17)
    assert _read(FakeRequest([b"x"], "1" + "0" * 14), 10**17) == b"x"
