"""Hot reload cannot be fooled (hardening §9, state integrity: reload of a truncated file).

One watcher (``policylang.runtime.watch.PolicyWatcher``) serves ``Engine.watch`` and the
server. Whatever happens to the files — atomic and in-place writes, truncation,
half-written files finished while the watcher reads, bursts, deletes, brief
vanishing during an editor's save, garbage — the engine always holds a whole policy
that equals a fresh load of some complete version on disk, a vanished file never
shrinks the set, dropped rules are reported by name, and the watcher never dies.
"""

from __future__ import annotations

import ast as pyast
import logging
import math
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import policylang
from policylang import Engine
from policylang.errors import PolicyLoadError
from policylang.runtime import watch
from policylang.runtime.watch import Outcome, PolicyChangingError, PolicyWatcher, read_stable

NS = range(0, 12)


def a_text(ks: tuple[int, ...]) -> str:
    rules = "".join(f"rule deny_a{k}: deny t when args.n == {k}\n" for k in ks)
    return f'policy w version "{",".join(map(str, ks))}"\ntool t {{ n: int }}\nallow t when args.n < 50\n{rules}'


def b_text(ks: tuple[int, ...]) -> str:
    return "".join(f'deny t when args.n == {k} because "b{k}"\n' for k in ks) or "# none\n"


TEXTS: dict[str, Callable[[tuple[int, ...]], str]] = {"a.policy": a_text, "b.policy": b_text}


class Disk:
    """The policy folder, and the writes still 'in flight' when the watcher waits."""

    def __init__(self, root: Path):
        self.root = root
        self.pending: deque[Callable[[], None]] = deque()
        self.clock = 0.0
        self.tick = 10**18

    def _bump(self, name: str) -> None:
        p = self.root / name
        if p.exists():
            self.tick += 10**9  # every change is visible to the poll, even within one mtime tick
            os.utime(p, ns=(self.tick, self.tick))

    def put(self, name: str, data: bytes, atomic: bool = True) -> None:
        p = self.root / name
        if atomic:
            tmp = self.root / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, p)
        else:
            with open(p, "wb") as f:
                f.write(data)
        self._bump(name)

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)

    def sleep(self, seconds: float) -> None:
        """The watcher's wait: a concurrent writer gets one step done meanwhile."""
        self.clock += seconds
        if self.pending:
            self.pending.popleft()()

    def patched(self) -> Any:
        return mock.patch.multiple(watch, _sleep=self.sleep, _monotonic=lambda: self.clock)


ks_st = st.lists(st.integers(0, 9), max_size=3, unique=True).map(lambda x: tuple(sorted(x)))
name_st = st.sampled_from(sorted(TEXTS))
event_st = st.one_of(
    st.tuples(st.just("write"), name_st, ks_st),
    st.tuples(st.just("inplace"), name_st, ks_st),
    st.tuples(st.just("truncate"), name_st, st.floats(0, 1)),
    st.tuples(st.just("halfwrite"), name_st, ks_st, st.floats(0, 1)),
    st.tuples(st.just("burst"), name_st, st.lists(ks_st, min_size=2, max_size=6)),
    st.tuples(st.just("delete"), name_st),
    st.tuples(st.just("vanish"), name_st, ks_st),  # an editor: delete, then the new file appears
    st.tuples(st.just("garbage"), name_st),
)


