"""One parser view of a request body: whatever other parsers might read differently is a 400
(duplicate keys, any encoding but UTF-8, a BOM, NaN/Infinity, overflowing numbers, escaped lone
surrogates, deep nesting); Host and Origin checks; batch items that cannot be written."""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from policylang import Decision, Effect, Engine  # noqa: E402
from policylang.server import MAX_DEPTH, Metrics, create_app, parse_json  # noqa: E402
from policylang.server.app import ApiError  # noqa: E402

POLICY = "policy p\ntool t { n: int }\nallow t when args.n < 5\n"
ENGINE = Engine.from_string(POLICY)
CLIENT = TestClient(create_app(ENGINE))
JSON = {"Content-Type": "application/json"}

KEY = st.text(st.characters(codec="utf-8"), max_size=6)
LEAF = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=5)
VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEY, inner, max_size=3),
    max_leaves=8,
)


def rejected(raw: bytes) -> str:
    with pytest.raises(ApiError) as info:
        parse_json(raw)
    assert info.value.status == 400 and info.value.code == "bad_json"
    return info.value.message


def with_duplicate(obj: dict[str, Any], key: str, first: Any, second: Any) -> str:
    """``obj`` written as JSON with ``key`` twice in its outermost object."""
    inner = json.dumps(obj)[1:-1]
    pairs = [f"{json.dumps(key)}:{json.dumps(first)}", f"{json.dumps(key)}:{json.dumps(second)}"]
    return "{" + ",".join([*pairs, inner] if inner else pairs) + "}"


@given(
    obj=st.dictionaries(KEY, VALUE, max_size=3), key=KEY, a=VALUE, b=VALUE, nest=st.integers(0, 3)
)
def test_any_duplicate_key_at_any_depth_is_400(
    obj: dict[str, Any], key: str, a: Any, b: Any, nest: int
) -> None:
    text = with_duplicate(obj, key, a, b)
    for _ in range(nest):
        text = '{"x": [' + text + "]}"
    assert "appears twice" in rejected(text.encode())


@given(
    value=st.dictionaries(KEY, VALUE, min_size=1, max_size=4),
    codec=st.sampled_from(
        ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-8-sig"]
    ),
)
def test_any_encoding_but_utf8_is_400(value: dict[str, Any], codec: str) -> None:
    text = json.dumps(value, ensure_ascii=False)
    message = rejected(text.encode(codec))
    assert "UTF-8" in message
    assert parse_json(text.encode("utf-8")) == value  # the same text in UTF-8 is fine


@given(
    prefix=st.binary(max_size=4),
    bad=st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]),
)
def test_invalid_utf8_bytes_are_400(prefix: bytes, bad: bytes) -> None:
    assume(b"\x00" not in prefix)
    raw = b'{"tool": "t", "args": {"s": "' + prefix.replace(b'"', b"") + bad + b'"}}'
    assert "not UTF-8" in rejected(raw)


@given(high=st.integers(0xD800, 0xDFFF), where=st.sampled_from(["key", "value"]))
def test_escaped_lone_surrogates_are_400(high: int, where: str) -> None:
    esc = f"\\u{high:04x}"
    raw = (f'{{"{esc}": 1}}' if where == "key" else f'{{"a": ["x{esc}"]}}').encode()
    assert "lone surrogate" in rejected(raw)


