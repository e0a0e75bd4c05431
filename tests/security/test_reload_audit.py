"""Audit verification cannot be fooled, and opening a log never damages a file (hardening §9).

* a cut tail, a dropped, reordered, duplicated or edited record, and a chain
  rewritten without a key are all found once an anchor is given (``--expect-seq``,
  ``--expect-head``, the sink's head file);
* ``--chain`` finds rotated files by their exact names, even for ``audit[prod].jsonl``;
* opening a file that is not a torn record of its own chain never changes a byte
  of it (symlinks are not followed);
* a log deleted or replaced while deciding makes every decision deny
  ``audit_unavailable`` (fused and ordinary path alike) until ``sink.reopen()``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from policylang import Engine
from policylang.cli.main import main
from policylang.runtime.audit import (
    GENESIS,
    AuditError,
    JsonlSink,
    _chain_line,
    read_head,
    rotated_files,
    torn_record,
    verify_chain,
    verify_file,
)

POLICY = """
tool pay { amount: int, to: string }
allow pay when args.amount < 100
deny pay when args.to == "mallory" because "not {args.to}"
"""

TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _records(
    n: int, key: bytes | None = None, start: int = 1, prev: str = GENESIS, salt: str = ""
) -> tuple[list[bytes], list[str]]:
    """n chained lines (as JsonlSink writes them) and their hashes."""
    lines, hashes = [], []
    for i in range(n):
        line, digest = _chain_line(
            {"kind": "test", "i": i, "salt": salt, "text": "é" * (i % 3)}, start + i, prev, key
        )
        lines.append(line.encode("utf-8"))
        hashes.append(digest)
        prev = digest
    return lines, hashes


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


# ---------------------------------------------------------------- anchors


@TMP
@given(n=st.integers(1, 25), cut=st.integers(1, 25), keyed=st.booleans())
def test_a_cut_tail_passes_the_chain_but_never_the_anchor(tmp_path_factory, n, cut, keyed):
    cut = min(cut, n)
    key = b"k" if keyed else None
    path = tmp_path_factory.mktemp("cut") / "audit.jsonl"
    lines, hashes = _records(n, key)
    _write(path, lines[: n - cut])
    assert verify_file(path, key=key).ok  # the chain alone cannot tell
    r = verify_file(path, key=key, head_seq=n, head_hash=hashes[-1])
    assert not r.ok and "missing" in r.message and f"seq {n}" in r.message
    assert not verify_file(path, key=key, head_seq=n).ok
    assert not verify_file(path, key=key, head_hash=hashes[-1]).ok
    assert not verify_chain(path, key=key, head_seq=n, head_hash=hashes[-1]).ok
    _write(path, lines)
    assert verify_file(path, key=key, head_seq=n, head_hash=hashes[-1]).ok
    assert verify_chain(path, key=key, head_seq=n, head_hash=hashes[-1]).ok


def _mutations():
    return st.one_of(
        st.tuples(st.just("drop"), st.integers(0, 30)),
        st.tuples(st.just("swap"), st.integers(0, 30)),
        st.tuples(st.just("duplicate"), st.integers(0, 30)),
        st.tuples(st.just("flip"), st.integers(0, 10**6)),
        st.tuples(st.just("rewrite"), st.integers(0, 30)),  # re-chain from i on, new content
    )


@TMP
@given(n=st.integers(2, 20), mutation=_mutations())
def test_dropped_reordered_edited_or_rewritten_records_fail_against_the_anchor(
    tmp_path_factory, n, mutation
):
    kind, at = mutation
    path = tmp_path_factory.mktemp("mut") / "audit.jsonl"
    lines, hashes = _records(n)
    i = at % n
    out = list(lines)
    if kind == "drop":
        del out[i]
    elif kind == "swap":
        j = (i + 1) % n
        out[i], out[j] = out[j], out[i]
        assume(i != j)
    elif kind == "duplicate":
        out.insert(i + 1, out[i])
    elif kind == "flip":
        data = bytearray(b"".join(out))
        pos = at % len(data)
        assume(data[pos : pos + 1] != b"\n")
        data[pos] ^= 0x01
        out = [bytes(data)]
    else:  # an attacker without the key recomputes the chain from record i on
        prev = hashes[i - 1] if i else GENESIS
        forged, _ = _records(n - i, None, start=i + 1, prev=prev, salt="forged")
        out = out[:i] + forged
    _write(path, out)
    anchor = {"head_seq": n, "head_hash": hashes[-1]}
    r = verify_file(path, expect_seq=0, expect_prev=GENESIS, **anchor)
    assert not r.ok, (kind, i, r.message)
    assert not verify_chain(path, expect_seq=0, expect_prev=GENESIS, **anchor).ok
    if kind != "drop" or i != 0:  # only a dropped first record needs the start anchor too
        assert not verify_file(path, **anchor).ok, (kind, i)


def test_cli_anchors_expect_seq_expect_head_and_head_file(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    lines, hashes = _records(6)
    _write(path, lines[:4])
    assert main(["audit", "verify", str(path)]) == 0
    assert main(["audit", "verify", str(path), "--expect-seq", "6"]) == 1
    assert "2 records at the end are missing" in capsys.readouterr().out
    assert (
        main(["audit", "verify", str(path), "--expect-seq", "4", "--expect-head", hashes[3]]) == 0
    )
    assert (
        main(["audit", "verify", str(path), "--expect-seq", "4", "--expect-head", hashes[2]]) == 1
    )
    assert main(["audit", "verify", str(path), "--expect-head", hashes[5]]) == 1
    capsys.readouterr()
    head = tmp_path / "audit.jsonl.head"
    head.write_text(
        json.dumps({"file": "audit.jsonl", "hash": hashes[5], "kind": "audit_head", "seq": 6})
    )
    assert main(["audit", "verify", str(path)]) == 1  # FILE.head is read by default
    assert "head file" in capsys.readouterr().out
    assert main(["audit", "verify", str(path), "--no-head"]) == 0
    assert main(["audit", "verify", str(path), "--chain"]) == 1
    other = tmp_path / "elsewhere.head"
    other.write_text(head.read_text().replace(hashes[5], hashes[3]).replace('"seq": 6', '"seq": 4'))
    assert main(["audit", "verify", str(path), "--head-file", str(other)]) == 0
    capsys.readouterr()
    for bad in (["--expect-seq", "zero"], ["--expect-seq", "0"], ["--expect-head", "abc"]):
        assert main(["audit", "verify", str(path), *bad]) == 2
    assert "expected" in capsys.readouterr().err
    (tmp_path / "junk.head").write_text("not a head")
    assert main(["audit", "verify", str(path), "--head-file", str(tmp_path / "junk.head")]) == 1
    assert "is not an audit head file" in capsys.readouterr().err
    _write(path, lines[1:4])  # the first record dropped
    assert main(["audit", "verify", str(path), "--no-head"]) == 0
    assert main(["audit", "verify", str(path), "--no-head", "--from-start"]) == 1


def test_the_sink_publishes_its_head_and_refuses_a_log_shorter_than_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    engine = Engine.from_string(POLICY, audit=JsonlSink(path, head=True, key=b"s3cret"))
    for amount in range(7):
        engine.decide("pay", {"amount": amount, "to": "bob"})
    sink = engine.audit
    seq, digest = read_head(path.with_name("audit.jsonl.head"), key=b"s3cret")
    assert (seq, digest) == sink.head() == (7, sink.last_hash)
    sink.close()
    assert main(["audit", "verify", str(path), "--key-file", _keyfile(tmp_path)]) == 0
    data = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(data[:-2]))  # cut the last two records
    assert main(["audit", "verify", str(path), "--key-file", _keyfile(tmp_path)]) == 1
    before = path.read_bytes()
    with pytest.raises(AuditError, match="head"):
        JsonlSink(path, head=True, key=b"s3cret")
    assert path.read_bytes() == before
    head = path.with_name("audit.jsonl.head")
    forged = json.loads(head.read_text())
    forged["seq"] = 5
    head.write_text(json.dumps(forged))  # a forged head does not carry the key's MAC
    with pytest.raises(ValueError, match="not signed"):
        read_head(head, key=b"s3cret")


def _keyfile(tmp_path: Path) -> str:
    f = tmp_path / "key"
    f.write_bytes(b"s3cret\n")
    return str(f)


def test_head_every_publishes_less_often_and_the_anchor_still_holds(tmp_path):
    path = tmp_path / "a.jsonl"
    with JsonlSink(path, head=tmp_path / "a.head", head_every=5) as sink:
        for i in range(12):
            sink.write({"i": i})
        assert read_head(tmp_path / "a.head")[0] == 10
    assert read_head(tmp_path / "a.head")[0] == 12  # and on close
    seq, digest = read_head(tmp_path / "a.head")
    assert verify_file(path, head_seq=seq, head_hash=digest).ok


# ---------------------------------------------------------------- rotations by exact name


@TMP
@given(name=st.text(st.sampled_from("ab[]*?!-_.{}prod"), min_size=1, max_size=12))
def test_rotated_files_are_found_by_exact_name(tmp_path_factory, name):
    assume(name not in (".", "..") and "/" not in name)
    folder = tmp_path_factory.mktemp("rot")
    base = folder / name
    sink = JsonlSink(base, max_bytes=400, backups=10)
    for i in range(12):
        sink.write({"i": i, "pad": "x" * 100})
    sink.close()
    made = sorted(
        (
            p
            for p in folder.iterdir()
            if p.name.startswith(name + ".") and p.name[len(name) + 1 :].isdigit()
        ),
        key=lambda p: -int(p.name.rsplit(".", 1)[1]),
    )
    assert rotated_files(base) == [*made, base]
    assert verify_chain(base).ok
    # decoys a glob would have picked up (or that only look numbered) are never read
    for decoy in ("x" + name + ".1", name + ".01", name + ".1x", name + ".\u00b2", name + ".0"):
        if decoy != name and not (folder / decoy).exists():
            (folder / decoy).write_text("garbage\n")
    assert rotated_files(base) == [*made, base]
    assert verify_chain(base).ok


def test_a_tampered_rotation_of_audit_prod_is_found(tmp_path, capsys):
    base = tmp_path / "audit[prod].jsonl"
    with JsonlSink(base, max_bytes=1000, backups=50) as sink:
        for i in range(20):
            sink.write({"i": i, "pad": "y" * 120})
    (tmp_path / "auditp.jsonl.1").write_text("a decoy the old glob matched\n")
    assert main(["audit", "verify", str(base), "--chain"]) == 0
    assert "20 records verified" in capsys.readouterr().out
    first = tmp_path / "audit[prod].jsonl.1"
    first.write_bytes(first.read_bytes().replace(b'"i":', b'"i": ', 1))
    assert main(["audit", "verify", str(base), "--chain"]) == 1
    assert "audit[prod].jsonl.1" in capsys.readouterr().out


# ---------------------------------------------------------------- opening never damages a file


def verify_file_bytes_result(data: bytes) -> tuple[int, str]:
    lines = data.split(b"\n")[:-1]
    if not lines:
        return 0, GENESIS
    last = json.loads(lines[-1])
    return last["seq"], last["hash"]


def _not_audit_files():
    text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200).map(str.encode)
    near = st.builds(
        lambda n, tail, edit: _near_log(n, tail, edit),
        st.integers(0, 4),
        st.sampled_from(
            [
                b"hello",
                b'{"a":1}',
                b'{"a": 1',
                b'{"seq":1',
                b"\x00\x01",
                b'{"prev":"' + b"1" * 64 + b'",',
                b'{"kind":"x","seq":99,',
            ]
        ),
        st.booleans(),
    )
    return st.one_of(st.binary(max_size=300), text, near)


def _near_log(n: int, tail: bytes, edit: bool) -> bytes:
    """A real chain (perhaps with one record edited) followed by something that is not a torn record."""
    lines, _ = _records(n)
    if edit and lines:
        lines[0] = lines[0].replace(b'"i":0', b'"i":7')
    return b"".join(lines) + tail


@TMP
@given(data=_not_audit_files(), repair=st.booleans())
def test_opening_a_file_that_is_not_an_audit_log_never_changes_it(tmp_path_factory, data, repair):
    path = tmp_path_factory.mktemp("open") / "some.file"
    path.write_bytes(data)
    try:
        sink = JsonlSink(path, repair=repair)
    except AuditError as exc:
        assert str(exc)  # a clear message
        assert path.read_bytes() == data
    else:
        sink.close()
        after = path.read_bytes()
        # it opened: what it kept is an intact chain, and it changed nothing but a torn record
        r = verify_file(path)
        assert r.ok, r.message
        if after != data:
            if after == data + b"\n":  # a whole record of the chain got its newline
                assert r.records == data.count(b"\n") + 1
            else:
                assert data.startswith(after)
                before = verify_file_bytes_result(after)
                assert (
                    torn_record(
                        data[len(after) :], before[0], before[1], None, any_start=not r.records
                    )
                    == "prefix"
                )
    # verify --repair follows the same rule
    path.write_bytes(data)
    r = verify_file(path, repair=True)
    if not r.ok or not r.repaired:
        assert path.read_bytes() == data


@TMP
@given(n=st.integers(0, 6), cut=st.integers(1, 400))
def test_a_torn_record_of_the_chain_is_cut_and_the_chain_goes_on(tmp_path_factory, n, cut):
    path = tmp_path_factory.mktemp("torn") / "audit.jsonl"
    lines, hashes = _records(n + 1)
    torn = lines[-1][: min(cut, len(lines[-1]) - 2)]  # at least its "}" and newline are lost
    path.write_bytes(b"".join(lines[:-1]) + torn)
    with JsonlSink(path) as sink:
        assert sink.seq == n
        sink.write({"after": "crash"})
    assert path.read_bytes().startswith(b"".join(lines[:-1]))
    r = verify_file(path)
    assert r.ok and r.records == n + 1


def test_a_record_missing_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "audit.jsonl"
    lines, _ = _records(3)
    path.write_bytes(b"".join(lines)[:-1])
    with JsonlSink(path) as sink:
        assert sink.seq == 3
        sink.write({"x": 1})
    assert verify_file(path).records == 4


def test_symlinks_are_not_followed_unless_asked(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_bytes(b"do not touch\nno newline at the end")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(AuditError, match="symbolic link"):
        JsonlSink(link)
    assert target.read_bytes() == b"do not touch\nno newline at the end"
    with pytest.raises(AuditError):
        JsonlSink(link, follow_symlinks=True)  # followed, but still not an audit log
    assert target.read_bytes() == b"do not touch\nno newline at the end"
    assert not verify_file(link, repair=True).ok
    assert target.read_bytes() == b"do not touch\nno newline at the end"
    real = tmp_path / "real.jsonl"
    link.unlink()
    link.symlink_to(real)
    with JsonlSink(link, follow_symlinks=True) as sink:
        sink.write({"x": 1})
    assert verify_file(real).records == 1


def test_directories_fifos_and_bad_options_are_refused_at_construction(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(AuditError):
        JsonlSink(tmp_path / "dir")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(AuditError, match="regular file"):
        JsonlSink(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    for bad in (
        {"max_bytes": 0},
        {"max_bytes": -5},
        {"backups": -1},
        {"head_every": 0},
        {"check_every": 0},
        {"key": "text"},
    ):
        with pytest.raises((ValueError, TypeError)):
            JsonlSink(tmp_path / "x.jsonl", **bad)
    assert not (tmp_path / "x.jsonl").exists()


# ---------------------------------------------------------------- deleted or replaced while serving


def _engine(path: Path, fused: bool) -> Engine:
    engine = Engine.from_string(POLICY, audit=JsonlSink(path))
    if not fused:
        assert engine._prepared is not None
        engine._prepared.fused.clear()  # the ordinary path
    return engine


def _gone(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "rename_away":
        path.rename(path.with_name(path.name + ".moved"))
    elif how == "replace":
        other = path.with_name("other")
        other.write_text("")
        os.replace(other, path)
    else:  # a symlink put in its place
        target = path.with_name("target")
        target.write_text("")
        path.unlink()
        path.symlink_to(target)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "ordinary"])
@pytest.mark.parametrize("how", ["delete", "rename_away", "replace", "symlink"])
def test_a_log_deleted_or_replaced_while_deciding_denies_until_reopened(tmp_path, fused, how):
    path = tmp_path / "audit.jsonl"
    engine = _engine(path, fused)
    assert engine.decide("pay", {"amount": 5, "to": "bob"}).effect == "allow"
    _gone(path, how)
    for _ in range(3):
        d = engine.decide("pay", {"amount": 5, "to": "bob"})
        assert (d.effect, d.code) == ("deny", "audit_unavailable"), d.message
        assert "reopen" in d.reasons[0]
    if how == "symlink":
        with pytest.raises(AuditError, match="symbolic link"):
            engine.audit.reopen()  # a link is not followed on reopen either
        assert engine.decide("pay", {"amount": 5, "to": "bob"}).code == "audit_unavailable"
        path.unlink()
    engine.audit.reopen()  # an empty or missing file: the chain goes on in it
    assert engine.decide("pay", {"amount": 5, "to": "bob"}).effect == "allow"
    engine.audit.close()
    files = [path.with_name("audit.jsonl.moved"), path] if how == "rename_away" else [path]
    r = verify_chain(files)
    assert r.ok and r.last_seq == 2, r.message  # the denied calls wrote nothing; no seq is skipped


def test_reopen_refuses_a_file_holding_another_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    engine = _engine(path, True)
    engine.decide("pay", {"amount": 5, "to": "bob"})
    path.unlink()
    lines, _ = _records(3, salt="someone else")
    _write(path, lines)
    with pytest.raises(AuditError, match="another chain"):
        engine.audit.reopen()
    d = engine.decide("pay", {"amount": 5, "to": "bob"})
    assert (d.effect, d.code) == ("deny", "audit_unavailable")
    assert path.read_bytes() == b"".join(lines)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGHUP"), reason="no SIGHUP here")
def test_sighup_reopens_the_log_as_policylang_serve_installs_it(tmp_path):
    import signal
    import time

    from policylang.runtime.audit import reopen_on_signal

    path = tmp_path / "audit.jsonl"
    engine = _engine(path, True)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert reopen_on_signal(engine.audit)
        path.rename(tmp_path / "audit.jsonl.1")  # logrotate moves it away ...
        assert engine.decide("pay", {"amount": 5, "to": "bob"}).code == "audit_unavailable"
        os.kill(os.getpid(), signal.SIGHUP)  # ... and signals the server
        deadline = time.monotonic() + 5
        while engine.decide("pay", {"amount": 5, "to": "bob"}).effect != "allow":
            assert time.monotonic() < deadline, "SIGHUP did not reopen the audit log"
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGHUP, previous)
    engine.audit.close()
    assert verify_chain(path).ok  # the rotated file and the new one are one chain
