"""Audit sinks: an append-only, hash-chained JSON Lines file, a logger, a callback.

The engine calls ``sink.write(record)`` once per decision, synchronously; if
that raises, a decision that was not already a deny becomes deny
``audit_unavailable`` (nothing is allowed unrecorded). Guards also write
``{"kind": "outcome", ...}`` and ``{"kind": "approval", ...}`` records through
the same sink; records without ``kind`` are decisions.

**The chain.** :class:`JsonlSink` adds three fields to each record: ``seq``
(1, 2, 3, ... with no gaps, continued across rotated files), ``prev`` (the
``hash`` of the record before it; 64 zeros for the first record ever) and
``hash``. A line is the record's canonical JSON (sorted keys, no spaces,
``ensure_ascii``) without ``hash``, with ``,"hash":"<hex>"`` put before the
closing brace, where ``hex`` is the SHA-256 (or, given a ``key``,
HMAC-SHA256) of that canonical text. :func:`verify_file` recomputes all of it
and so finds a changed byte, a deleted, inserted or reordered line, and a
torn last line. Without a key, someone who can rewrite the whole file can
also recompute the chain; pass a ``key``, or keep an anchor elsewhere.

**Anchors.** Records cut from the end leave a valid, shorter chain. An anchor
finds them: the ``(seq, hash)`` of a record the log must still reach — kept
by the caller (``sink.head()``), or published by the sink to a head file
(``JsonlSink(head=True)`` writes ``<log>.head`` atomically) — checked by
``verify_file``/``verify_chain(head_seq=, head_hash=)`` and by
``policylang audit verify --expect-seq N --expect-head HASH --head-file F``.

**File handling** (see :class:`JsonlSink`): opening never changes a file
unless it is a torn record of its own chain, never follows a symlink unless
asked, and a log deleted or replaced under a running sink makes every write
fail (so decisions deny ``audit_unavailable``) until ``sink.reopen()``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

GENESIS = "0" * 64
_TAIL = re.compile(r',"hash":"([0-9a-f]{64})"\}$')


_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _default(value: Any) -> Any:
    from policylang.runtime.celops import format_value

    return format_value(value)


def canonical(record: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8: the exact text a record's hash is taken over.

    orjson (10x the standard library here, on the decision path) writes it; values it
    refuses (integers beyond 64 bits, lone surrogates, very deep nesting) are made
    JSON-safe first, so every record can be written and re-verified the same way.
    """
    try:
        return orjson.dumps(record, default=_default, option=_ORJSON).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(json_safe(record), default=_default, option=_ORJSON).decode("utf-8")


def json_safe(v: Any, depth: int = 0) -> Any:
    """A copy of ``v`` that any JSON encoder accepts (the slow, always-working path)."""
    if depth > 32:
        return "[too deep]"
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v if -(2**63) <= v < 2**64 else str(v)
    if isinstance(v, str):
        return v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(v, float):
        return v if v == v and v not in (float("inf"), float("-inf")) else str(v)
    if isinstance(v, dict):
        return {str(k): json_safe(x, depth + 1) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x, depth + 1) for x in v]
    return _default(v)


def _digest(text: str, key: bytes | None) -> str:
    data = text.encode("utf-8")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def _chain_line(record: dict[str, Any], seq: int, prev: str, key: bytes | None) -> tuple[str, str]:
    body = dict(record)
    body.pop("hash", None)
    body["seq"] = seq
    body["prev"] = prev
    text = canonical(body)
    digest = _digest(text, key)
    return f'{text[:-1]},"hash":"{digest}"}}\n', digest


class AuditError(OSError):
    """The audit file cannot be opened or written; the message says why and what to do."""


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIGITS = re.compile(r"[1-9][0-9]*")


