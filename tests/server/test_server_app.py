"""The decision server through Starlette's TestClient: endpoints, errors, auth, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from policylang import Decision, Engine  # noqa: E402
from policylang.server import (  # noqa: E402
    Metrics,
    PolicyWatcher,
    check_bind,
    create_app,
    is_loopback,
    read_token,
)
from policylang.server.openapi import openapi_document  # noqa: E402

POLICY = """
policy shop version "2.0"
default deny
tool payments.send { amount: number, to: string }
tool email.send { to: list<string>, body: string }
allow payments.send when args.amount <= 100
confirm payments.send when args.amount > 100 && args.amount <= 1000
limit email.send to 2 per 1h
allow email.send
"""


@pytest.fixture
def engine() -> Engine:
    return Engine.from_string(POLICY)


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return TestClient(create_app(engine))


def decide(client: TestClient, body: object, **kw: object) -> tuple[int, dict]:
    r = client.post("/v1/decide", json=body, **kw)  # type: ignore[arg-type]
    return r.status_code, r.json()


def test_decide_allow_confirm_deny(client: TestClient) -> None:
    assert (
        decide(client, {"tool": "payments.send", "args": {"amount": 5, "to": "bob"}})[1]["effect"]
        == "allow"
    )
    status, d = decide(client, {"tool": "payments.send", "args": {"amount": 500, "to": "bob"}})
    assert (status, d["effect"], d["code"]) == (200, "confirm", "confirm")
    status, d = decide(
        client,
        {
            "tool": "payments.send",
            "args": {"amount": "5", "to": "bob"},
            "principal": None,
            "context": {},
        },
    )
    assert (status, d["effect"], d["code"]) == (200, "deny", "invalid_request")
    assert "amount" in d["reasons"][0]
    Decision.model_validate(d)  # the JSON is a Decision


def test_batch_in_order_and_bounded(engine: Engine) -> None:
    client = TestClient(create_app(engine, max_batch=3))
    reqs = [{"tool": "payments.send", "args": {"amount": a, "to": "x"}} for a in (1, 500, 5000)]
    r = client.post("/v1/decide/batch", json={"requests": reqs})
    assert r.status_code == 200
    assert [d["effect"] for d in r.json()["decisions"]] == ["allow", "confirm", "deny"]
    r = client.post("/v1/decide/batch", json={"requests": reqs + reqs[:1]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "batch_too_large"
    r = client.post("/v1/decide/batch", json={"requests": [reqs[0], {"tool": 3}]})
    assert r.status_code == 422 and "requests[1].tool" in r.json()["error"]["message"]
    assert client.post("/v1/decide/batch", json={"requests": []}).json() == {"decisions": []}


@pytest.mark.parametrize(
    "body, headers, status, code",
    [
        (b"{", {"content-type": "application/json"}, 400, "bad_json"),
        (b"", {"content-type": "application/json"}, 400, "bad_json"),
        (b'{"tool": NaN}', {"content-type": "application/json"}, 400, "bad_json"),
        (b"\xff\xfe", {"content-type": "application/json"}, 400, "bad_json"),
        (b"[" * 100_000, {"content-type": "application/json"}, 400, "bad_json"),
        (b'{"tool": "x"}', {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        (b'{"tool": "x"}', {}, 415, "unsupported_media_type"),
        (b"[]", {"content-type": "application/json"}, 422, "invalid_body"),
        (b"{}", {"content-type": "application/json"}, 422, "invalid_body"),
        (b'{"tool": ""}', {"content-type": "application/json"}, 422, "invalid_body"),
        (b'{"tool": "a", "args": []}', {"content-type": "application/json"}, 422, "invalid_body"),
        (b'{"tool": "a", "extra": 1}', {"content-type": "application/json"}, 422, "invalid_body"),
        (
            b'{"tool": "a", "args": {"n": 1' + b"0" * 5000 + b"}}",
            {"content-type": "application/json; charset=utf-8"},
            400,
            "bad_json",
        ),
    ],
)
def test_bad_requests_get_clear_json_errors(
    client: TestClient, body: bytes, headers: dict, status: int, code: str
) -> None:
    r = client.post("/v1/decide", content=body, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]


def test_body_limit(engine: Engine) -> None:
    client = TestClient(create_app(engine, max_body_bytes=1000))
    big = {"tool": "email.send", "args": {"to": ["a"], "body": "x" * 2000}}
    r = client.post("/v1/decide", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: the limit is enforced while streaming
        yield b'{"tool": "email.send", "args": {"body": "'
        for _ in range(50):
            yield b"x" * 100
        yield b'"}}'

    r = client.post("/v1/decide", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get("/v1/decide")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_policies_health_ready(client: TestClient, engine: Engine) -> None:
    body = client.get("/v1/policies").json()
    assert body == {
        "policies": [
            {
                "name": "shop",
                "version": "2.0",
                "hash": engine.policy_hash,
                "tools": ["email.send", "payments.send"],
            }
        ]
    }
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    empty = TestClient(create_app(Engine.empty()))
    assert empty.get("/readyz").status_code == 503
    assert empty.get("/v1/policies").json() == {"policies": []}
    assert decide(empty, {"tool": "x"})[1]["code"] == "no_policy"


def test_token_required_everywhere_but_healthz(engine: Engine) -> None:
    client = TestClient(create_app(engine, token="s3cret"))
    assert client.get("/healthz").status_code == 200
    for method, path in [
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/v1/policies"),
        ("get", "/openapi.json"),
        ("post", "/v1/decide"),
        ("post", "/v1/decide/batch"),
    ]:
        r = getattr(client, method)(path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = getattr(client, method)(path, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
    ok = {"Authorization": "Bearer s3cret"}
    assert client.get("/readyz", headers=ok).status_code == 200
    assert (
        decide(client, {"tool": "payments.send", "args": {"amount": 1, "to": "b"}}, headers=ok)[0]
        == 200
    )
    # auth comes before body checks: no information for an unauthenticated caller
    assert (
        client.post("/v1/decide", content=b"{", headers={"content-type": "text/plain"}).status_code
        == 401
    )


def test_bind_and_token_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "10.1.2.3", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ValueError, match="token"):
            check_bind(host, None)
        check_bind(host, "tok")
    monkeypatch.setenv("PL_TOKEN", " abc \n")
    assert read_token(env="PL_TOKEN") == "abc"
    monkeypatch.setenv("PL_EMPTY", "")
    with pytest.raises(ValueError, match="PL_EMPTY"):
        read_token(env="PL_EMPTY")
    f = tmp_path / "tok"
    f.write_text("xyz\n")
    assert read_token(file=f) == "xyz"
    with pytest.raises(ValueError, match="cannot read"):
        read_token(file=tmp_path / "missing")
    assert read_token() is None


def test_metrics_exposition(client: TestClient) -> None:
    for amount in (1, 2, 500):
        decide(client, {"tool": "payments.send", "args": {"amount": amount, "to": "b"}})
    for _ in range(3):
        decide(client, {"tool": "email.send", "args": {"to": ["a"], "body": "hi"}})
    decide(client, {"tool": "no.such.tool" * 3})
    text = client.get("/metrics").text
    assert 'policylang_decisions_total{tool="payments.send",effect="allow"} 2' in text
    assert 'policylang_decisions_total{tool="payments.send",effect="confirm"} 1' in text
    assert 'policylang_decisions_total{tool="(undeclared)",effect="deny"} 1' in text
    assert 'policylang_limit_hits_total{tool="email.send",limit="<string>:8"} 1' in text
    assert "policylang_decision_duration_seconds_count 7" in text
    assert 'policylang_decision_duration_seconds_bucket{le="+Inf"} 7' in text
    assert "policylang_reloads_total 0" in text and "policylang_reload_errors_total 0" in text
    assert 'policylang_policy_info{name="shop",version="2.0"' in text
    for line in text.splitlines():  # every sample line is `name{labels} value`
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_internal_error_is_a_deny_not_a_500() -> None:
    class Broken:
        compiled = policy_name = policy_version = policy_hash = None
        tools: list[str] = []

        def decide(self, *a: object, **k: object) -> Decision:
            raise RuntimeError("boom")

    client = TestClient(create_app(Broken()), raise_server_exceptions=False)
    status, d = decide(client, {"tool": "x"})
    assert status == 200 and d["effect"] == "deny" and d["code"] == "internal_error"


def test_openapi_describes_every_route_and_the_decision(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.0")
    routes = {r.path for r in client.app.routes}  # type: ignore[attr-defined]
    assert set(doc["paths"]) == routes
    documented = set(doc["components"]["schemas"]["Decision"]["properties"])
    assert documented == set(Decision.model_fields)
    assert doc == json.loads(
        json.dumps(openapi_document(max_batch=1000, max_body_bytes=1 << 20, auth=False))
    )


def test_watcher_reloads_and_keeps_old_policy_on_error(tmp_path: Path) -> None:
    f = tmp_path / "p.policy"
    f.write_text('policy w version "1"\ntool t { n: int }\nallow t when args.n < 5\n')
    engine = Engine.from_path(f)
    metrics = Metrics()
    watcher = PolicyWatcher(engine, f, metrics, interval=0.05)
    assert watcher.check() is None
    f.write_text('policy w version "2"\ntool t { n: int }\nallow t when args.n < 50\n')
    import os

    os.utime(f, ns=(1, 10**18))
    assert watcher.check() is True and engine.policy_version == "2"
    f.write_text('policy w version "3"\nallow t when args.n <')
    os.utime(f, ns=(1, 2 * 10**18))
    assert watcher.check() is False
    assert engine.policy_version == "2"  # the old policy keeps serving
    assert engine.decide("t", args={"n": 10}).effect == "allow"
    assert (metrics.reloads, metrics.reload_errors) == (1, 1)
