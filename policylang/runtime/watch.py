"""Hot reload: watch a policy's files and swap in new versions only when they are whole.

This is the one watcher: ``Engine.watch()`` returns it and the HTTP server
(``policylang serve --watch``) runs it. A polling thread (no extra dependency,
works on every file system) compares the files' modification times, sizes and
inodes every ``interval`` seconds. On a change it

1. **debounces**: waits until the files have been quiet for ``debounce``
   seconds (a burst of writes, an editor's delete-and-rename, becomes one
   reload; a writer that never stops is given up on after ``max_wait`` and
   retried at the next poll);
2. **reads a stable snapshot** (:func:`read_stable`): the bytes of every file
   read twice, ``settle`` seconds apart, with their stats unchanged in
   between and the loader's own read in the middle; anything that moved is
   read again (a file being written is never compiled half-written);
3. **keeps the set whole**: a file of the last good set that has disappeared
   (deleted, or renamed away mid-save) is a load error, never a smaller
   policy; call ``engine.reload()`` yourself to retire a file on purpose;
4. compiles off to the side and swaps atomically (``Engine.reload``), and
   **reports dropped rules**: a reload whose new version no longer has some
   rule (say, a truncated file that still parses) logs a warning naming each
   one and calls ``on_warning`` (``allow_drops=False`` refuses such a reload).

Any error — a broken edit, an unreadable file, a bug, a callback that raises —
keeps the previous policy serving, is logged, counted and handed to
``on_error``; the thread never dies of it.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policylang.errors import Diagnostic, PolicyLoadError, Span
from policylang.runtime.loader import DATA_SUFFIXES, TEST_SUFFIXES, read_path

if TYPE_CHECKING:
    from policylang.language.policy import Policy
    from policylang.runtime.engine import Engine

log = logging.getLogger("policylang.watch")

DEFAULT_SETTLE = 0.05  # seconds between the two reads of a stable snapshot
DEFAULT_DEBOUNCE = 0.1  # seconds of quiet after a change before reloading
DEFAULT_MAX_WAIT = 5.0  # give up waiting for quiet after this long (retried at the next poll)
READ_ATTEMPTS = 5  # stable-snapshot attempts before a reload is refused as "still changing"

# module-level so tests can stand in for a writer during the waits, and for the clock
_sleep = time.sleep
_monotonic = time.monotonic

Stat = tuple[int, int, int, int]  # (mtime_ns, size, inode, device)


def policy_files(root: Path) -> list[Path]:
    """The files that make up the policy at ``root``, as the loader finds them (never raises)."""
    try:
        if root.is_file():
            return [root]
        if not root.is_dir():
            return []
        out = [p for p in root.iterdir() if p.suffix == ".policy" and p.is_file()]
        for folder in (root, root / "data"):
            if folder.is_dir():
                out += [
                    p
                    for p in folder.iterdir()
                    if p.suffix in DATA_SUFFIXES
                    and not p.name.endswith(TEST_SUFFIXES)
                    and p.is_file()
                ]
        return sorted(out)
    except OSError:  # a folder vanished or became unreadable mid-scan: nothing to compare
        return []


def snapshot(root: Path) -> dict[str, Stat]:
    """(mtime_ns, size, inode, device) of every file that makes up the policy at ``root``."""
    out = {}
    for p in policy_files(Path(root)):
        try:
            st = p.stat()
        except OSError:
            continue
        out[str(p)] = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
    return out


def fingerprint(root: Path) -> dict[str, tuple[Stat, str]]:
    """Each policy file's stat and the SHA-256 of its bytes (a file that cannot be read is left out)."""
    out = {}
    for p in policy_files(Path(root)):
        try:
            before = p.stat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            after = p.stat()
        except OSError:
            continue
        st = (after.st_mtime_ns, after.st_size, after.st_ino, after.st_dev)
        if st != (before.st_mtime_ns, before.st_size, before.st_ino, before.st_dev):
            st = (-1, -1, -1, -1)  # changed while read: can never equal another reading
        out[str(p)] = (st, digest)
    return out