def _open_log(path: Path, follow_symlinks: bool) -> int:
    """Open (creating) ``path`` for reading and appending, never through a symlink unless asked."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | _CLOEXEC | (0 if follow_symlinks else _NOFOLLOW)
    try:
        return os.open(path, flags, 0o640)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise AuditError(
                f"{path} is a symbolic link; the audit log does not follow links "
                "(pass follow_symlinks=True to write through it)"
            ) from None
        raise AuditError(f"cannot open the audit file {path}: {exc.strerror}") from None


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class JsonlSink:
    """Append-only JSON Lines audit file with a hash chain; thread-safe.

    Each record is one ``write`` system call on a file opened with
    ``O_APPEND`` (so a crash leaves at most a torn last line), flushed to the
    operating system before ``write`` returns, and ``os.fsync``-ed too when
    ``fsync=True`` (survives power loss; much slower).

    ``max_bytes`` rotates the file when the next line would take it past that
    size: ``audit.jsonl`` becomes ``audit.jsonl.1`` (older ones shift up to
    ``.{backups}``, the oldest is removed) and the chain continues in the new
    file. One process writes a file at a time (an exclusive ``flock`` is held).

    **Opening never damages a file.** An existing file is continued only if it
    is this kind of log: its last line must be a chained record that verifies
    (with ``key``). A torn last line left by a crash is cut off only when it is
    the start of a record of this chain and every line before it verifies
    (``repair=False`` refuses instead); a complete record missing only its
    newline gets the newline. Anything else — another kind of file, an edited
    log, a FIFO, a directory, a symbolic link (unless ``follow_symlinks=True``)
    — is refused with :class:`AuditError` and left byte for byte as it was.

    **A log deleted or replaced while serving is noticed.** Before every
    ``check_every``-th write (every write by default: one ``stat``) the path's
    device and inode are compared with the open file's; on a mismatch every
    write raises :class:`AuditError`, so the engine denies
    ``audit_unavailable`` instead of allowing calls whose records would be
    lost, until :meth:`reopen` is called (``policylang serve`` does it on
    ``SIGHUP``).

    **The head.** ``head=True`` (or a path) publishes the chain's current
    ``(seq, hash)`` to ``<log>.head`` (or that path), replaced atomically after
    every ``head_every``-th record and on close; ``policylang audit verify``
    reads it and so detects records cut from the end of the log, which the
    chain alone cannot. Keep it where whoever can rewrite the log cannot (or
    use ``key``, which also signs the head). A sink that opens a log shorter
    than its head refuses to continue it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: bool = False,
        max_bytes: int | None = None,
        backups: int = 5,
        key: bytes | None = None,
        repair: bool = True,
        follow_symlinks: bool = False,
        head: bool | str | os.PathLike[str] = False,
        head_every: int = 1,
        check_every: int = 1,
    ):
        if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 1):
            raise ValueError(
                f"max_bytes must be a positive number of bytes or None, got {max_bytes!r}"
            )
        if type(backups) is not int or backups < 0:
            raise ValueError(f"backups must be a whole number >= 0, got {backups!r}")
        if key is not None and not isinstance(key, bytes | bytearray):
            raise TypeError(f"key must be bytes, got {type(key).__name__}")
        for name, value in (("head_every", head_every), ("check_every", check_every)):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        self.path = Path(path)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.backups = backups
        self.key = bytes(key) if key is not None else None
        self.repair = repair
        self.follow_symlinks = follow_symlinks
        self._path_str = str(self.path)  # stat()-ed before each write: no Path conversion there
        self._stat = os.stat if follow_symlinks else os.lstat
        if head is True:
            self.head_path: Path | None = self.path.with_name(self.path.name + ".head")
        elif head is False or head is None:
            self.head_path = None
        else:
            self.head_path = Path(head)
        self.head_every = head_every
        self.check_every = check_every
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None
        self._unavailable: str | None = None  # why writes are refused until reopen()
        self._regular = True
        self._size = 0
        self._until_check = 0
        self.seq = 0
        self.last_hash = GENESIS
        self._open(continuing=False)

    # ---- file handling

    def _open(self, continuing: bool) -> None:
        """Open the log; ``continuing``: a reopen, which must carry on this sink's own chain."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_log(self.path, self.follow_symlinks)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                regular = True
            elif stat.S_ISCHR(st.st_mode) and self.max_bytes is None and self.head_path is None:
                regular = False  # a device such as /dev/null: nothing to resume or rotate
            else:
                kind = "a character device" if stat.S_ISCHR(st.st_mode) else "not a regular file"
                raise AuditError(
                    f"{self.path} is {kind}; an audit log must be a regular file"
                    + (" (rotation and the head need one)" if stat.S_ISCHR(st.st_mode) else "")
                )
            if fcntl is not None and regular:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    raise AuditError(f"{self.path} is being written by another process") from exc
            seq, last = self.seq, self.last_hash
            if regular:
                seq, last = self._resume(fd, st.st_size, continuing)
                self._check_head(seq, last)
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._regular = fd, regular
        self._ident = _identity(st)
        self._size = os.fstat(fd).st_size
        self.seq, self.last_hash = seq, last
        self._until_check = 0

    def _resume(self, fd: int, size: int, continuing: bool) -> tuple[int, str]:
        """Where the chain goes on: the last record of this file, or of the newest rotated one.

        Changes the file only to cut a torn record of this very chain (see the class).
        """
        if size == 0:
            if continuing:  # a new, empty file after the old one went away: carry on our chain
                return self.seq, self.last_hash
            for i in range(1, self.backups + 1):
                rotated = self._rotated(i)
                if rotated.is_file():
                    found = _resume_point(rotated.read_bytes(), rotated, self.key)
                    if found is not None:
                        return found
            return 0, GENESIS

        def read(offset: int, n: int) -> bytes:
            return os.pread(fd, n, offset)

        data, torn_at = _tail_of(read, size)
        if torn_at is None:
            found = _resume_point(data, self.path, self.key)
        else:
            if not self.repair:
                raise AuditError(
                    f"{self.path} ends with a torn line (at byte {torn_at}); run "
                    "policylang audit verify --repair on it, or open with repair=True"
                )
            whole = read(0, size)
            found, fix = _repair_plan(whole, self.path, self.key, self._chain_before())
            if fix == "newline":
                os.write(fd, b"\n")
            else:
                os.ftruncate(fd, torn_at)
        if found is None:
            found = self._chain_before()
        if continuing and found != (self.seq, self.last_hash):
            raise AuditError(
                f"{self.path} now holds another chain (it ends at seq {found[0]}, this "
                f"sink wrote up to seq {self.seq}); move it away and reopen, or open a "
                "new sink"
            )
        return found

    def _chain_before(self) -> tuple[int, str]:
        """The (seq, hash) a file's first record continues: the newest rotated file's last one."""
        for i in range(1, self.backups + 1):
            rotated = self._rotated(i)
            if rotated.is_file():
                with contextlib.suppress(AuditError):
                    found = _resume_point(rotated.read_bytes(), rotated, self.key)
                    if found is not None:
                        return found
                break
        return 0, GENESIS

    def _check_head(self, seq: int, last: str) -> None:
        if self.head_path is None:
            return
        try:
            head = read_head(self.head_path, key=self.key)
        except FileNotFoundError:
            return
        except ValueError as exc:
            raise AuditError(str(exc)) from None
        if head[0] > seq or (head[0] == seq and head[1] != last):
            raise AuditError(
                f"{self.path} ends at seq {seq} but its head {self.head_path} says seq "
                f"{head[0]}: records were cut from the end or the log was replaced; "
                "check it with policylang audit verify, and move the head file away "
                "only if you mean to start over"
            )

    def _rotated(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)  # releases the flock; we reopen and lock the new file at once
        self._fd = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            self._rotated(self.backups).unlink(missing_ok=True)
            for i in range(self.backups - 1, 0, -1):
                if self._rotated(i).exists():
                    os.replace(self._rotated(i), self._rotated(i + 1))
            os.replace(self.path, self._rotated(1))
        fd = _open_log(self.path, self.follow_symlinks)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd
        self._ident = _identity(os.fstat(fd))
        self._size = 0

    def _still_ours(self) -> None:
        """Refuse to write into a file that is no longer at ``path`` (deleted or replaced)."""
        try:
            now = _identity(self._stat(self._path_str))
        except OSError as exc:
            now = None
            why = f"{self.path} is gone ({exc.strerror})"
        else:
            why = f"{self.path} was replaced by another file"
        if now != self._ident:
            self._unavailable = (
                f"{why}; records would be lost, so writes are refused until "
                "the sink is reopened (sink.reopen(), or SIGHUP to policylang serve)"
            )
            raise AuditError(self._unavailable)

    def reopen(self) -> None:
        """Open ``path`` again after the log was deleted, replaced or moved away (log rotation).

        A missing or empty file continues this sink's chain (``seq`` and ``prev`` go
        on, so the files verify together); a non-empty one must end where this sink
        stopped. On failure writes keep being refused, with the reason.
        """
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            try:
                self._open(continuing=True)
            except OSError as exc:
                self._unavailable = f"reopening the audit log failed: {exc}"
                raise
            self._unavailable = None

    def head(self) -> tuple[int, str]:
        """The chain's current ``(seq, hash)``: an anchor to keep elsewhere for ``audit verify``."""
        with self._lock:
            return self.seq, self.last_hash

    def publish_head(self) -> None:
        """Write the head file now (atomically: a temporary file renamed over it)."""
        with self._lock:
            self._publish_head()

    def _publish_head(self) -> None:
        if self.head_path is None:
            return
        text = head_text(self.seq, self.last_hash, self.path.name, self.key).encode("utf-8")
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC | _NOFOLLOW, 0o640)
        try:
            os.write(fd, text)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)

    # ---- writing

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._fd is None:
                raise AuditError(f"audit file {self.path} is closed")
            if self._unavailable is not None:
                raise AuditError(self._unavailable)
            if self._until_check <= 0:
                self._still_ours()
                self._until_check = self.check_every
            self._until_check -= 1
            line, digest = _chain_line(record, self.seq + 1, self.last_hash, self.key)
            data = line.encode("utf-8")
            if (
                self._regular
                and self.max_bytes is not None
                and self._size
                and self._size + len(data) > self.max_bytes
            ):
                self._rotate()
            view = memoryview(data)
            written = 0
            fd = self._fd
            assert fd is not None
            try:
                while written < len(data):
                    written += os.write(fd, view[written:])
                if self.fsync:
                    os.fsync(fd)
            except OSError:
                if (
                    written and self._regular
                ):  # never leave half a record for the next one to follow
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, self._size)
                with contextlib.suppress(AuditError):
                    self._still_ours()  # a write error may be the file going away: say so
                raise
            self._size += len(data)
            self.seq += 1
            self.last_hash = digest
            if self.head_path is not None and self.seq % self.head_every == 0:
                self._publish_head()

    __call__ = write

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                if self.head_path is not None and self._unavailable is None:
                    with contextlib.suppress(OSError):
                        self._publish_head()
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tail_of(read: Callable[[int, int], bytes], size: int) -> tuple[bytes, int | None]:
    """The end of a file holding its last complete line, and where a torn tail starts (or None)."""
    block = 1 << 16
    pos = size
    buf = b""
    while pos > 0:
        step = min(block, pos)
        pos -= step
        buf = read(pos, step) + buf
        if buf.count(b"\n", 0, len(buf) - 1) >= 1 or pos == 0:
            break
    if buf.endswith(b"\n"):
        return buf, None
    cut = buf.rfind(b"\n")
    return buf, size - (len(buf) - cut - 1)