def apply(disk: Disk, event: tuple[Any, ...]) -> None:
    kind, name = event[0], event[1]
    p = disk.root / name
    if kind == "write":
        disk.put(name, TEXTS[name](event[2]).encode())
    elif kind == "inplace":
        disk.put(name, TEXTS[name](event[2]).encode(), atomic=False)
    elif kind == "truncate":
        if p.exists():
            data = p.read_bytes()
            disk.put(name, data[: math.floor(len(data) * event[2])], atomic=False)
    elif kind == "halfwrite":
        full = TEXTS[name](event[2]).encode()
        disk.put(name, full[: math.floor(len(full) * event[3])], atomic=False)
        disk.pending.append(lambda: disk.put(name, full, atomic=False))
    elif kind == "burst":
        disk.put(name, TEXTS[name](event[2][0]).encode())
        for ks in event[2][1:]:
            disk.pending.append(lambda ks=ks: disk.put(name, TEXTS[name](ks).encode()))
    elif kind == "delete":
        disk.delete(name)
    elif kind == "vanish" and not p.exists():
        disk.put(name, TEXTS[name](event[2]).encode())
    elif kind == "vanish":
        disk.delete(name)
        disk.pending.append(lambda: disk.put(name, TEXTS[name](event[2]).encode()))
    else:
        disk.put(name, b"deny t when args.n ==\n")


def fresh(root: Path) -> Engine | None:
    try:
        return Engine.from_path(root)
    except PolicyLoadError:
        return None


def decisions(engine: Engine) -> list[str]:
    return [engine.decide("t", {"n": n}).effect.value for n in NS]


def deny_ks(engine: Engine) -> set[str]:
    """Names of the deny rules, as a reader of the files would name them."""
    out = set()
    for r in engine.compiled.policy.rules:  # type: ignore[union-attr]
        if r.effect == "deny":
            out.add(r.name or watch._label("rule", r).split(" at ")[0])
    return out


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    max_examples=min(settings().max_examples, 40),
)
@given(start_a=ks_st, start_b=ks_st, events=st.lists(event_st, min_size=1, max_size=7))
def test_any_sequence_of_file_events_leaves_a_whole_last_good_policy(
    tmp_path_factory, start_a, start_b, events
):
    root = tmp_path_factory.mktemp("policy")
    disk = Disk(root)
    disk.put("a.policy", a_text(start_a).encode())
    disk.put("b.policy", b_text(start_b).encode())
    engine = Engine.from_path(root)
    expected = fresh(root)
    assert expected is not None
    serving_files = {"a.policy", "b.policy"}
    warnings: list[watch.ReloadReport] = []
    errors: list[Exception] = []
    watcher = PolicyWatcher(
        engine, root, 3600, on_error=errors.append, on_warning=warnings.append, start=False
    )
    with disk.patched():
        for event in events:
            apply(disk, event)
            outcome = watcher.poll()
            assert isinstance(outcome, Outcome)
            assert not disk.pending, f"the watcher reloaded before the writers were done: {events}"
            on_disk = {p.name for p in root.glob("*.policy")}
            candidate = fresh(root)
            before = expected
            if candidate is not None and serving_files <= on_disk:
                expected, serving_files = candidate, on_disk
            # whole: exactly a fresh load of a complete version, never a mix or a half file
            assert engine.policy_hash == expected.policy_hash, (event, outcome)
            assert decisions(engine) == decisions(expected)
            if expected is not before:
                gone = deny_ks(before) - deny_ks(expected)
                if gone:
                    assert warnings, f"rules {gone} were dropped without a warning"
                    named = " ".join(warnings[-1].dropped)
                    assert all(g in named for g in gone), (gone, warnings[-1].dropped)
            elif outcome is Outcome.FAILED:
                assert errors and isinstance(errors[-1], PolicyLoadError)


def test_a_deleted_file_never_shrinks_the_set_until_it_is_back(tmp_path):
    disk = Disk(tmp_path)
    disk.put("a.policy", a_text((1,)).encode())
    disk.put("b.policy", b_text((7,)).encode())
    engine = Engine.from_path(tmp_path)
    errors: list[Exception] = []
    watcher = engine.watch(3600, on_error=errors.append, start=False)
    with disk.patched():
        disk.delete("b.policy")
        assert watcher.poll() is Outcome.FAILED
        assert "b.policy is gone" in str(errors[-1])
        assert engine.decide("t", {"n": 7}).effect == "deny"  # b's deny still holds
        disk.put("a.policy", a_text((2,)).encode())  # editing another file does not let it go
        assert watcher.poll() is Outcome.FAILED
        assert engine.decide("t", {"n": 7}).effect == "deny"
        disk.put("b.policy", b_text((7, 8)).encode())
        assert watcher.poll() is Outcome.RELOADED
        assert [engine.decide("t", {"n": n}).effect.value for n in (2, 7, 8)] == ["deny"] * 3
    engine.reload()  # an operator's explicit reload may retire a file (reported as dropped)
    (tmp_path / "b.policy").unlink()
    report = engine.reload(settle=0)
    assert any("args.n == 8" in d for d in report.dropped)