def test_a_surrogate_pair_is_fine() -> None:
    assert parse_json(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_nan_infinity_and_overflow_are_400(number: str) -> None:
    rejected(f'{{"tool": "t", "args": {{"n": {number}}}}}'.encode())


@given(depth=st.integers(MAX_DEPTH + 1, 3000), kind=st.sampled_from(["[]", "{}"]))
def test_nesting_beyond_the_bound_is_400(depth: int, kind: str) -> None:
    raw = "[" * depth + "]" * depth if kind == "[]" else '{"a":' * depth + "1" + "}" * depth
    assert "deep" in rejected(raw.encode())


def test_nesting_at_the_bound_is_fine() -> None:
    assert parse_json(("[" * MAX_DEPTH + "]" * MAX_DEPTH).encode()) is not None


def test_over_http_the_errors_are_clear_400s() -> None:
    for raw in [
        codecs.BOM_UTF8 + b'{"tool": "t"}',
        '{"tool": "t"}'.encode("utf-16"),
        b'{"tool": "t", "tool": "u"}',
        b'{"tool": "t", "args": {"n": NaN}}',
    ]:
        r = CLIENT.post("/v1/decide", content=raw, headers=JSON)
        assert r.status_code == 400, raw
        assert r.json()["error"]["code"] == "bad_json"
    r = CLIENT.post("/v1/decide/batch", content=b'{"requests": [], "requests": []}', headers=JSON)
    assert r.status_code == 400


# ------------------------------------------------------------ Host and Origin


LOCAL = TestClient(create_app(ENGINE), base_url="http://127.0.0.1:8181")  # a loopback socket


def call(client: TestClient, headers: dict[str, str]) -> int:
    return client.post(
        "/v1/decide", json={"tool": "t", "args": {"n": 1}}, headers={**JSON, **headers}
    ).status_code


@given(
    name=st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    port=st.none() | st.integers(1, 65535),
)
def test_any_foreign_host_on_a_loopback_socket_is_403(name: str, port: int | None) -> None:
    assume(name not in ("localhost",) and not name.startswith("127."))
    host = name if port is None else f"{name}:{port}"
    assert call(LOCAL, {"Host": host}) == 403


@given(
    host=st.sampled_from(
        ["127.0.0.1", "127.8.9.10", "localhost", "localhost.", "[::1]", "LocalHost"]
    ),
    port=st.none() | st.integers(1, 65535),
)
def test_loopback_hosts_with_any_port_are_answered(host: str, port: int | None) -> None:
    assert call(LOCAL, {"Host": host if port is None else f"{host}:{port}"}) == 200


@given(
    origin=st.from_regex(r"https?://[a-z]{1,10}\.[a-z]{2,5}(:[0-9]{1,5})?", fullmatch=True)
    | st.just("null")
)
def test_any_cross_origin_page_is_refused(origin: str) -> None:
    assert call(LOCAL, {"Origin": origin}) == 403
    assert call(CLIENT, {"Origin": origin}) == 403  # on any socket


def test_same_origin_and_fetch_metadata() -> None:
    assert call(LOCAL, {"Origin": "http://127.0.0.1:8181"}) == 200
    assert call(LOCAL, {"Sec-Fetch-Site": "cross-site"}) == 403
    assert call(LOCAL, {"Sec-Fetch-Site": "same-origin"}) == 200


def test_a_non_loopback_socket_is_not_host_checked_unless_told() -> None:
    assert call(CLIENT, {"Host": "decisions.example"}) == 200  # bound elsewhere: a token guards it
    strict = TestClient(create_app(ENGINE, allowed_hosts=["decisions.example"]))
    assert call(strict, {"Host": "decisions.example:443"}) == 200
    assert call(strict, {"Host": "other.example"}) == 403


def test_bad_limits_fail_at_construction() -> None:
    for kw in (
        {"request_timeout": 0},
        {"body_timeout": float("inf")},
        {"max_headers": 0},
        {"max_batch": -1},
        {"allowed_hosts": [""]},
    ):
        with pytest.raises(ValueError):
            TestClient(create_app(ENGINE, **kw))  # type: ignore[arg-type]


# ------------------------------------------------------------ batch items that cannot be written


class Unwritable:
    """An engine whose decision for tool 'bad' has a lone surrogate in its message."""

    def __init__(self) -> None:
        self.inner = Engine.from_string(POLICY)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def decide(self, tool: str, **kw: Any) -> Decision:
        d = self.inner.decide("t", **kw)
        if tool == "bad":
            d = Decision(
                effect=Effect.ALLOW, tool="bad\ud800", code="allowed", message="bad\ud800 allowed"
            )
        return d


def test_an_unwritable_batch_item_is_that_items_error_and_counted_as_sent() -> None:
    metrics = Metrics()
    client = TestClient(create_app(Unwritable(), metrics=metrics))  # type: ignore[arg-type]
    items = [
        {"tool": "t", "args": {"n": 1}},
        {"tool": "bad", "args": {"n": 1}},
        {"tool": "t", "args": {"n": 9}},
    ]
    r = client.post("/v1/decide/batch", json={"requests": items})
    assert r.status_code == 200
    got = [(d["effect"], d["code"]) for d in r.json()["decisions"]]
    assert got == [("allow", "allowed"), ("deny", "internal_error"), ("deny", "default_deny")]
    assert "could not be written as JSON" in r.json()["decisions"][1]["message"]
    assert sum(metrics.decisions.values()) == 3
    assert metrics.codes["internal_error"] == 1 and metrics.codes["allowed"] == 1  # what was sent
    single = client.post("/v1/decide", json=items[1])
    assert single.status_code == 200 and single.json()["code"] == "internal_error"