def _resume_point(data: bytes, path: Path, key: bytes | None) -> tuple[int, str] | None:
    """``(seq, hash)`` of the last line of ``data`` (which ends with a newline), or None if empty.

    Raises :class:`AuditError` when that line is not a record that verifies: then the
    file is not an audit log this sink may continue, and it is left alone.
    """
    if not data:
        return None
    if not data.endswith(b"\n"):
        raise AuditError(f"{path} ends with a torn line; verify it with policylang audit verify")
    start = data.rfind(b"\n", 0, len(data) - 1) + 1
    checked = _check_line(data[start:-1], key)
    if isinstance(checked, str):
        raise AuditError(
            f"{path} is not an audit log this sink can continue (its last line: "
            f"{checked}); nothing was changed"
        )
    return checked[0]["seq"], checked[1]


def _repair_plan(
    data: bytes, path: Path, key: bytes | None, before: tuple[int, str]
) -> tuple[tuple[int, str] | None, str]:
    """How to mend a file whose last line is torn: ``"cut"`` it or add its ``"newline"``.

    Raises :class:`AuditError` (the file is left alone) unless every complete line
    verifies as a chain and the tail is the beginning of that chain's next record.
    """
    cut = data.rfind(b"\n") + 1
    lines = data[:cut].split(b"\n")[:-1]
    result = _verify_lines(lines, key, None, None, None)
    if not result.ok:
        raise AuditError(
            f"{path} ends with an incomplete line and is not an intact audit log "
            f"({result.message}); nothing was changed"
        )
    seq, last = (result.last_seq, result.last_hash) if result.records else before
    verdict = torn_record(data[cut:], seq, last, key)
    if verdict is None:
        raise AuditError(
            f"{path} ends with an incomplete line that is not the start of an audit "
            "record of this chain (is it an audit log?); nothing was changed"
        )
    if verdict == "complete":
        checked = _check_line(data[cut:], key)
        assert not isinstance(checked, str)
        return (checked[0]["seq"], checked[1]), "newline"
    return ((seq, last) if result.records else None), "cut"