def test_a_truncated_file_that_still_parses_is_reported_by_rule_name(tmp_path, caplog):
    disk = Disk(tmp_path)
    disk.put("a.policy", a_text((1, 2, 3)).encode())
    engine = Engine.from_path(tmp_path)
    warnings: list[watch.ReloadReport] = []
    watcher = engine.watch(3600, on_warning=warnings.append, start=False)
    text = (tmp_path / "a.policy").read_text()
    with disk.patched(), caplog.at_level(logging.WARNING):
        disk.put("a.policy", text[: text.index("rule deny_a2")].encode(), atomic=False)
        assert watcher.poll() is Outcome.RELOADED
    assert warnings[-1].dropped and "deny_a2" in warnings[-1].dropped[0]
    assert "deny_a3" in warnings[-1].dropped[1] and len(warnings[-1].dropped) == 2
    assert "deny_a2" in caplog.text and "deny_a3" in caplog.text
    assert watcher.last_dropped == warnings[-1].dropped
    # allow_drops=False keeps the stricter policy instead
    disk.put("a.policy", a_text((1, 2, 3)).encode())
    strict = engine.watch(3600, allow_drops=False, start=False)
    with disk.patched():
        assert strict.poll() is Outcome.RELOADED
        disk.put("a.policy", a_text((1,)).encode())
        assert strict.poll() is Outcome.FAILED
    assert engine.decide("t", {"n": 3}).effect == "deny"
    assert "removes 2 rule(s)" in str(strict.last_error)


def test_a_burst_of_writes_is_one_reload(tmp_path):
    disk = Disk(tmp_path)
    disk.put("a.policy", a_text(()).encode())
    engine = Engine.from_path(tmp_path)
    reloads: list[str] = []
    watcher = engine.watch(3600, on_reload=lambda e: reloads.append(e.policy_version), start=False)
    with disk.patched():
        disk.put("a.policy", a_text((0,)).encode())
        for k in range(1, 20):
            disk.pending.append(lambda k=k: disk.put("a.policy", a_text((0, k)).encode()))
        assert watcher.poll() is Outcome.RELOADED
    assert reloads == ["0,19"]


