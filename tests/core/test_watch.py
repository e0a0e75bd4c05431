"""Hot reload: a valid edit is swapped in, a broken one keeps the previous policy."""

from __future__ import annotations

import os
import time

from policylang import Engine

GOOD = "tool t { n: int }\nallow t when args.n < 10\n"
LOOSER = "tool t { n: int }\nallow t when args.n < 100\n"
BROKEN = "tool t { n: int }\nallow t when args.n < \n"


def _touch(path, text):
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # a visible mtime change


def test_watch_swaps_valid_edits_and_keeps_serving_through_broken_ones(tmp_path):
    f = tmp_path / "p.policy"
    f.write_text(GOOD)
    engine = Engine.from_path(tmp_path)
    errors = []
    with engine.watch(interval=3600, on_error=errors.append) as watcher:  # driven by check()
        assert engine.decide("t", args={"n": 50}).effect == "deny"
        _touch(f, LOOSER)
        assert watcher.check() is True
        assert engine.decide("t", args={"n": 50}).effect == "allow"
        before = [engine.decide("t", args={"n": n}).effect for n in range(0, 200, 7)]
        _touch(f, BROKEN)
        assert watcher.check() is False
        assert watcher.errors == 1 and len(errors) == 1
        assert "p.policy:2" in str(errors[0])
        after = [engine.decide("t", args={"n": n}).effect for n in range(0, 200, 7)]
        assert after == before
        assert watcher.check() is False  # nothing changed since: no retry storm


def test_watch_thread_picks_up_changes_by_itself(tmp_path):
    f = tmp_path / "p.policy"
    f.write_text(GOOD)
    engine = Engine.from_path(f)
    with engine.watch(interval=0.05) as watcher:
        _touch(f, LOOSER)
        deadline = time.monotonic() + 5
        while watcher.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watcher.reloads == 1
        assert engine.decide("t", args={"n": 50}).effect == "allow"