class LoggingSink:
    """Each record as one JSON line on a :mod:`logging` logger (for log shippers)."""

    def __init__(
        self, logger: logging.Logger | str = "policylang.audit", level: int = logging.INFO
    ):
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level

    def write(self, record: dict[str, Any]) -> None:
        self.logger.log(self.level, "%s", canonical(record))


class CallbackSink:
    """Hands each record to a function (a queue, a database, a test's list)."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]):
        self.fn = fn

    def write(self, record: dict[str, Any]) -> None:
        self.fn(record)


class MultiSink:
    """Writes to several sinks in order; fails if any of them fails."""

    def __init__(self, *sinks: Any):
        self.sinks = sinks

    def write(self, record: dict[str, Any]) -> None:
        for s in self.sinks:
            s.write(record) if hasattr(s, "write") else s(record)


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int  # records verified (before the first error, if any)
    first_error_line: int | None  # 1-based line number in the file
    message: str
    last_seq: int = 0
    last_hash: str = GENESIS
    repaired: bool = False  # a torn last line was cut off (or its newline added)

    def __bool__(self) -> bool:
        return self.ok

    def repaired_copy(self) -> VerifyResult:
        return replace(self, repaired=True) if self.ok else self


def _check_line(raw: bytes, key: bytes | None) -> tuple[dict[str, Any], str] | str:
    """A line's record and hash if it is a well-formed chained record, else what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 (the file was edited)"
    m = _TAIL.search(text)
    if m is None:
        return "no hash at the end of the line (edited or not an audit record)"
    body = text[: m.start()] + "}"
    try:
        rec = json.loads(body)
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(rec, dict) or canonical(rec) != body:
        return "not in canonical form (the line was edited)"
    if not hmac.compare_digest(_digest(body, key), m.group(1)):
        return "hash does not match the content (the line was edited, or another key)"
    if type(rec.get("seq")) is not int or not isinstance(rec.get("prev"), str):
        return "missing seq or prev"
    return rec, m.group(1)


