"""Hot reload: watch a policy's files and swap in new versions when they are valid.

A polling thread (no extra dependency, works on every file system) compares
the files' modification times and sizes; on a change it calls
``engine.reload()``, which compiles off to the side and swaps atomically. A
broken edit keeps the previous policy serving and is reported to
``on_error`` (and the log); decisions in flight never see a half-loaded set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policylang.errors import PolicyLoadError

if TYPE_CHECKING:
    from policylang.runtime.engine import Engine

log = logging.getLogger("policylang.watch")


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every file that makes up the policy at ``root``."""
    paths: list[Path] = []
    try:
        if root.is_file():
            paths = [root]
        elif root.is_dir():
            for folder in (root, root / "data"):
                if folder.is_dir():
                    paths += [
                        p
                        for p in folder.iterdir()
                        if p.is_file() and p.suffix in (".policy", ".yaml", ".yml", ".json")
                    ]
    except OSError:  # a folder vanished or became unreadable mid-scan: nothing to compare
        return {}
    out = {}
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out[str(p)] = (st.st_mtime_ns, st.st_size)
    return out


class PolicyWatcher:
    """Polls every ``interval`` seconds; ``stop()`` (or leaving a ``with``) ends it."""

    def __init__(
        self,
        engine: Engine,
        path: Path,
        interval: float = 1.0,
        on_reload: Callable[[Engine], Any] | None = None,
        on_error: Callable[[PolicyLoadError], Any] | None = None,
    ):
        self.engine = engine
        self.path = path
        self.interval = interval
        self.on_reload = on_reload
        self.on_error = on_error
        self.reloads = 0
        self.errors = 0
        self.last_error: PolicyLoadError | None = None
        self._seen = snapshot(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policylang-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def check(self) -> bool:
        """Reload now if the files changed; True when a new policy was swapped in."""
        current = snapshot(self.path)
        if current == self._seen:
            return False
        self._seen = current
        try:
            self.engine.reload(self.path)
        except PolicyLoadError as exc:
            self.errors += 1
            self.last_error = exc
            log.warning("policy reload failed; the previous policy keeps serving:\n%s", exc)
            if self.on_error is not None:
                self.on_error(exc)
            return False
        self.reloads += 1
        self.last_error = None
        log.info("policy reloaded from %s (hash %s)", self.path, self.engine.policy_hash)
        if self.on_reload is not None:
            self.on_reload(self.engine)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=max(self.interval * 2, 1.0))

    def __enter__(self) -> PolicyWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
