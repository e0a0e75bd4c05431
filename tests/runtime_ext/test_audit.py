"""The hash-chained JSON Lines audit sink: concurrency, tamper detection, rotation, crashes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.audit import (
    GENESIS,
    AuditError,
    CallbackSink,
    JsonlSink,
    LoggingSink,
    verify_chain,
    verify_file,
)

REPO = Path(__file__).resolve().parents[2]

POLICY = """
policy audited
default deny
tool pay {
    amount: number
    @secret card: string
}
allow pay when args.amount < 100
"""


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _filled(tmp_path: Path, n: int = 10) -> Path:
    path = tmp_path / "audit.jsonl"
    engine = Engine.from_string(POLICY, audit=JsonlSink(path))
    for i in range(n):
        engine.decide("pay", {"amount": i * 20, "card": "4111111111111111"})
    engine.audit.close()
    return path


def test_eight_threads_sixteen_thousand_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(path)
    engine = Engine.from_string(POLICY, audit=sink)

    def run(t: int) -> None:
        for i in range(2000):
            engine.decide(
                "pay", {"amount": (i + t) % 150, "card": "4111"}, principal={"id": f"p{t}"}
            )

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    sink.close()
    records = [json.loads(line) for line in _lines(path)]
    assert len(records) == 16_000
    assert [r["seq"] for r in records] == list(range(1, 16_001))
    assert len({r["decision_id"] for r in records}) == 16_000
    result = verify_file(path)
    assert result.ok and result.records == 16_000, result.message


def test_secret_parameters_never_reach_the_file(tmp_path):
    path = _filled(tmp_path)
    text = path.read_text()
    assert "4111111111111111" not in text
    assert '"card":"[redacted]"' in text


def test_untouched_file_verifies(tmp_path):
    r = verify_file(_filled(tmp_path))
    assert (r.ok, r.records, r.first_error_line) == (True, 10, None)


@pytest.mark.parametrize(
    "tamper", ["edit", "delete", "swap", "insert", "delete_first", "edit_whitespace"]
)
def test_tampering_is_detected(tmp_path, tamper):
    path = _filled(tmp_path)
    lines = _lines(path)
    if tamper == "edit":
        lines[4] = lines[4].replace(b'"amount":80', b'"amount":10')
        expect = 5
    elif tamper == "edit_whitespace":
        lines[4] = lines[4].replace(b'"amount":80', b'"amount": 80')
        expect = 5
    elif tamper == "delete":
        del lines[4]
        expect = 5
    elif tamper == "delete_first":
        del lines[0]
        expect = (
            2  # the chain now starts at seq 2: accepted alone, but checked below with verify_chain
        )
    elif tamper == "swap":
        lines[3], lines[4] = lines[4], lines[3]
        expect = 4
    else:
        lines.insert(6, lines[2])
        expect = 7
    path.write_bytes(b"".join(lines))
    r = (
        verify_file(path, expect_seq=0, expect_prev=GENESIS)
        if tamper == "delete_first"
        else verify_file(path)
    )
    assert not r.ok
    assert r.first_error_line == (1 if tamper == "delete_first" else expect), r.message
    assert r.records == (r.first_error_line - 1)


def test_single_byte_flips_anywhere_are_detected(tmp_path):
    path = _filled(tmp_path, 3)
    original = path.read_bytes()
    for pos in range(0, len(original), 7):
        if original[pos : pos + 1] == b"\n":
            continue
        data = bytearray(original)
        data[pos] ^= 0x01
        path.write_bytes(bytes(data))
        assert not verify_file(path).ok, pos


def test_torn_last_line_is_reported_and_repaired(tmp_path):
    path = _filled(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data + data.splitlines(keepends=True)[0][:57])
    r = verify_file(path)
    assert not r.ok and r.first_error_line == 11 and "torn" in r.message and r.records == 10
    r = verify_file(path, repair=True)
    assert r.ok and r.repaired and r.records == 10
    assert path.read_bytes() == data


def test_reopening_continues_the_chain_and_cuts_a_torn_tail(tmp_path):
    path = _filled(tmp_path, 3)
    with open(path, "ab") as f:
        f.write(b'{"half a rec')
    engine = Engine.from_string(POLICY, audit=JsonlSink(path))
    engine.decide("pay", {"amount": 1, "card": "x"})
    engine.audit.close()
    r = verify_file(path)
    assert r.ok and r.records == 4 and r.last_seq == 4


def test_second_writer_is_refused(tmp_path):
    path = tmp_path / "a.jsonl"
    with JsonlSink(path), pytest.raises(AuditError):
        JsonlSink(path)


def test_rotation_keeps_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(path, max_bytes=4000, backups=50)
    engine = Engine.from_string(POLICY, audit=sink)
    for i in range(60):
        engine.decide("pay", {"amount": i, "card": "x"})
    sink.close()
    rotated = sorted(tmp_path.glob("audit.jsonl.*"))
    assert len(rotated) >= 3
    for f in [path, *rotated]:
        assert f.stat().st_size <= 4000
    newest_old = json.loads(_lines(tmp_path / "audit.jsonl.1")[-1])
    first_new = json.loads(_lines(path)[0])
    assert first_new["prev"] == newest_old["hash"] and first_new["seq"] == newest_old["seq"] + 1
    r = verify_chain(path)
    assert r.ok and r.records == 60, r.message
    # a rotated file alone verifies, noting where its chain starts
    assert verify_file(path).ok and "chain starts at seq" in verify_file(path).message
    # dropping a middle file breaks the chain
    (tmp_path / "audit.jsonl.2").unlink()
    assert not verify_chain(path).ok


def test_hmac_key(tmp_path):
    path = tmp_path / "a.jsonl"
    with JsonlSink(path, key=b"k1") as sink:
        sink.write({"x": 1})
        sink.write({"x": 2})
    assert verify_file(path, key=b"k1").ok
    assert not verify_file(path, key=b"k2").ok
    assert not verify_file(path).ok


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from policylang.runtime.audit import JsonlSink
    sink = JsonlSink(sys.argv[1])
    i = 0
    while True:
        i += 1
        sink.write({{"kind": "test", "i": i, "pad": "x" * (i % 3000)}})
""")