class _Anchor:
    """A head to check the log against: record ``seq`` must be there (with ``hash``, if given)."""

    def __init__(self, seq: int | None, digest: str | None, origin: str):
        self.seq, self.hash, self.origin = seq, digest, origin
        self.found = False
        self.first_seq: int | None = None

    def see(self, seq: int, digest: str) -> str | None:
        if self.first_seq is None:
            self.first_seq = seq
        if self.seq is not None and seq == self.seq:
            if self.hash is not None and digest != self.hash:
                return (
                    f"record seq {seq} has hash {digest[:12]}..., but {self.origin} says "
                    f"{self.hash[:12]}...: the log was rewritten from there on"
                )
            self.found = True
        elif self.seq is None and digest == self.hash:
            self.found = True
        return None

    def verdict(self, last_seq: int) -> str | None:
        if self.found:
            return None
        if self.seq is None:
            return (
                f"no record has the hash {self.hash} that {self.origin} names: records were cut "
                "from the end, or the log was rewritten"
            )
        if last_seq < self.seq:
            cut = self.seq - last_seq
            return (
                f"the log ends at seq {last_seq}, but {self.origin} says seq {self.seq}: "
                f"{cut} record{'s' if cut != 1 else ''} at the end {'are' if cut != 1 else 'is'} "
                "missing (cut or dropped)"
            )
        return (
            f"seq {self.seq} ({self.origin}) is older than this file, which starts at seq "
            f"{self.first_seq}: verify it together with its rotated files (--chain)"
        )


def _anchor(seq: int | None, digest: str | None, origin: str) -> _Anchor | None:
    """An anchor to check, or None: none given, or a head of an empty chain (seq 0)."""
    if seq == 0 or (seq is None and digest is None):
        return None
    return _Anchor(seq, digest, origin)