def test_a_writer_that_never_stops_is_waited_out_not_read(tmp_path):
    disk = Disk(tmp_path)
    disk.put("a.policy", a_text((1,)).encode())
    engine = Engine.from_path(tmp_path)
    watcher = engine.watch(3600, start=False)
    full = a_text((1, 2)).encode()
    with disk.patched():
        disk.put("a.policy", full[:10], atomic=False)
        for i in range(10_000):  # the file keeps changing, half-written each time
            disk.pending.append(
                lambda i=i: disk.put("a.policy", full[: len(full) // 2 + i % 7], atomic=False)
            )
        assert watcher.poll() is Outcome.UNSTABLE
        assert engine.policy_version == "1"
        disk.pending.clear()
        disk.put("a.policy", full)
        assert watcher.poll() is Outcome.RELOADED  # retried once quiet
    assert engine.policy_version == "1,2"


def test_read_stable_needs_two_equal_reads(tmp_path):
    disk = Disk(tmp_path)
    disk.put("a.policy", a_text((1,)).encode())
    with disk.patched():
        for _ in range(watch.READ_ATTEMPTS * 2):
            disk.pending.append(lambda: disk.put("a.policy", os.urandom(8).hex().encode()))
        with pytest.raises(PolicyChangingError, match="kept changing"):
            read_stable(tmp_path)
        disk.pending.clear()
        disk.put("a.policy", a_text((2,)).encode())
        assert read_stable(tmp_path).sources[str(tmp_path / "a.policy")] == a_text((2,))


class Boom(Exception):
    pass


def test_the_watcher_survives_any_exception_and_keeps_watching(tmp_path):
    f = tmp_path / "p.policy"
    f.write_text(a_text((1,)))
    engine = Engine.from_path(f)
    seen: list[Exception] = []

    def bad_callback(arg: Any) -> None:
        raise Boom("callback bug")

    class Metrics:
        def reloaded(self, ok: bool) -> None:
            raise Boom("metrics bug")

    watcher = engine.watch(
        0.01,
        on_error=lambda e: (seen.append(e), bad_callback(e)),
        on_reload=bad_callback,
        metrics=Metrics(),
        debounce=0,
        settle=0,
    )
    try:
        real = engine.reload
        failures = iter([Boom("bug"), MemoryError(), KeyError("k"), RecursionError()])

        def flaky(*a: Any, **k: Any) -> Any:
            exc = next(failures, None)
            if exc is not None:
                raise exc
            return real(*a, **k)

        with mock.patch.object(engine, "reload", flaky):
            for i in range(5):
                f.write_text(a_text((1, 2 + i)))
                os.utime(f, ns=(10**18 + i * 10**9,) * 2)
                _wait(lambda i=i: engine.policy_version == f"1,{2 + i}" or len(seen) > i, 5)
            _wait(lambda: engine.policy_version == "1,6", 5)
        assert [type(e) for e in seen[:4]] == [Boom, MemoryError, KeyError, RecursionError]
        assert watcher._thread is not None and watcher._thread.is_alive()
        assert watcher.errors >= 4 and watcher.reloads >= 1
    finally:
        watcher.stop()


def _wait(cond: Callable[[], bool], seconds: float) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.parametrize(
    "options",
    [
        {"interval": 0},
        {"interval": -1},
        {"interval": float("nan")},
        {"interval": "1"},
        {"interval": True},
        {"debounce": -0.1},
        {"settle": float("inf")},
        {"max_wait": -1},
        {"on_error": "print"},
        {"on_reload": 3},
        {"on_warning": object()},
        {"metrics": object()},
    ],
)
def test_misuse_fails_at_construction(tmp_path, options):
    f = tmp_path / "p.policy"
    f.write_text(a_text(()))
    engine = Engine.from_path(f)
    with pytest.raises((TypeError, ValueError)):
        PolicyWatcher(engine, f, start=False, **options)
    with pytest.raises((TypeError, ValueError)):
        PolicyWatcher(None, f, start=False)  # type: ignore[arg-type]


def test_there_is_one_watcher_and_the_server_uses_it(tmp_path):
    pytest.importorskip("starlette")
    from policylang.server import PolicyWatcher as ServerWatcher

    assert issubclass(ServerWatcher, PolicyWatcher)
    assert "poll" not in ServerWatcher.__dict__ and "_run" not in ServerWatcher.__dict__
    package = Path(policylang.__file__).parent
    watchers = []
    for py in package.rglob("*.py"):
        for node in pyast.walk(pyast.parse(py.read_text())):
            if isinstance(node, pyast.ClassDef) and node.name.endswith("Watcher"):
                watchers.append(
                    (
                        py.relative_to(package).as_posix(),
                        node.name,
                        [pyast.unparse(b) for b in node.bases],
                    )
                )
    assert sorted(watchers) == [
        ("runtime/watch.py", "PolicyWatcher", []),
        ("server/app.py", "PolicyWatcher", ["_Watcher"]),
    ]
    f = tmp_path / "p.policy"
    f.write_text(a_text((1,)))
    engine = Engine.from_path(f)
    w = engine.watch(3600)
    try:
        assert type(w) is PolicyWatcher and w._thread is not None
    finally:
        w.stop()