def test_sigkill_while_writing_leaves_a_verifiable_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script), str(path)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not path.exists() or path.stat().st_size < 2_000_000):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = verify_file(path)
    complete = path.read_bytes().count(b"\n")
    assert complete > 100
    if not r.ok:  # only a torn last line is acceptable
        assert "torn" in r.message and r.records == complete
        r = verify_file(path, repair=True)
    assert r.ok and r.records == complete, r.message
    # and the writer can carry on the chain after the crash
    with JsonlSink(path) as sink:
        sink.write({"kind": "test", "i": -1})
    assert verify_file(path).records == complete + 1


def test_failing_sink_turns_allow_into_deny(tmp_path):
    def broken(record):
        raise OSError("disk full")

    engine = Engine.from_string(POLICY, audit=CallbackSink(broken))
    d = engine.decide("pay", {"amount": 1, "card": "x"})
    assert (d.effect, d.code) == ("deny", "audit_unavailable")


def test_logging_and_callback_sinks(caplog):
    got = []
    Engine.from_string(POLICY, audit=CallbackSink(got.append)).decide(
        "pay", {"amount": 1, "card": "4111"}
    )
    assert got and got[0]["args"]["card"] == "[redacted]"
    with caplog.at_level("INFO", logger="policylang.audit"):
        Engine.from_string(POLICY, audit=LoggingSink()).decide("pay", {"amount": 1, "card": "4111"})
    assert '"effect":"allow"' in caplog.text and "4111" not in caplog.text


def test_the_audit_record_carries_exactly_the_decision_as_pydantic_serialises_it():
    from policylang import Engine
    from policylang.runtime.engine import audit_record

    engine = Engine.from_string(
        "tool t { x: int, @secret card: string? }\nprincipal { id: string }\n"
        'limit t to 5 per 1m by principal.id\nallow t because "ok {args.x}"\n'
        'confirm t when args.x > 5 because "big"\n'
    )
    for x in (1, 9):
        d = engine.decide(
            "t",
            args={"x": x, "card": "4111"},
            principal={"id": "u"},
            context={"now": "2025-06-11T10:00:00Z"},
        )
        record = audit_record(d, engine._prepared, {"x": x, "card": "4111"}, {"id": "u"}, None)
        for key, value in d.model_dump(mode="json").items():
            assert record[key] == value, key
        assert record["args"] == {"x": x, "card": "[redacted]"}


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.timezones()
        | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-23 * 60, 23 * 60)),
    )
)
def test_audit_times_are_written_as_pydantic_writes_them(at: datetime) -> None:
    from policylang.runtime.engine import _iso, _iso_general

    assert _iso(at) == _iso_general(at)