def _verify_lines(
    lines: list[bytes],
    key: bytes | None,
    expect_seq: int | None,
    expect_prev: str | None,
    anchor: _Anchor | None,
) -> VerifyResult:
    """Check complete lines: each record's form and hash, and its ``seq``/``prev`` link."""
    count = 0
    seq, prev = expect_seq, expect_prev
    note = ""
    for number, raw in enumerate(lines, 1):

        def bad(
            msg: str,
            number: int = number,
            count: int = count,
            seq: int | None = seq,
            prev: str | None = prev,
        ) -> VerifyResult:
            return VerifyResult(
                False, count, number, f"line {number}: {msg}", seq or 0, prev or GENESIS
            )

        checked = _check_line(raw, key)
        if isinstance(checked, str):
            return bad(checked)
        rec, digest = checked
        rseq, rprev = rec["seq"], rec["prev"]
        if seq is None and prev is None:
            if rseq == 1 and rprev != GENESIS:
                return bad("the first record does not start the chain")
            if rseq != 1:
                note = f"; chain starts at seq {rseq} (earlier records are in rotated files)"
        else:
            if seq is not None and rseq != seq + 1:
                kind = "missing or deleted" if rseq > seq + 1 else "repeated or reordered"
                return bad(f"seq {rseq} follows seq {seq}: records are {kind}")
            if prev is not None and rprev != prev:
                return bad(
                    "prev does not match the hash of the record before (inserted, deleted "
                    "or reordered lines)"
                )
        if anchor is not None:
            wrong = anchor.see(rseq, digest)
            if wrong:
                return bad(wrong)
        seq, prev = rseq, digest
        count += 1
    return VerifyResult(
        True, count, None, f"{count} records verified" + note, seq or 0, prev or GENESIS
    )


def _top_level_keys(tail: bytes) -> dict[str, int] | None:
    """Offsets of the values of the top-level keys in a prefix of canonical JSON, or None.

    None when the bytes cannot begin a canonical record: no whitespace or control
    character outside strings, no raw control character inside one, balanced so far.
    """
    if tail == b"{":
        return {}
    if not tail.startswith(b'{"'):
        return None
    keys: dict[str, int] = {}
    depth = 0
    in_str = esc = False
    key_start = -1
    want_key = False
    allowed = frozenset(b"{}[]:,-+.0123456789eEtrufalsn")
    for i, b in enumerate(tail):
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:
                esc = True
            elif b == 0x22:
                in_str = False
                if key_start >= 0:
                    keys[tail[key_start:i].decode("utf-8", "replace")] = i + 2
                    key_start = -1
            elif b < 0x20:
                return None
            continue
        if b == 0x22:
            in_str = True
            if depth == 1 and want_key:
                key_start = i + 1
            want_key = False
            continue
        if b not in allowed:
            return None
        if b in b"{[":
            depth += 1
            want_key = b == 0x7B and depth == 1
        elif b in b"}]":
            depth -= 1
            if depth < 1:
                return None  # a complete value is not a torn record (checked separately)
        elif b == 0x2C:
            want_key = depth == 1
    return keys


def torn_record(
    tail: bytes, seq: int, prev: str, key: bytes | None, any_start: bool = False
) -> str | None:
    """Is ``tail`` (a last line without its newline) the next record of a chain at ``(seq, prev)``?

    ``"complete"``: a whole record that verifies and continues the chain (only its
    newline is missing); ``"prefix"``: the beginning of one (its visible ``seq`` and
    ``prev``, if the cut came after them, continue the chain); None: something else.
    ``any_start``: no record precedes it, so any ``seq``/``prev`` is accepted.
    """
    checked = _check_line(tail, key)
    if not isinstance(checked, str):
        rec = checked[0]
        return "complete" if any_start or (rec["seq"] == seq + 1 and rec["prev"] == prev) else None
    with contextlib.suppress(ValueError):
        json.loads(tail)
        return None  # a whole JSON value that is not a record: not a torn write
    keys = _top_level_keys(tail)
    if keys is None:
        return None
    if "hash" in keys and re.search(rb',"hash"(:("[0-9a-f]{0,64}"?)?)?\Z', tail) is None:
        return None  # "hash" is the last key: only its own value may follow it
    if not any_start:
        if "seq" in keys:
            m = re.match(rb"(\d+)[,}]", tail[keys["seq"] :])
            if m is not None and int(m.group(1)) != seq + 1:
                return None
        if "prev" in keys:
            m = re.match(rb'"([0-9a-f]{64})"', tail[keys["prev"] :])
            if m is not None and m.group(1).decode() != prev:
                return None
    return "prefix"