class PolicyChangingError(PolicyLoadError):
    """The files kept changing while they were read: the old policy serves, the watcher retries."""


def _problem(code: str, message: str, path: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(code, message, Span(path, 1, 1, 1, 2), "error", hint)


@dataclass(frozen=True)
class StableRead:
    """What :func:`read_stable` read: sources and data as the loader gives them, and the files."""

    sources: dict[str, str]
    data: dict[str, Any]
    files: dict[str, tuple[Stat, str]]


def read_stable(
    path: str | Path,
    data: dict[str, Any] | None = None,
    *,
    settle: float = DEFAULT_SETTLE,
    require: Collection[str] = (),
    attempts: int = READ_ATTEMPTS,
    follow_links: bool = False,
) -> StableRead:
    """Read the policy at ``path`` only once its files hold still.

    Fingerprints every file (stat and SHA-256 of the bytes), waits ``settle``
    seconds, lets the loader read and parse the data, fingerprints again, and
    accepts the read only when both fingerprints are equal and every policy
    text the loader got hashes to what was fingerprinted. Otherwise it tries
    again, up to ``attempts`` times, then raises :class:`PolicyChangingError`.
    Every file named in ``require`` (the set that is serving) must still be
    there, so a vanished file is an error and never a policy with fewer files.
    """
    root = Path(path)
    for attempt in range(attempts):
        before = fingerprint(root)
        if settle > 0:
            _sleep(settle)
        error: PolicyLoadError | None = None
        try:
            sources, loaded = read_path(root, data, follow_links=follow_links)
        except PolicyLoadError as exc:
            error = exc
        after = fingerprint(root)
        if before != after:
            if attempt + 1 < attempts and settle > 0:
                _sleep(settle)
            continue
        missing = sorted(f for f in require if f not in after)
        if missing:
            raise PolicyLoadError(
                [
                    _problem(
                        "PL002",
                        f"{Path(f).name} is gone: it is part of the policy that is serving, so "
                        "that policy keeps serving whole",
                        f,
                        hint="restore the file; to retire it on purpose, call engine.reload() (or "
                        "restart) once it is gone",
                    )
                    for f in missing
                ]
            )
        if error is not None:
            raise error
        if all(
            f in after and hashlib.sha256(t.encode("utf-8")).hexdigest() == after[f][1]
            for f, t in sources.items()
        ):
            return StableRead(sources, loaded, after)
    raise PolicyChangingError(
        [
            _problem(
                "PL002",
                f"the policy files kept changing while they were read ({attempts} tries, "
                f"{settle:g} s apart); the previous policy keeps serving",
                str(root),
                hint="write policy files atomically: to a temporary file, then rename it over the old one",
            )
        ]
    )


# ---------------------------------------------------------------- dropped rules


def _rule_items(policy: Policy) -> Counter[str]:
    """Each rule, limit and breaker of a policy as an identity: its name, or its content.

    A named rule keeps its identity when it is edited; an unnamed one is its text
    (``repr`` of the AST, which leaves out positions), so moving it is no change.
    """
    items: Counter[str] = Counter()
    for kind, group in (
        ("rule", policy.rules),
        ("limit", policy.limits),
        ("breaker", policy.breakers),
    ):
        for r in group:
            items[f"{kind} {r.name}" if r.name else f"{kind} {r!r}"] += 1
    return items


def _label(kind: str, r: Any) -> str:
    from policylang.language.formatter import format_expr

    tools = ", ".join(t.pattern for t in r.tools)
    head = (
        f"{kind} {r.name} ({getattr(r, 'effect', kind)} {tools})"
        if r.name
        else f"{getattr(r, 'effect', kind)} {tools}"
    )
    when = getattr(r, "when", None)
    if when is not None and not r.name:
        text = format_expr(when)
        head += f" when {text if len(text) <= 80 else text[:77] + '...'}"
    return f"{head} at {r.span.file}:{r.span.line}" if r.span.line else head


def dropped_rules(old: Policy, new: Policy) -> tuple[str, ...]:
    """Labels of the rules, limits and breakers ``old`` has and ``new`` no longer has."""
    gone = _rule_items(old) - _rule_items(new)
    if not gone:
        return ()
    out = []
    for kind, group in (("rule", old.rules), ("limit", old.limits), ("breaker", old.breakers)):
        for r in group:
            ident = f"{kind} {r.name}" if r.name else f"{kind} {r!r}"
            if gone[ident] > 0:
                gone[ident] -= 1
                out.append(_label(kind, r))
    return tuple(out)


@dataclass(frozen=True)
class ReloadReport:
    """What a successful ``Engine.reload`` swapped in."""

    path: str
    hash: str
    files: tuple[str, ...]  # the files of the new policy
    dropped: tuple[str, ...] = ()  # rules the previous version had and this one has not
    stats: tuple[tuple[str, Stat], ...] = ()  # each file's (mtime_ns, size, inode, device) as read


# ---------------------------------------------------------------- the watcher


def _serves(engine: Engine, root: Path) -> bool:
    """Does the engine's policy hold exactly the policy texts now at ``root``?"""
    sources = getattr(engine.compiled, "policy", None)
    texts = getattr(sources, "sources", None)
    if not isinstance(texts, dict):
        return True  # nothing to compare: trust the engine
    disk = {f: digest for f, (_, digest) in fingerprint(root).items() if f.endswith(".policy")}
    return disk.keys() == texts.keys() and all(
        hashlib.sha256(t.encode("utf-8")).hexdigest() == disk[f] for f, t in texts.items()
    )


class Outcome(enum.Enum):
    """What one :meth:`PolicyWatcher.poll` did."""

    UNCHANGED = "unchanged"  # nothing to do
    RELOADED = "reloaded"  # a new version is serving
    FAILED = "failed"  # the change does not load; the previous version serves
    UNSTABLE = "unstable"  # the files are still changing; retried at the next poll


def _seconds(name: str, value: Any, positive: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        need = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {need} number of seconds, got {value!r}")
    return float(value)


class PolicyWatcher:
    """Reloads ``engine`` from ``path`` when its files change; see the module docstring.

    ``start=False`` builds it stopped (call :meth:`start`); :meth:`check` and
    :meth:`poll` run one round by hand. ``stop()`` (or leaving a ``with``) ends it.
    Callbacks: ``on_reload(engine)``, ``on_error(exception)``, ``on_warning(report)``
    when a reload dropped rules; ``metrics.reloaded(ok)`` is called per attempt.
    """

    def __init__(
        self,
        engine: Engine,
        path: str | Path,
        interval: float = 1.0,
        on_reload: Callable[[Engine], Any] | None = None,
        on_error: Callable[[Exception], Any] | None = None,
        *,
        on_warning: Callable[[ReloadReport], Any] | None = None,
        metrics: Any = None,
        debounce: float = DEFAULT_DEBOUNCE,
        settle: float = DEFAULT_SETTLE,
        max_wait: float = DEFAULT_MAX_WAIT,
        allow_drops: bool = True,
        start: bool = True,
    ):
        if not callable(getattr(engine, "reload", None)):
            raise TypeError(f"PolicyWatcher needs an Engine, got {type(engine).__name__}")
        if not isinstance(path, str | Path) or not str(path):
            raise TypeError(f"path must be a file or folder path, got {path!r}")
        for name, fn in (
            ("on_reload", on_reload),
            ("on_error", on_error),
            ("on_warning", on_warning),
        ):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        if metrics is not None and not callable(getattr(metrics, "reloaded", None)):
            raise TypeError("metrics must have a reloaded(ok) method")
        self.engine = engine
        self.path = Path(path)
        self.interval = _seconds("interval", interval, positive=True)
        self.debounce = _seconds("debounce", debounce)
        self.settle = _seconds("settle", settle)
        self.max_wait = _seconds("max_wait", max_wait)
        self.allow_drops = bool(allow_drops)
        self.on_reload, self.on_error, self.on_warning = on_reload, on_error, on_warning
        self.metrics = metrics
        self.reloads = 0
        self.errors = 0
        self.unstable = 0
        self.last_error: Exception | None = None
        self.last_dropped: tuple[str, ...] = ()
        self._seen = snapshot(self.path)
        # the set that is serving: none of it may vanish (empty when nothing loaded yet)
        self._files: frozenset[str] = (
            frozenset(self._seen) if engine.compiled is not None else frozenset()
        )
        if engine.compiled is not None and not _serves(engine, self.path):
            self._seen = {}  # the files changed since the engine read them: the first poll reloads
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # ---- one round

    def poll(self) -> Outcome:
        """Look once; reload if the files changed and hold still. Never raises."""
        with self._lock:
            try:
                return self._poll()
            except Exception as exc:  # noqa: BLE001 - the watcher must survive anything
                self._failed(exc, None)
                return Outcome.FAILED

    def check(self) -> bool:
        """Reload now if the files changed; True when a new policy was swapped in."""
        return self.poll() is Outcome.RELOADED

    def _poll(self) -> Outcome:
        current = snapshot(self.path)
        if current == self._seen:
            return Outcome.UNCHANGED
        deadline = _monotonic() + self.max_wait
        while self.debounce > 0:  # wait for the burst to end
            _sleep(self.debounce)
            again = snapshot(self.path)
            if again == current:
                break
            current = again
            if _monotonic() > deadline:
                self.unstable += 1
                log.info(
                    "policy files at %s are still changing; retrying at the next poll", self.path
                )
                return Outcome.UNSTABLE
        try:
            report = self.engine.reload(
                self.path,
                settle=self.settle,
                require_files=self._files,
                allow_drops=self.allow_drops,
            )
        except PolicyChangingError as exc:
            self.unstable += 1
            self.last_error = exc
            log.warning("policy reload postponed; the previous policy keeps serving:\n%s", exc)
            self._call(self.on_error, exc)
            return Outcome.UNSTABLE  # _seen stays: the next poll tries again
        except Exception as exc:  # noqa: BLE001 - a broken edit, or anything else
            self._failed(exc, current)
            return Outcome.FAILED
        if isinstance(report, ReloadReport):
            self._seen, self._files = dict(report.stats), frozenset(report.files)
        else:  # an engine stand-in that reports nothing
            self._seen, self._files = current, frozenset(current)
            report = ReloadReport(
                str(self.path), getattr(self.engine, "policy_hash", ""), tuple(current)
            )
        self.reloads += 1
        self.last_error = None
        self.last_dropped = report.dropped
        log.info("policy reloaded from %s (hash %s)", self.path, report.hash)
        if report.dropped:
            self._call(self.on_warning, report)
        if self.metrics is not None:
            self._call(self.metrics.reloaded, True)
        self._call(self.on_reload, self.engine)
        return Outcome.RELOADED

    def _failed(self, exc: Exception, seen: dict[str, Stat] | None) -> None:
        if seen is not None:
            self._seen = seen  # not retried until the files change again: no retry storm
        self.errors += 1
        self.last_error = exc
        if isinstance(exc, PolicyLoadError):
            log.warning("policy reload failed; the previous policy keeps serving:\n%s", exc)
        else:
            log.error(
                "policy reload failed; the previous policy keeps serving: %s: %s",
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
        if self.metrics is not None:
            self._call(self.metrics.reloaded, False)
        self._call(self.on_error, exc)

    @staticmethod
    def _call(fn: Callable[[Any], Any] | None, arg: Any) -> None:
        if fn is None:
            return
        try:
            fn(arg)
        except Exception:  # noqa: BLE001 - a callback's bug must not stop the watcher
            log.exception("a policy watcher callback (%s) raised", getattr(fn, "__name__", fn))

    # ---- the thread

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except BaseException:  # noqa: BLE001 - poll() never raises; this is the last guard
                log.exception("the policy watcher hit an unexpected error; it keeps watching")

    def start(self) -> None:
        """Start the polling thread (once; a stopped watcher can be started again)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="policylang-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.interval * 2, 5.0))
            self._thread = None

    def __enter__(self) -> PolicyWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
