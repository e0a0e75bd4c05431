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
also recompute the chain; keep the last hash elsewhere, or pass a ``key``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    """The audit file cannot be written (or is already written by another process)."""


class JsonlSink:
    """Append-only JSON Lines audit file with a hash chain; thread-safe.

    Each record is one ``write`` system call on a file opened with
    ``O_APPEND`` (so a crash leaves at most a torn last line), flushed to the
    operating system before ``write`` returns, and ``os.fsync``-ed too when
    ``fsync=True`` (survives power loss; much slower).

    ``max_bytes`` rotates the file when the next line would take it past that
    size: ``audit.jsonl`` becomes ``audit.jsonl.1`` (older ones shift up to
    ``.{backups}``, the oldest is removed) and the chain continues in the new
    file. Opening an existing file continues its chain; a torn last line left
    by a crash is cut off first (``repair=False`` refuses to open instead).
    One process writes a file at a time (an exclusive ``flock`` is held).
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
    ):
        self.path = Path(path)
        self.fsync = fsync
        self.max_bytes = max_bytes
        self.backups = max(int(backups), 0)
        self.key = key
        self.repair = repair
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self.seq = 0
        self.last_hash = GENESIS
        self._open()

    # ---- file handling

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    raise AuditError(f"{self.path} is being written by another process") from exc
            self._resume(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def _resume(self, fd: int) -> None:
        """Continue the chain from the last record of this file, or of the newest rotated one."""
        for candidate in [self.path] + [self._rotated(i) for i in range(1, self.backups + 1)]:
            if not candidate.exists():
                continue
            last = _last_line(candidate)
            if last is None:
                continue
            text, torn_at = last
            if torn_at is not None:
                if candidate != self.path or not self.repair:
                    raise AuditError(
                        f"{candidate} ends with a torn line (at byte {torn_at}); "
                        f"run verify_file(path, repair=True)"
                    )
                os.ftruncate(fd, torn_at)
                last = _last_line(candidate)
                if last is None:
                    continue
                text, _ = last
            try:
                rec = json.loads(text)
                self.seq, self.last_hash = int(rec["seq"]), str(rec["hash"])
            except (ValueError, KeyError, TypeError) as exc:
                raise AuditError(
                    f"cannot continue the audit chain of {candidate}: "
                    f"its last line is not a chained record ({exc})"
                ) from exc
            return

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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd = fd
        self._size = 0

    # ---- writing

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._fd is None:
                raise AuditError(f"audit file {self.path} is closed")
            line, digest = _chain_line(record, self.seq + 1, self.last_hash, self.key)
            data = line.encode("utf-8")
            if (
                self.max_bytes is not None
                and self._size
                and self._size + len(data) > self.max_bytes
            ):
                self._rotate()
            view = memoryview(data)
            written = 0
            try:
                while written < len(data):
                    written += os.write(self._fd, view[written:])
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                if written:  # never leave half a record for the next one to follow
                    with contextlib.suppress(OSError):
                        os.ftruncate(self._fd, self._size)
                raise
            self._size += len(data)
            self.seq += 1
            self.last_hash = digest

    __call__ = write

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_line(path: Path) -> tuple[str, int | None] | None:
    """The last complete line of a file, and where a torn tail starts (None if none)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return None
        block = 1 << 16
        pos = size
        buf = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
            if buf.count(b"\n") >= 2 or pos == 0:
                break
    torn_at = None
    if not buf.endswith(b"\n"):
        cut = buf.rfind(b"\n")
        torn_at = size - (len(buf) - cut - 1) if cut >= 0 else 0
        buf = buf[: cut + 1] if cut >= 0 else b""
        if not buf:
            return ("", torn_at) if torn_at is not None else None
    lines = buf.rstrip(b"\n").split(b"\n")
    return lines[-1].decode("utf-8", "replace"), torn_at


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
    repaired: bool = False  # a torn last line was cut off

    def __bool__(self) -> bool:
        return self.ok


def verify_file(
    path: str | os.PathLike[str],
    *,
    key: bytes | None = None,
    repair: bool = False,
    expect_prev: str | None = None,
    expect_seq: int | None = None,
) -> VerifyResult:
    """Check every line of one audit file: form, hash, ``seq`` and ``prev`` links.

    The first record must start the chain (``seq`` 1, ``prev`` all zeros)
    unless ``expect_seq``/``expect_prev`` say where the previous file ended;
    a rotated file that starts later is accepted as it is and the message
    says so (use :func:`verify_chain` to check the files together). A last
    line without its newline is torn (a crash while writing); ``repair=True``
    cuts it off and the result is ok if everything before it verifies.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        return VerifyResult(False, 0, None, f"cannot read {p}: {exc}")
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    repaired = False
    torn_msg = None
    if tail:
        if repair:
            with open(p, "r+b") as f:
                f.truncate(len(data) - len(tail))
            repaired = True
        else:
            torn_msg = f"line {len(lines) + 1}: torn last line (no newline; a write was cut off)"
    count = 0
    seq = expect_seq
    prev = expect_prev
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
                False, count, number, f"line {number}: {msg}", seq or 0, prev or GENESIS, repaired
            )

        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return bad("not ASCII (the file was edited)")
        m = _TAIL.search(text)
        if m is None:
            return bad("no hash at the end of the line (edited or not an audit record)")
        body = text[: m.start()] + "}"
        try:
            rec = json.loads(body)
        except ValueError as exc:
            return bad(f"not valid JSON ({exc})")
        if not isinstance(rec, dict) or canonical(rec) != body:
            return bad("not in canonical form (the line was edited)")
        if _digest(body, key) != m.group(1):
            return bad("hash does not match the content (the line was edited)")
        rseq, rprev = rec.get("seq"), rec.get("prev")
        if type(rseq) is not int or not isinstance(rprev, str):
            return bad("missing seq or prev")
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
        seq, prev = rseq, m.group(1)
        count += 1
    if torn_msg:
        return VerifyResult(False, count, len(lines) + 1, torn_msg, seq or 0, prev or GENESIS)
    msg = (
        f"{count} records verified" + note + ("; a torn last line was cut off" if repaired else "")
    )
    return VerifyResult(True, count, None, msg, seq or 0, prev or GENESIS, repaired)


def rotated_files(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` and its rotated files, oldest first (``path.N`` ... ``path.1``, ``path``)."""
    p = Path(path)
    olds = []
    for sib in p.parent.glob(p.name + ".*"):
        suffix = sib.name[len(p.name) + 1 :]
        if suffix.isdigit():
            olds.append((int(suffix), sib))
    return [s for _, s in sorted(olds, reverse=True)] + ([p] if p.exists() else [])


def verify_chain(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, key: bytes | None = None
) -> VerifyResult:
    """Verify files that continue one chain, in order; a path alone means it and its rotated files."""
    files = (
        rotated_files(paths) if isinstance(paths, str | os.PathLike) else [Path(x) for x in paths]
    )
    total = 0
    seq: int | None = None
    prev: str | None = None
    for f in files:
        r = verify_file(f, key=key, expect_seq=seq, expect_prev=prev)
        total += r.records
        if not r.ok:
            return VerifyResult(
                False, total, r.first_error_line, f"{f}: {r.message}", r.last_seq, r.last_hash
            )
        if r.records:
            seq, prev = r.last_seq, r.last_hash
    return VerifyResult(
        True,
        total,
        None,
        f"{total} records verified in {len(files)} file(s)",
        seq or 0,
        prev or GENESIS,
    )