def verify_file(
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    repair: bool = False,
    expect_prev: str | None = None,
    expect_seq: int | None = None,
    head_seq: int | None = None,
    head_hash: str | None = None,
    head_origin: str = "the anchor",
) -> VerifyResult:
    """Check every line of one audit file: form, hash, ``seq`` and ``prev`` links.

    The first record must start the chain (``seq`` 1, ``prev`` all zeros)
    unless ``expect_seq``/``expect_prev`` say where the previous file ended;
    a rotated file that starts later is accepted as it is and the message
    says so (use :func:`verify_chain` to check the files together). A last
    line without its newline is torn (a crash while writing); ``repair=True``
    cuts it off — only if every line before it verifies and it is the start
    of this chain's next record — and the result is ok if everything before
    it verifies.

    The chain cannot show records cut from the end. ``head_seq`` (the log
    must reach that record) and ``head_hash`` (that record, or with no
    ``head_seq`` some record, has this hash) are an anchor kept elsewhere,
    e.g. the sink's head file (:func:`read_head`); ``head_origin`` names it in
    messages.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        return VerifyResult(False, 0, None, f"cannot read {p}: {exc.strerror or exc}")
    anchor = _anchor(head_seq, head_hash, head_origin)
    cut = data.rfind(b"\n") + 1
    lines = data[:cut].split(b"\n")[:-1]
    tail = data[cut:]
    result = _verify_lines(lines, key, expect_seq, expect_prev, anchor)
    if not result.ok:
        return result
    repaired = False
    if tail:
        if not repair:
            return VerifyResult(
                False,
                result.records,
                len(lines) + 1,
                f"line {len(lines) + 1}: torn last line (no newline; a write was "
                "cut off); --repair cuts it",
                result.last_seq,
                result.last_hash,
            )
        verdict = torn_record(
            tail,
            result.last_seq,
            result.last_hash,
            key,
            any_start=not result.records and expect_seq is None,
        )
        if verdict is None:
            return VerifyResult(
                False,
                result.records,
                len(lines) + 1,
                f"line {len(lines) + 1}: the last line has no newline and is not "
                "the start of this chain's next record; not repaired (nothing "
                "was changed)",
                result.last_seq,
                result.last_hash,
            )
        try:
            fd = os.open(p, os.O_RDWR | _CLOEXEC | _NOFOLLOW)
        except OSError as exc:
            return VerifyResult(
                False,
                result.records,
                len(lines) + 1,
                f"cannot repair {p}: {exc.strerror}",
                result.last_seq,
                result.last_hash,
            )
        try:
            if os.fstat(fd).st_size != len(data):
                return VerifyResult(
                    False,
                    result.records,
                    len(lines) + 1,
                    f"{p} changed while it was verified; not repaired",
                    result.last_seq,
                    result.last_hash,
                )
            if verdict == "complete":
                os.pwrite(fd, b"\n", len(data))
                return verify_file(
                    p,
                    key=key,
                    expect_prev=expect_prev,
                    expect_seq=expect_seq,
                    head_seq=head_seq,
                    head_hash=head_hash,
                    head_origin=head_origin,
                ).repaired_copy()
            os.ftruncate(fd, cut)
        finally:
            os.close(fd)
        repaired = True
    if anchor is not None:
        wrong = anchor.verdict(result.last_seq)
        if wrong:
            return VerifyResult(
                False, result.records, None, wrong, result.last_seq, result.last_hash, repaired
            )
    msg = result.message + ("; a torn last line was cut off" if repaired else "")
    if anchor is not None:
        msg += f"; it reaches {anchor.origin}"
    return VerifyResult(
        True, result.records, None, msg, result.last_seq, result.last_hash, repaired
    )


def rotated_files(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` and its rotated files, oldest first (``path.N`` ... ``path.1``, ``path``).

    Rotated files are found by their exact names, ``<name>.<number>`` (never a glob:
    a log called ``audit[prod].jsonl`` means that file and no other).
    """
    p = Path(path)
    prefix = p.name + "."
    olds = []
    try:
        entries = list(os.scandir(p.parent))
    except OSError:
        entries = []
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and _DIGITS.fullmatch(name[len(prefix) :]):
            with contextlib.suppress(OSError):
                if entry.is_file():
                    olds.append((int(name[len(prefix) :]), p.with_name(name)))
    return [s for _, s in sorted(olds, reverse=True)] + ([p] if p.exists() else [])


def verify_chain(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    key: bytes | None = None,
    head_seq: int | None = None,
    head_hash: str | None = None,
    head_origin: str = "the anchor",
    expect_seq: int | None = None,
    expect_prev: str | None = None,
) -> VerifyResult:
    """Verify files that continue one chain, in order; a path alone means it and its rotated files.

    ``head_seq``/``head_hash`` anchor the end of the chain and ``expect_seq``/``expect_prev``
    its start (``0`` and all zeros: the oldest file must begin the chain), as in
    :func:`verify_file`.
    """
    files = (
        rotated_files(paths) if isinstance(paths, str | os.PathLike) else [Path(x) for x in paths]
    )
    anchor = _anchor(head_seq, head_hash, head_origin)
    total = 0
    seq: int | None = expect_seq
    prev: str | None = expect_prev
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as exc:
            return VerifyResult(
                False,
                total,
                None,
                f"cannot read {f}: {exc.strerror or exc}",
                seq or 0,
                prev or GENESIS,
            )
        cut = data.rfind(b"\n") + 1
        r = _verify_lines(data[:cut].split(b"\n")[:-1], key, seq, prev, anchor)
        if r.ok and data[cut:]:
            r = VerifyResult(
                False,
                r.records,
                r.records + 1,
                f"line {r.records + 1}: torn last line (no newline; a write was cut off)",
                r.last_seq,
                r.last_hash,
            )
        total += r.records
        if not r.ok:
            return VerifyResult(
                False, total, r.first_error_line, f"{f}: {r.message}", r.last_seq, r.last_hash
            )
        if r.records:
            seq, prev = r.last_seq, r.last_hash
    if anchor is not None:
        wrong = anchor.verdict(seq or 0)
        if wrong:
            return VerifyResult(False, total, None, wrong, seq or 0, prev or GENESIS)
    msg = f"{total} records verified in {len(files)} file(s)"
    if anchor is not None:
        msg += f"; the chain reaches {anchor.origin}"
    return VerifyResult(True, total, None, msg, seq or 0, prev or GENESIS)


# ---------------------------------------------------------------- the head file


def head_text(seq: int, digest: str, log_name: str, key: bytes | None = None) -> str:
    """The head file's one line: the chain's last ``seq`` and ``hash`` (and a MAC with a key)."""
    body: dict[str, Any] = {"file": log_name, "hash": digest, "kind": "audit_head", "seq": seq}
    if key is not None:
        body["mac"] = _digest(canonical(body), key)
    return canonical(body) + "\n"


def read_head(path: str | os.PathLike[str], *, key: bytes | None = None) -> tuple[int, str]:
    """``(seq, hash)`` from a head file; ``ValueError`` (a clear message) if it is not one.

    With ``key``, the head's MAC must verify (a head written without a key is refused).
    ``FileNotFoundError`` passes through.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"cannot read the head file {p}: {exc.strerror}") from None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if (
        not isinstance(body, dict)
        or body.get("kind") != "audit_head"
        or type(body.get("seq")) is not int
        or body["seq"] < 0
        or not isinstance(body.get("hash"), str)
        or not re.fullmatch(r"[0-9a-f]{64}", body["hash"])
    ):
        raise ValueError(
            f"{p} is not an audit head file (expected one line "
            '{"file":...,"hash":"<64 hex>","kind":"audit_head","seq":N})'
        )
    if key is not None:
        mac = body.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(_digest(canonical(body), key), mac):
            raise ValueError(
                f"the head file {p} is not signed with this key (edited, or written without it)"
            )
    return body["seq"], body["hash"]


def reopen_on_signal(sink: Any, signum: int | None = None) -> bool:
    """Call ``sink.reopen()`` when the process gets ``signum`` (``SIGHUP`` by default).

    The usual way to bring a log back after it was rotated away or deleted
    (``kill -HUP <pid>``). Must be called from the main thread; returns False
    (and installs nothing) where the signal or ``reopen`` does not exist.
    """
    import signal

    num = signum if signum is not None else getattr(signal, "SIGHUP", None)
    if num is None or not callable(getattr(sink, "reopen", None)):
        return False

    def reopen() -> None:
        try:
            sink.reopen()
        except OSError as exc:
            logging.getLogger("policylang.audit").error("reopening the audit log failed: %s", exc)
        else:
            logging.getLogger("policylang.audit").warning(
                "audit log %s reopened", getattr(sink, "path", sink)
            )

    def handler(received: int, frame: Any) -> None:
        # Not here: the handler runs on the main thread, which may be inside sink.write()
        # holding its lock (the server decides on that thread), so reopen on another one.
        threading.Thread(target=reopen, name="policylang-audit-reopen", daemon=True).start()

    signal.signal(num, handler)
    return True
