"""The Engine: load a policy once, then ``decide()`` tool calls fast and fail closed.

Takes a compiled policy, a clock, a rate-limit store and an optional audit
sink; gives a :class:`~policylang.runtime.decision.Decision` per call. The
combining rule lives in :func:`combine`: any matching deny → deny; else an
exhausted limit → deny; else any confirm → confirm; else any allow → allow;
else the policy default. Any exception while deciding becomes a deny that
says why. Reloads compile off to the side and swap in atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import orjson

from policylang.compiler.build import _UNDECLARED_CACHE, CompiledPolicy, ToolEvaluator
from policylang.compiler.interpreter import Err
from policylang.compiler.plan import RulePlan, limit_identities
from policylang.errors import (
    Diagnostic,
    EvalError,
    PolicyError,
    PolicyLoadError,
    RequestError,
    Span,
    StoreUnavailable,
)
from policylang.language import ast
from policylang.language.secrets import WITHHELD, secret_scope
from policylang.language.types import Type
from policylang.runtime import caches, celops, timefuncs
from policylang.runtime import options as _options
from policylang.runtime.audit import _default as _audit_default
from policylang.runtime.audit import json_safe
from policylang.runtime.clock import Clock, SystemClock
from policylang.runtime.decision import (
    Decision,
    Effect,
    ErrorInfo,
    LimitState,
    Origin,
    RuleRef,
    fast,
)
from policylang.runtime.limits import LimitRequest, LimitStore, MemoryStore, Receipt, canonical_key
from policylang.runtime.loader import load_sources, read_path
from policylang.runtime.names import NameIndex, UnknownToolText, shown
from policylang.runtime.redact import CLEAN_CODES, MARKER, Scrubber, SecretFields
from policylang.runtime.sessions import MemorySessionStore, SessionStore
from policylang.runtime.validation import check_finite, fast_object_checker, object_checker
from policylang.runtime.watch import (
    DEFAULT_SETTLE,
    PolicyWatcher,
    ReloadReport,
    dropped_rules,
    read_stable,
)

AuditSink = Callable[[dict[str, Any]], None] | Any

_EMPTY: dict[
    str, Any
] = {}  # what a missing args/principal/context reads as on the fused path (never written)
_new = object.__new__
_NO_POLICY = Origin()
_perf_counter = time.perf_counter
_time = time.time
_EFFECTS = {"allow": Effect.ALLOW, "deny": Effect.DENY, "confirm": Effect.CONFIRM}
_NOW_CACHE_SIZE = 4096
_KEY_CACHE_SIZE = 16_384
_OUTCOME_CACHE_SIZE = 65_536
_PENDING_CONFIRMS = 10_000
_reload_log = logging.getLogger("policylang.reload")


def _decision(
    effect: Effect,
    tool: str,
    code: str,
    reasons: list[str],
    refs: list[Any],
    limits: list[Any],
    errors: list[Any],
    message: str,
    prepared: _Prepared,
    now: datetime,
) -> Decision:
    """A Decision built from fields our own code produced (no validation)."""
    return Decision._raw(
        effect, tool, code, reasons, refs, limits, errors, message, prepared.origin, now
    )


def _unknown_tool(prepared: _Prepared, tool: str) -> Decision:
    """Deny ``unknown_tool``; the "did you mean" text is composed only if someone reads it."""
    d = Decision._raw(
        Effect.DENY,
        tool,
        "unknown_tool",
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        [],
        [],
        None,  # type: ignore[arg-type]
        prepared.origin,
        None,
    )
    d._out = UnknownToolText(tool, prepared.names)  # type: ignore[assignment]
    return d


def combine(
    denied: bool, limit_exhausted: bool, confirmed: bool, allowed: bool, default: str
) -> Effect:
    """The one combining rule; order of rules never matters, deny always wins."""
    if denied or limit_exhausted:
        return Effect.DENY
    if confirmed:
        return Effect.CONFIRM
    if allowed:
        return Effect.ALLOW
    return _EFFECTS[default]


class _Prepared:
    """A compiled policy plus the per-tool validators, swapped in as one object."""

    def __init__(self, compiled: CompiledPolicy, warnings: list[Diagnostic], id_prefix: str = ""):
        self.compiled = compiled
        self.policy = compiled.policy
        self.warnings = warnings
        zone = compiled.zone
        self.zone: tzinfo = zone
        self.validators = {
            name: fast_object_checker(
                info.args, object_checker(info.args, zone, strict=True), copy=False
            )
            for name, info in self.policy.tools.items()
        }
        p, c = self.policy.principal, self.policy.context
        self.principal_check = (
            fast_object_checker(
                p,
                object_checker(p, zone, strict=False, what="principal field"),
                copy=False,
                strict=False,
            )
            if p
            else None
        )
        if c is not None:  # `now` is parsed once, through the engine's cache, in _now()
            c = Type("object", fields=tuple(f for f in c.fields if f[0] != "now"))
        self.context_check = (
            fast_object_checker(
                c,
                object_checker(c, zone, strict=False, what="context field"),
                copy=True,
                strict=False,
            )
            if c
            else None
        )
        self.context_owned = c is not None  # the checker returns a fresh dict we may fill in
        self.hash = self.policy.content_hash
        self.undeclared_open = self.policy.open_tools or self.policy.default == "allow"
        self.names = NameIndex(
            self.policy
        )  # near misses and suggestions (policylang.runtime.names)
        self.now_cache: dict[str, datetime] = {}
        self.outcomes: dict[tuple[Any, ...], tuple[str, tuple[str, ...], tuple[Any, ...], str]] = {}
        self.limit_consts: dict[int, tuple[str, float, float, str]] = {}
        self.key_cache: dict[str, str] = {}  # by values (strings) -> their canonical_key
        # what each limit's counters are kept under, by the id decisions show (see limit_identities)
        self.limit_store_ids = dict(
            zip(
                (self.policy.rule_id(lim) for lim in self.policy.limits),
                limit_identities(self.policy),
                strict=True,
            )
        )
        self.name = self.policy.name
        self.version = self.policy.version
        self.origin = Origin(self.name, self.version, self.hash, id_prefix, zone)
        # Where each tool's @secret values live (args, principal, context; any depth): what the
        # audit record, the session history and error texts redact (policylang.runtime.redact).
        shape_p, shape_c = self.policy.principal, self.policy.context
        self.secrets: dict[str, SecretFields] = {
            name: fields
            for name, info in self.policy.tools.items()
            if (fields := SecretFields.of(info.args, shape_p, shape_c)) is not None
        }
        self.secrets_undeclared = SecretFields.of(None, shape_p, shape_c)
        self._secret_sessions: dict[
            str | None, bool
        ] = {}  # per tool: the session key reads a secret
        self.shared: dict[Any, Any] = {}  # texts of fused outcomes, one object per distinct value
        # Fused per-tool functions (policylang.compiler.fused) and, per tool, the outcome of each
        # bitmask of matched rules they return (see _fused_outcome).
        self.fused: dict[
            str, tuple[Callable[..., int | None], bool, dict[int, Any], ToolEvaluator]
        ] = {
            tool: (ev.fused, ev.fused_plan.uses_now, {}, ev)
            for tool, ev in compiled.evaluators.items()
            if ev.fused is not None and ev.fused_plan is not None
        }
        # RuleRefs of rules with a fixed reason are shared between decisions (never mutated).
        self.refs: dict[int, RuleRef] = {}

    def session_secret(self, tool: str) -> bool:
        """Does this tool's session key read a @secret value? (worked out once per tool)"""
        name = tool if tool in self.policy.tools else None
        known = self._secret_sessions.get(name)
        if known is None:
            known = self._secret_sessions[name] = secret_scope(self.policy, name).session
        return known

    def secrets_for(self, tool: str) -> SecretFields | None:
        """Where the @secret values of a call to ``tool`` are, or None when it can hold none."""
        fields = self.secrets.get(tool)
        if fields is None and tool not in self.policy.tools:
            return self.secrets_undeclared
        return fields


class Engine:
    """Decides tool calls against one policy. Thread-safe; share one per process."""

    def __init__(
        self,
        compiled: CompiledPolicy | None = None,
        *,
        warnings: list[Diagnostic] | None = None,
        clock: Clock | None = None,
        store: LimitStore | None = None,
        audit: AuditSink | None = None,
        source_path: str | Path | None = None,
        sessions: SessionStore | None = None,
    ):
        """Every option is checked here: a wrong one raises TypeError now, not a deny per decision.

        ``audit`` is a sink (an object with ``write(record)``, or a function of
        one record) or a file path (``str`` or ``Path``), which opens a
        hash-chained :class:`~policylang.runtime.audit.JsonlSink` there.
        """
        if compiled is not None and not isinstance(compiled, CompiledPolicy):
            raise _options.fail(
                "Engine",
                "compiled",
                "a CompiledPolicy (use Engine.from_path or Engine.from_string to load a policy)",
                compiled,
            )
        if warnings is not None and not (
            isinstance(warnings, list | tuple) and all(isinstance(w, Diagnostic) for w in warnings)
        ):
            raise _options.fail("Engine", "warnings", "a list of Diagnostic", warnings)
        _options.methods("Engine", "store", store, ("acquire", "refund"), "a rate-limit store")
        _options.methods("Engine", "sessions", sessions, ("load", "append"), "a session store")
        if source_path is not None and not isinstance(source_path, str | os.PathLike):
            raise _options.fail("Engine", "source_path", "a path (str or Path)", source_path)
        audit = _audit_sink(audit)
        self._id_prefix = os.urandom(4).hex()
        # receipts (what a decision booked in the store) are this plus the decision id: unique
        # across the engines and processes that share one store
        self._receipt_salt = os.urandom(8).hex()
        self._settle_lock = threading.Lock()  # a receipt changes state (commit, refund) once
        self._prepared = (
            _Prepared(compiled, list(warnings or []), self._id_prefix)
            if compiled is not None
            else None
        )
        self.clock = clock or SystemClock()
        self.store: LimitStore = store if store is not None else MemoryStore()
        _check_store(self.store)
        self.audit = audit
        self.sessions: SessionStore = sessions if sessions is not None else MemorySessionStore()
        self.source_path = Path(source_path) if source_path is not None else None
        self.follow_links = False  # reload() may read links out of the policy folder
        self._ids = itertools.count(1)
        self._reload_lock = threading.Lock()
        # confirm decisions waiting for approval: decision id -> their session record
        self._pending: OrderedDict[str, tuple[ast.SessionDecl, str, dict[str, Any]]] = OrderedDict()
        self._pending_lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        """The engine's time: limit windows, session expiry and history, commits and refunds.

        It is also the rules' ``now`` when the request does not send ``context.now``;
        a request's ``context.now`` changes what rules see, never the engine's time.
        """
        return self._clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        if isinstance(clock, datetime):  # has a now() too, but means "decide at this time"
            raise _options.fail(
                "Engine", "clock", "a clock (FixedClock(at) for a fixed time)", clock
            )
        _options.methods("Engine", "clock", clock, ("now",), "a clock")
        _check_clock(clock)
        self._clock = clock
        # the system clock's reading can become a datetime later, only if someone reads decision.at
        self._lazy_clock = type(clock) is SystemClock

    # ---- construction

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        *,
        data: dict[str, Any] | None = None,
        reference: bool = False,
        follow_links: bool = False,
        **options: Any,
    ) -> Engine:
        """Load a ``.policy`` file, or a folder of them with their data files.

        A file that is a symbolic link resolving outside the policy folder is a
        load error unless ``follow_links=True`` (kept for :meth:`reload`).
        """
        _load_options("from_path", data, reference)
        sources, loaded = read_path(path, data, follow_links=follow_links)
        compiled, warnings = load_sources(sources, loaded, reference, copy_data=False)
        engine = cls(compiled, warnings=warnings, source_path=path, **options)
        engine.follow_links = follow_links
        return engine

    @classmethod
    def from_string(
        cls,
        text: str,
        *,
        data: dict[str, Any] | None = None,
        path: str = "<string>",
        reference: bool = False,
        **options: Any,
    ) -> Engine:
        """Load policy text (handy in tests and notebooks).

        ``reference=True`` evaluates every condition with the reference interpreter
        instead of generated code: slower, and the oracle for differential tests.
        """
        _load_options("from_string", data, reference)
        compiled, warnings = load_sources({path: text}, data or {}, reference)
        return cls(compiled, warnings=warnings, **options)

    @classmethod
    def from_sources(
        cls,
        sources: dict[str, str],
        *,
        data: dict[str, Any] | None = None,
        reference: bool = False,
        **options: Any,
    ) -> Engine:
        _load_options("from_sources", data, reference)
        if not isinstance(sources, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
        ):
            raise _options.fail(
                "Engine.from_sources", "sources", "a dict of file name to policy text", sources
            )
        compiled, warnings = load_sources(dict(sources), data or {}, reference)
        return cls(compiled, warnings=warnings, **options)

    @classmethod
    def empty(cls, **options: Any) -> Engine:
        """An engine with no policy: every decision is deny ``no_policy``."""
        return cls(None, **options)

    # ---- reload (atomic swap; a broken policy never replaces a working one)

    def reload(
        self,
        path: str | Path | None = None,
        *,
        data: dict[str, Any] | None = None,
        settle: float = DEFAULT_SETTLE,
        require_files: Collection[str] = (),
        allow_drops: bool = True,
    ) -> ReloadReport:
        """Load the policy at ``path`` (default: where it came from) and swap it in whole.

        The files are read as a stable snapshot (:func:`~policylang.runtime.watch.read_stable`:
        read twice ``settle`` seconds apart, unchanged in between), so a file caught
        mid-write is never compiled. Any error raises and the old policy keeps serving.
        ``require_files``: files that must still exist (the watcher passes the set that is
        serving, so a vanished file never yields a partial policy). A new version that no
        longer has some rule of the old one is logged as a warning naming each rule
        (``allow_drops=False`` refuses it instead). Returns what was swapped in.
        """
        _load_options("reload", data, False)
        target = path if path is not None else self.source_path
        if target is None:
            raise PolicyError("this engine was not loaded from a path; pass one to reload()")
        with self._reload_lock:
            snap = read_stable(
                target, data, settle=settle, require=require_files, follow_links=self.follow_links
            )
            # raises: the old policy stays
            compiled, warnings = load_sources(snap.sources, snap.data, copy_data=False)
            old = self._prepared
            dropped = dropped_rules(old.policy, compiled.policy) if old is not None else ()
            if dropped and not allow_drops:
                raise PolicyLoadError(
                    [
                        Diagnostic(
                            "PL002",
                            f"the new version removes {len(dropped)} rule(s) the serving policy "
                            f"has: {'; '.join(dropped)}",
                            Span(str(target), 1, 1, 1, 2),
                            "error",
                            "reload with allow_drops=True if the removal is meant",
                        )
                    ]
                )
            self._prepared = _Prepared(compiled, warnings, self._id_prefix)
            self.source_path = Path(target)
        if dropped:
            _reload_log.warning(
                "reloaded %s: %d rule(s) of the previous version are gone (removed or changed): %s",
                target,
                len(dropped),
                "; ".join(dropped),
            )
        return ReloadReport(
            str(target),
            compiled.policy.content_hash,
            tuple(snap.files),
            dropped,
            tuple((f, st) for f, (st, _) in snap.files.items()),
        )

    def watch(
        self,
        interval: float = 1.0,
        *,
        on_reload: Callable[[Engine], Any] | None = None,
        on_error: Callable[[Any], Any] | None = None,
        **options: Any,
    ) -> PolicyWatcher:
        """Reload automatically when the policy's files change (see :mod:`policylang.runtime.watch`).

        Returns the running watcher; call ``stop()`` on it (or use it in a ``with``) to end
        watching. ``options`` go to :class:`~policylang.runtime.watch.PolicyWatcher`
        (``on_warning``, ``debounce``, ``settle``, ``max_wait``, ``allow_drops``, ``metrics``).
        """
        if self.source_path is None:
            raise PolicyError("only an engine loaded with Engine.from_path() can watch its files")
        return PolicyWatcher(self, self.source_path, interval, on_reload, on_error, **options)

    def reload_string(
        self, text: str, *, data: dict[str, Any] | None = None, path: str = "<string>"
    ) -> None:
        _load_options("reload_string", data, False)
        with self._reload_lock:
            compiled, warnings = load_sources({path: text}, data or {})
            self._prepared = _Prepared(compiled, warnings, self._id_prefix)

    # ---- introspection

    @property
    def compiled(self) -> CompiledPolicy | None:
        return self._prepared.compiled if self._prepared else None

    @property
    def warnings(self) -> list[Diagnostic]:
        return list(self._prepared.warnings) if self._prepared else []

    @property
    def policy_name(self) -> str:
        return self._prepared.policy.name if self._prepared else ""

    @property
    def policy_version(self) -> str | None:
        return self._prepared.policy.version if self._prepared else None

    @property
    def policy_hash(self) -> str:
        return self._prepared.hash if self._prepared else ""

    @property
    def tools(self) -> list[str]:
        return list(self._prepared.policy.tools) if self._prepared else []

    def cache_stats(self) -> dict[str, dict[str, int]]:
        """Every bounded cache: ``{name: {"entries", "bound", "evictions"}}`` (see runtime.caches)."""
        p = self._prepared
        if p is None:
            return caches.stats()
        return caches.stats(
            {
                "now": (len(p.now_cache), _NOW_CACHE_SIZE),
                "outcomes": (len(p.outcomes), _OUTCOME_CACHE_SIZE),
                "shared": (len(p.shared), _OUTCOME_CACHE_SIZE),
                "fused": (
                    max((len(f[2]) for f in p.fused.values()), default=0),
                    _OUTCOME_CACHE_SIZE,
                ),
                "undeclared": (p.compiled.undeclared_count(), _UNDECLARED_CACHE),
            }
        )

    def source_for(self, tool: str) -> str:
        """The generated Python source of one tool's evaluator."""
        if self._prepared is None:
            raise KeyError("no policy is loaded")
        return self._prepared.compiled.source_for(tool)

    # ---- deciding

    def decide(
        self,
        tool: str,
        args: dict[str, Any] | None = None,
        principal: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> Decision:
        """Decide one tool call. Never raises: any failure is a deny that says why."""
        started = _perf_counter()
        prepared = self._prepared  # one snapshot for the whole decision
        if type(tool) is str and prepared is not None:
            fused = prepared.fused.get(tool)
            if fused is not None:  # the fused path: one generated call, a prebuilt outcome
                finish = None
                try:
                    fn, uses_now, table, ev = fused
                    pinned = type(context) is dict and context.get("now") is not None
                    if pinned:
                        at: Any = self._pinned_now(prepared, context["now"])  # type: ignore[index]
                    elif uses_now or not self._lazy_clock:
                        at = self.clock.now().astimezone(prepared.zone)
                    else:
                        at = _time()  # turned into a datetime only if someone reads decision.at
                    fa = _EMPTY if args is None else args
                    fp = _EMPTY if principal is None else principal
                    fc = _EMPTY if context is None else context
                    m = fn(fa, fp, fc, at, tool)
                    if m is not None:
                        if type(m) is tuple:  # the rules saw converted or completed copies
                            m, fa, fp, fc = m
                        out = table.get(m)
                        if out is None:
                            out = self._fused_outcome(prepared, tool, ev, m, table)
                        if type(out) is tuple:
                            d = _new(
                                Decision
                            )  # the rest is read from d._out when asked: see Decision
                            d.effect, d.code, d._out = out
                            d.tool, d._origin, d._at = tool, prepared.origin, at
                            d._reasons = d._rules = d._message = None
                            d._limits = d._errors = ()
                            d._args, d._sid = fa, None  # what a guard runs the tool with
                            d._id = next(self._ids)
                            d.elapsed_us = (_perf_counter() - started) * 1e6
                            if self.audit is None:
                                return d
                            return self._record(d, prepared, tool, args, principal, context)
                        finish = (out, ev, fa, fp, fc, at, pinned)
                except Exception:  # noqa: BLE001, S110 - nothing is booked yet: the ordinary path decides
                    pass
                else:
                    if finish is not None:
                        return self._finish_fused(
                            prepared, tool, finish, started, args, principal, context
                        )
        if type(tool) is not str and isinstance(tool, str):
            tool = str.__str__(tool)  # a str subclass's own __format__/__eq__ never runs in here
        did = f"{self._id_prefix}-{next(self._ids):x}"
        try:
            decision = self._decide(prepared, tool, args, principal, context, did)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything at all
            decision = self._failure(
                prepared,
                tool,
                "internal_error",
                f"internal error while deciding: {type(exc).__name__}: {exc}",
            )
        if (
            decision.code not in CLEAN_CODES or decision._errors
        ):  # texts that may quote request values
            decision = _scrub(prepared, tool, decision, args, principal, context)
        decision.elapsed_us = (_perf_counter() - started) * 1e6
        decision._id = did
        if self.audit is not None:
            decision = self._record(decision, prepared, tool, args, principal, context)
        return decision

    def _finish_fused(
        self,
        prepared: _Prepared,
        tool: str,
        finish: Any,
        started: float,
        args: Any,
        principal: Any,
        context: Any,
    ) -> Decision:
        """A fused outcome that depends on this request (templated reasons, limits to book).

        Outside the fused path's fall-back: once limits may have been booked, an
        unexpected error is a deny, never a second decision on the ordinary path.
        """
        out, ev, fa, fp, fc, at, pinned = finish
        n = next(self._ids)
        try:
            now = at if type(at) is not float else datetime.fromtimestamp(at, prepared.zone)
            clock_now = self._clock_now(prepared) if pinned else now
            d = self._evaluate(
                prepared,
                ev,
                tool,
                fa,
                fp,
                fc,
                now,
                None,
                out,
                clock_now,
                f"{self._id_prefix}-{n:x}",
            )
            d._args = fa
        except Exception as exc:  # noqa: BLE001 - fail closed on anything at all
            d = self._failure(
                prepared,
                tool,
                "internal_error",
                f"internal error while deciding: {type(exc).__name__}: {exc}",
            )
        if d.code not in CLEAN_CODES or d._errors:
            d = _scrub(prepared, tool, d, args, principal, context)
        d._id = n
        d.elapsed_us = (_perf_counter() - started) * 1e6
        if self.audit is None:
            return d
        return self._record(d, prepared, tool, args, principal, context)

    def _decide(
        self,
        prepared: _Prepared | None,
        tool: Any,
        args: Any,
        principal: Any,
        context: Any,
        did: str = "",
    ) -> Decision:
        if prepared is None:
            return self._failure(None, str(tool), "no_policy", "no policy is loaded")
        if not isinstance(tool, str) or not tool:
            return self._failure(
                prepared, str(tool), "invalid_request", "the tool name must be a non-empty string"
            )
        compiled = prepared.compiled
        ev = compiled.evaluators.get(tool)
        if ev is None:
            if not prepared.undeclared_open:
                return _unknown_tool(prepared, tool)
            near = prepared.names.near_miss(tool) if prepared.names.active else None
            if near is not None:
                return self._failure(
                    prepared,
                    tool,
                    "unknown_tool",
                    f"'{shown(tool)}' is not a tool this "
                    f"policy declares, but it reads like {near[1]}; a name that "
                    "differs only in case, spacing, separators or look-alike "
                    "characters is denied whatever the default",
                )
            ev = compiled.evaluator_for(tool)
        try:
            _check_finite(args, principal, context)
            a = self._args(prepared, ev, tool, args)
            p = (
                prepared.principal_check(principal if principal is not None else {}, "")
                if prepared.principal_check
                else _as_map(principal, "principal")
            )
            c = (
                prepared.context_check(context if context is not None else {}, "")
                if prepared.context_check
                else _as_map(context, "context")
            )
            now, clock_now = self._now(prepared, c)
        except RequestError as exc:
            return self._failure(prepared, tool, "invalid_request", exc.message)
        session = prepared.policy.session
        if session is None:
            decision = self._evaluate(prepared, ev, tool, a, p, c, now, None, None, clock_now, did)
            decision._args = a  # the arguments decided on: a guard runs the tool with exactly these
            return decision
        s = self._session(prepared, session, a, p, c, now, tool, clock_now)
        if isinstance(s, Decision):
            return s
        decision = self._evaluate(prepared, ev, tool, a, p, c, now, s, None, clock_now, did)
        decision._args, decision._sid = a, s["id"]
        self._remember(prepared, session, s, tool, a, decision, clock_now, did)
        return decision

    def _evaluate(
        self,
        prepared: _Prepared,
        ev: ToolEvaluator,
        tool: str,
        a: Any,
        p: Any,
        c: Any,
        now: datetime,
        s: Any,
        ran: Any = None,
        clock_now: datetime | None = None,
        did: str = "",
    ) -> Decision:
        """Combine the matched rules (``ran``: already matched by a fused function) with the limits.

        ``now`` is the rules' time, ``clock_now`` the engine's (limit windows); ``did``
        names the receipt under which an allowed call's limits are booked.
        """
        effect, hits, errs = ev.run(a, p, c, now, tool, s) if ran is None else ran
        if effect == "deny":
            return self._build(
                prepared, tool, Effect.DENY, hits, errs, [], a, p, c, now, s=s, ev=ev
            )
        candidate = _EFFECTS[effect] if effect else _EFFECTS[prepared.policy.default]
        limits: list[LimitState] = []
        receipt = None
        if ev.limits and candidate is not Effect.DENY:
            outcome = self._limits(
                prepared,
                ev,
                a,
                p,
                c,
                now,
                tool,
                consume=candidate is Effect.ALLOW,
                s=s,
                clock_now=clock_now if clock_now is not None else now,
                receipt_id=f"{self._receipt_salt}-{did or next(self._ids)}",
            )
            if isinstance(outcome, Decision):
                return outcome
            limits, receipt = outcome
        d = self._build(
            prepared,
            tool,
            candidate,
            hits,
            errs,
            limits,
            a,
            p,
            c,
            now,
            from_default=effect is None,
            s=s,
            ev=ev,
        )
        if receipt is not None:
            d._receipt = receipt
        return d

    def _fused_outcome(
        self, prepared: _Prepared, tool: str, ev: ToolEvaluator, m: int, table: dict[int, Any]
    ) -> Any:
        """What decide() does with a fused function's bitmask, worked out once per bitmask.

        A tuple: the fields every such decision shares. A list ``[effect, hits,
        None]`` (what the ordinary evaluator returns): a matched rule's reason is
        a template filled from the request, or there are rate limits to book, so
        each decision is finished from the matched rules. False: the ordinary
        path decides (the arguments were converted, so templates and limit keys
        must see the converted values).
        """
        plan = ev.fused_plan
        assert plan is not None
        hits = [r for i, r in enumerate(plan.rules) if m >> i & 1]
        effect = _EFFECTS[hits[0].effect] if hits else _EFFECTS[prepared.policy.default]
        out: Any
        if (ev.limits and effect is not Effect.DENY) or any(
            r.because is not None and not r.because.is_plain for r in hits
        ):
            out = [hits[0].effect if hits else None, hits, None]
        else:
            d = self._build(
                prepared,
                tool,
                effect,
                hits,
                None,
                [],
                None,
                None,
                None,
                None,  # type: ignore[arg-type]
                from_default=not hits,
                ev=ev,
            )
            shared = prepared.shared  # equal texts are one object, however many tools share them
            if len(shared) >= _OUTCOME_CACHE_SIZE:
                caches.dropped("shared", len(shared))
                shared.clear()
            reasons = tuple(d.reasons)
            reasons = shared.setdefault(reasons, reasons)
            suffix = d.message[len(tool) :]
            out = (d.effect, d.code, (reasons, tuple(d.rules), shared.setdefault(suffix, suffix)))
        if len(table) >= _OUTCOME_CACHE_SIZE:
            caches.dropped("fused", len(table))
            table.clear()
        table[m] = out
        return out

    def _session(
        self,
        prepared: _Prepared,
        session: ast.SessionDecl,
        a: Any,
        p: Any,
        c: Any,
        now: datetime,
        tool: str,
        clock_now: datetime,
    ) -> dict[str, Any] | Decision:
        """This call's session and its remembered calls; an unknown session fails closed.

        Its expiry runs on the engine's clock (``clock_now``): a request's ``context.now``
        days ahead cannot make the session look untouched and start it afresh.
        """
        compiled = prepared.compiled
        env = compiled.env(a, p, c, now, tool, None)
        try:
            key = compiled.interpreter.evaluate(session.key, env)
        except EvalError as exc:
            detail = WITHHELD if prepared.session_secret(tool) else exc.message
            return self._failure(
                prepared,
                tool,
                "evaluation_error",
                f"the session key could not be evaluated: {detail}",
            )
        if type(key) not in (str, int):
            return self._failure(
                prepared,
                tool,
                "evaluation_error",
                f"the session key must be a string or an int, got {celops.type_name(key)}",
            )
        sid = str(key)
        store_key = f"{prepared.policy.name}\x1f{sid}"
        if prepared.session_secret(tool):  # keyed by a @secret value: the store holds only a digest
            store_key = f"{prepared.policy.name}\x1f" + secret_key(
                prepared.policy.name, "session", sid
            )
        try:
            calls = self.sessions.load(
                store_key, clock_now.timestamp(), session.ttl.total_seconds()
            )
        except Exception as exc:  # noqa: BLE001 - no history, no decision
            return self._failure(
                prepared,
                tool,
                "store_unavailable",
                f"the session store is unavailable ({type(exc).__name__}: {exc})",
            )
        return {"id": sid, "calls": calls, "_key": store_key}

    def _remember(
        self,
        prepared: _Prepared,
        session: ast.SessionDecl,
        s: dict[str, Any],
        tool: str,
        a: Any,
        decision: Decision,
        now: datetime,
        did: str = "",
    ) -> None:
        """Record the call in its session; ``now`` is the engine's time, the call's ``at``."""
        fields = prepared.secrets_for(tool)
        if (
            fields is not None and fields.args is not None
        ):  # the stored history never holds a secret
            a = fields.redact(a, None, None)[0]
        call = {"tool": tool, "args": a, "effect": decision.effect.value, "at": now}
        if decision.effect is Effect.CONFIRM and did:  # commit() records the approved call
            with self._pending_lock:
                self._pending[did] = (session, s["_key"], call)
                while len(self._pending) > _PENDING_CONFIRMS:
                    self._pending.popitem(last=False)
        try:
            self.sessions.append(
                s["_key"], call, now.timestamp(), session.keep, session.ttl.total_seconds()
            )
        except Exception as exc:  # noqa: BLE001 - an unrecorded call must not be allowed
            if decision.effect is not Effect.DENY:
                reason = f"the session store is unavailable ({type(exc).__name__}: {exc})"
                _refuse(decision, "store_unavailable", reason)
                self._release(decision)

    def _args(self, prepared: _Prepared, ev: ToolEvaluator, tool: str, args: Any) -> dict[str, Any]:
        if args is None:
            args = {}
        validator = prepared.validators.get(tool)
        if validator is not None:
            return validator(args, "")
        return _as_map(args, "args")

    def _now(self, prepared: _Prepared, c: dict[str, Any]) -> tuple[datetime, datetime]:
        """(the rules' ``now``, the engine's time): one reading unless ``context.now`` pins the first."""
        pinned = c.get("now") if isinstance(c, dict) else None
        if pinned is not None:
            parsed = self._pinned_now(prepared, pinned)
            if prepared.context_owned:
                c["now"] = parsed
            return parsed, self._clock_now(prepared)
        now = self.clock.now().astimezone(prepared.zone)
        return now, now

    def _clock_now(self, prepared: _Prepared) -> datetime:
        """The engine's time, never the request's: what windows and session expiry run on."""
        return self.clock.now().astimezone(prepared.zone)

    def _pinned_now(self, prepared: _Prepared, pinned: Any) -> datetime:
        """A request's ``context.now`` as a timestamp (text parsed once per distinct value)."""
        if type(pinned) is str:
            cached = prepared.now_cache.get(pinned)
            if cached is not None:
                return cached
        try:
            parsed = timefuncs.parse_timestamp(pinned, prepared.zone)
        except EvalError as exc:
            raise RequestError(f"context.now: {exc.message}", "now") from None
        if type(pinned) is str:
            if len(prepared.now_cache) >= _NOW_CACHE_SIZE:
                caches.dropped("now", len(prepared.now_cache))
                prepared.now_cache.clear()
            prepared.now_cache[pinned] = parsed
        return parsed

    def _limits(
        self,
        prepared: _Prepared,
        ev: ToolEvaluator,
        a: Any,
        p: Any,
        c: Any,
        now: datetime,
        tool: str,
        consume: bool,
        s: Any = None,
        clock_now: datetime | None = None,
        receipt_id: str = "",
    ) -> tuple[list[LimitState], Receipt | None] | Decision:
        """Check (and, for an allow, book) the call's limits: their states and the receipt.

        Windows run on the engine's time (``clock_now``), keys are canonical
        (:func:`~policylang.runtime.limits.canonical_key`) and kept under each limit's
        content identity; what was booked is booked under ``receipt_id``.
        """
        compiled = prepared.compiled
        try:
            values = compiled.limit_values(ev, a, p, c, now, tool, s)
        except EvalError as exc:
            detail = WITHHELD if any(lp.secret_exprs for lp in ev.limits) else exc.message
            return self._failure(
                prepared, tool, "evaluation_error", f"a rate limit could not be evaluated: {detail}"
            )
        requests: list[LimitRequest] = []
        plans = []
        consts = prepared.limit_consts
        keys = prepared.key_cache
        for lp, (applies, key, cost) in zip(ev.limits, values, strict=True):
            if applies is not True:
                if applies is False:
                    continue
                return self._failure(
                    prepared, tool, "evaluation_error", f"the 'when' of limit {lp.id} is not a bool"
                )
            if type(cost) not in (int, float) or cost != cost or cost < 0:
                shown = MARKER if lp.secret_exprs else celops.format_value(cost)
                return self._failure(
                    prepared,
                    tool,
                    "evaluation_error",
                    f"limit {lp.id} needs a non-negative number to sum, got {shown}",
                )
            if key is None:
                key_text = ""
            elif type(key) is str:  # the common case: one id, canonicalised once per distinct text
                cached = keys.get(key)
                if cached is None:
                    if len(keys) >= _KEY_CACHE_SIZE:
                        keys.clear()
                    cached = keys[key] = canonical_key(key)
                key_text = cached
            elif lp.by_parts is None:
                key_text = canonical_key(key)
            elif all(type(part) is str for part in key):  # a + of strings: its parts, unambiguously
                key_text = canonical_key([key[i] for i in lp.by_parts])
            else:  # not all strings: exactly what the + adds up to, or CEL's error
                assert lp.by_whole is not None  # set together with by_parts
                try:
                    whole = compiled.interpreter.evaluate(
                        lp.by_whole, compiled.env(a, p, c, now, tool, s)
                    )
                except EvalError as exc:
                    return self._failure(
                        prepared,
                        tool,
                        "evaluation_error",
                        f"a rate limit could not be evaluated: {exc.message}",
                    )
                key_text = "" if whole is None else canonical_key(whole)
            if lp.key_secret:  # a key read from a @secret value: shown and stored as a digest
                key_text = secret_key(prepared.name, lp.id, key_text)
            fixed = consts.get(lp.index)
            if fixed is None:  # per limit, once: its key prefix, numbers and location
                fixed = consts[lp.index] = (
                    limit_key(prepared.name, lp.store_id or lp.id, ""),
                    float(lp.limit.amount),
                    lp.limit.window.total_seconds(),
                    str(lp.span),
                )
            requests.append(LimitRequest(fixed[0] + key_text, fixed[1], fixed[2], float(cost)))
            plans.append((lp, key_text, fixed))
        if not requests:
            return [], None
        at = (clock_now if clock_now is not None else now).timestamp()
        try:
            outcomes = self.store.acquire(requests, at, consume, receipt_id if consume else None)
        except Exception as exc:  # noqa: BLE001 - a broken store fails closed unless told otherwise
            if all(lp.limit.on_error == "allow" for lp, _, _ in plans):
                return [], None
            reason = (
                str(exc) if isinstance(exc, StoreUnavailable) else f"{type(exc).__name__}: {exc}"
            )
            return self._failure(
                prepared,
                tool,
                "store_unavailable",
                f"the rate-limit store is unavailable ({reason})",
            )
        states = [
            fast(
                LimitState,
                id=lp.id,
                key=key_text or None,
                used=o.used,
                limit=fixed[1],
                window_seconds=fixed[2],
                cost=r.cost,
                exceeded=not o.fits,
                location=fixed[3],
            )
            for (lp, key_text, fixed), o, r in zip(plans, outcomes, requests, strict=True)
        ]
        if any(s.exceeded for s in states):
            hit = next(s for s in states if s.exceeded)
            window = timefuncs.format_duration(_td(hit.window_seconds))
            who = f" for {hit.key}" if hit.key else ""
            reason = (
                f"rate limit {hit.id} reached: {celops.format_value(hit.limit)} per {window}{who} "
                f"(used {celops.format_value(hit.used)})"
            )
            return _decision(
                Effect.DENY,
                tool,
                "rate_limited",
                [reason],
                [],
                states,
                [],
                f"{tool} denied: {reason}; try again later",
                prepared,
                now,
            )
        return states, Receipt(receipt_id, tuple(requests), "booked" if consume else "checked")

    def _build(
        self,
        prepared: _Prepared,
        tool: str,
        effect: Effect,
        hits: list[RulePlan],
        errs: list[tuple[RulePlan, str]] | None,
        limits: list[LimitState],
        a: Any,
        p: Any,
        c: Any,
        now: datetime,
        from_default: bool = False,
        s: Any = None,
        ev: ToolEvaluator | None = None,
    ) -> Decision:
        if not errs:  # the common case: the outcome's texts depend only on which rules matched
            key = (tool, effect, from_default, *[r.index for r in hits])
            cached = prepared.outcomes.get(key)
            if cached is not None:
                code, reasons_t, refs_t, message = cached
                return _decision(
                    effect,
                    tool,
                    code,
                    list(reasons_t),
                    list(refs_t),
                    limits,
                    [],
                    message,
                    prepared,
                    now,
                )
        refs = []
        reasons = []
        env = None
        templated = False  # a reason was filled from this request: never reuse the texts
        for r in hits:
            reason = None
            if r.because is not None:
                if r.because.is_plain:
                    first = r.because.parts[0] if r.because.parts else ""
                    reason = first if isinstance(first, str) else ""
                else:
                    templated = True
                    fn = ev.messages.get(r.index) if ev is not None else None
                    reason = _fill(r.because, fn, a, p, c, now, tool, s) if fn is not None else None
                    if reason is None:
                        if env is None:
                            env = prepared.compiled.env(a, p, c, now, tool, s)
                        reason = self._render(prepared, r.because, env)
            if r.because is None or r.because.is_plain:
                ref = prepared.refs.get(r.index)
                if ref is None:
                    ref = prepared.refs[r.index] = fast(
                        RuleRef,
                        id=r.id,
                        name=r.name,
                        effect=_EFFECTS[r.effect],
                        location=r.location,
                        reason=reason,
                    )
            else:
                ref = fast(
                    RuleRef,
                    id=r.id,
                    name=r.name,
                    effect=_EFFECTS[r.effect],
                    location=r.location,
                    reason=reason,
                )
            refs.append(ref)
            if reason is not None:
                reasons.append(reason)
        if errs:  # an error text may quote a secret: withheld where the condition reads one,
            scrub = _scrubber(prepared, tool, a, p, c)  # else scrubbed with the checked values
            errs = [
                (r, WITHHELD if r.secret_condition else scrub(m) if scrub else m) for r, m in errs
            ]
        errors = [
            fast(ErrorInfo, rule=r.id, location=r.location, message=m) for r, m in (errs or [])
        ]
        errored = {r.id for r, _ in (errs or [])}
        if effect is Effect.DENY:
            if from_default:
                code = "default_deny"
                reasons = reasons or ["no rule allows this call (default deny)"]
            elif hits and all(r.id in errored for r in hits):
                code = "evaluation_error"
                reasons = reasons + [
                    f"rule {r.id} could not be evaluated ({m}); failing closed"
                    for r, m in (errs or [])
                    if r.effect == "deny"
                ]
            else:
                code = "denied"
                if not reasons:
                    reasons = [f"rule {r.id} denies this call" for r in hits]
            message = f"{tool} denied: {'; '.join(reasons)}"
        elif effect is Effect.CONFIRM:
            code = "confirm" if not from_default else "default_confirm"
            if not reasons:
                reasons = [f"rule {r.id} asks for a person's approval" for r in hits]
            message = (
                f"{tool} needs a person's approval: {'; '.join(reasons)}; ask a person to approve"
            )
        else:
            code = "default_allow" if from_default else "allowed"
            message = f"{tool} allowed" + (f": {'; '.join(reasons)}" if reasons else "")
        if errors and effect is not Effect.DENY:
            message += f" (note: {len(errors)} rule{'s' if len(errors) > 1 else ''} could not be evaluated)"
        if not errs and not templated:  # the texts depend only on which rules matched
            if len(prepared.outcomes) >= _OUTCOME_CACHE_SIZE:
                caches.dropped("outcomes", len(prepared.outcomes))
                prepared.outcomes.clear()
            prepared.outcomes[(tool, effect, from_default, *[r.index for r in hits])] = (
                code,
                tuple(reasons),
                tuple(refs),
                message,
            )
        return _decision(effect, tool, code, reasons, refs, limits, errors, message, prepared, now)

    def _render(self, prepared: _Prepared, message: ast.Message, env: dict[str, Any]) -> str:
        out = []
        for part in message.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = prepared.compiled.interpreter.eval(part, dict(env))
            out.append(
                f"<error: {value.message}>"
                if isinstance(value, Err)
                else celops.format_value(value)
            )
        return "".join(out)

    def _failure(self, prepared: _Prepared | None, tool: str, code: str, reason: str) -> Decision:
        hints = {
            "invalid_request": "; fix the arguments and try again"
            if "argument" in reason
            else "; fix the request and try again",
            "unknown_tool": "",
            "store_unavailable": "; try again later",
        }
        return Decision._raw(
            Effect.DENY,
            tool,
            code,
            [reason],
            [],
            [],
            [fast(ErrorInfo, rule=None, location=None, message=reason)]
            if code in ("internal_error", "evaluation_error", "store_unavailable")
            else [],
            f"{tool} denied: {reason}{hints.get(code, '')}",
            prepared.origin if prepared else _NO_POLICY,
            None,
        )

    # ---- the redaction funnel for texts made outside decide() (explain, replay, guards)

    def redactor(
        self, tool: str, args: Any = None, principal: Any = None, context: Any = None
    ) -> Callable[[str], str]:
        """A function that scrubs this request's @secret values (in any text form) from a text."""
        return _scrubber(self._prepared, tool, args, principal, context) or _same

    def redact_request(
        self, tool: str, args: Any = None, principal: Any = None, context: Any = None
    ) -> tuple[Any, Any, Any]:
        """Copies of a request's inputs with every @secret value replaced by the marker."""
        fields = _secret_fields(self._prepared, tool)
        return (
            fields.redact(args, principal, context)
            if fields is not None
            else (args, principal, context)
        )

    # ---- hooks for guards (policylang.runtime.guard): audited refusals, approvals, refunds

    def reject(
        self,
        tool: str,
        code: str,
        reason: str,
        *,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
    ) -> Decision:
        """A deny made outside the policy (a guard refusing a call), with an id, audited like any other."""
        prepared = self._prepared
        decision = _scrub(
            prepared,
            str(tool),
            self._failure(prepared, str(tool), code, reason),
            args,
            principal,
            context,
        )
        decision._id = f"{self._id_prefix}-{next(self._ids):x}"
        if self.audit is not None:
            decision = self._record(decision, prepared, str(tool), args, principal, context)
        return decision

    def write_audit(self, record: dict[str, Any]) -> None:
        """Write a non-decision record (an outcome, an approval) to the audit sink; raises if it fails."""
        sink: Any = self.audit
        if sink is None:
            return
        if hasattr(sink, "write"):
            sink.write(record)
        else:
            sink(record)

    def limit_requests(self, decision: Decision) -> list[LimitRequest]:
        """The store requests behind a decision's limits (what ``acquire`` checked or consumed).

        Read from the decision's receipt; a decision without one (rebuilt from JSON)
        gets them rebuilt from its limit states and the loaded policy's limit identities.
        """
        receipt: Receipt | None = getattr(decision, "_receipt", None)
        if receipt is not None:
            return list(receipt.requests)
        prepared = self._prepared
        ids = prepared.limit_store_ids if prepared is not None else {}
        return [
            LimitRequest(
                limit_key(decision.policy, ids.get(s.id, s.id), s.key or ""),
                s.limit,
                s.window_seconds,
                float(s.cost),
            )
            for s in decision.limits
        ]

    def commit(self, decision: Decision) -> Decision:
        """Consume the limits of an approved ``confirm`` decision, now (a confirm only checked them).

        Returns the decision unchanged when everything fits (or it has no limits), else a
        deny ``rate_limited`` / ``store_unavailable`` to use instead. Never raises. A
        decision's limits are consumed at most once: committing it again consumes nothing
        more, and a decision that is not a confirm (an allow consumed when it was
        decided, a deny consumes nothing) is returned as it is.
        """
        if (
            decision.effect is not Effect.CONFIRM
        ):  # an allow booked when decided; a deny books nothing
            return decision
        receipt: Receipt | None = getattr(decision, "_receipt", None)
        if receipt is None:
            requests = self.limit_requests(decision)
            if not requests:
                return self._approved(decision)
            receipt = Receipt(
                f"{self._receipt_salt}-{decision.decision_id}", tuple(requests), "checked"
            )
            decision._receipt = receipt
        with self._settle_lock:  # two commits of one decision: one books, the other sees it booked
            if receipt.state != "checked":
                return self._approved(decision)
            refused = self._book(decision, receipt)
        return refused if refused is not None else self._approved(decision)

    def _book(self, decision: Decision, receipt: Receipt) -> Decision | None:
        """Consume a checked receipt's limits; a deny to use instead when they do not fit."""
        requests = list(receipt.requests)
        tool = decision.tool
        try:
            outcomes = self.store.acquire(requests, self.clock.now().timestamp(), True, receipt.id)
        except Exception as exc:  # noqa: BLE001 - fail closed unless every limit is fail open
            prepared = self._prepared
            ev = prepared.compiled.evaluators.get(tool) if prepared is not None else None
            open_ids = {
                lp.id
                for lp in (ev.limits if ev is not None else ())
                if lp.limit.on_error == "allow"
            }
            if all(s.id in open_ids for s in decision.limits):
                return None
            return self.reject(
                tool, "store_unavailable", f"the rate-limit store is unavailable ({exc})"
            )
        for s, o in zip(decision.limits, outcomes, strict=True):
            if not o.fits:
                window = timefuncs.format_duration(_td(s.window_seconds))
                return self.reject(
                    tool,
                    "rate_limited",
                    f"rate limit {s.id} reached: {celops.format_value(s.limit)} per {window}"
                    f"{f' for {s.key}' if s.key else ''} (used {celops.format_value(o.used)})",
                )
        receipt.state = "booked"
        return None

    def _approved(self, decision: Decision) -> Decision:
        """An approved confirm ran: the session history now counts it as allowed.

        A confirm dropped from the bounded pending table (more than 10,000 waiting)
        is rebuilt from the decision itself (its session id and decided arguments),
        so no approved call goes unrecorded.
        """
        with self._pending_lock:
            pending = self._pending.pop(decision.decision_id, None)
        prepared = self._prepared
        sid = getattr(decision, "_sid", None)
        if (
            pending is None
            and sid is not None
            and prepared is not None
            and prepared.policy.session is not None
            and decision.effect is Effect.CONFIRM
            and decision.policy_hash == prepared.hash
        ):
            pending = (
                prepared.policy.session,
                f"{prepared.policy.name}\x1f{sid}",
                {
                    "tool": decision.tool,
                    "args": decision._args,
                    "effect": "confirm",
                    "at": decision.at,
                },
            )
        if pending is not None:
            session, key, call = pending
            now = self.clock.now()
            try:
                self.sessions.append(
                    key,
                    {**call, "effect": "allow", "at": now},
                    now.timestamp(),
                    session.keep,
                    session.ttl.total_seconds(),
                )
            except Exception as exc:  # noqa: BLE001 - an unrecorded approval must not run
                return self.reject(
                    decision.tool,
                    "store_unavailable",
                    f"the session store is unavailable ({type(exc).__name__}: {exc})",
                )
        return decision

    def refund(self, decision: Decision) -> None:
        """Give back what a decision consumed (the call did not run, or failed), once.

        The decision's receipt is settled at most once: a second refund, or a
        refund of a decision that consumed nothing (a deny, an uncommitted confirm,
        a decision rebuilt from JSON), frees nothing. The store removes only the
        events booked under the receipt, so this holds for another engine sharing
        the store too. Raises if the store fails (the receipt stays refundable).
        """
        receipt: Receipt | None = getattr(decision, "_receipt", None)
        if receipt is None:
            return
        with self._settle_lock:
            if receipt.state != "booked":
                return
            self.store.refund(list(receipt.requests), self.clock.now().timestamp(), receipt.id)
            receipt.state = "refunded"

    def _release(self, decision: Decision) -> None:
        """A decision turned into a deny after booking (a store or the audit log failed): give it back."""
        with contextlib.suppress(
            Exception
        ):  # it is a deny anyway; the events expire with their window
            self.refund(decision)

    def guard(
        self, fn: Callable[..., Any], tool: str | None = None, **options: Any
    ) -> Callable[..., Any]:
        """Wrap ``fn`` so that every call is decided first; see :mod:`policylang.runtime.guard`."""
        from policylang.runtime.guard import Guard

        return Guard(self, **options).wrap(fn, tool)

    def protect(
        self, tool: str | None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of :meth:`guard`: ``@engine.protect("crm.update")``."""
        from policylang.runtime.guard import Guard

        guard = Guard(self, **options)
        return lambda fn: guard.wrap(fn, tool)

    # ---- audit

    def _record(
        self,
        decision: Decision,
        prepared: _Prepared | None,
        tool: str,
        args: Any,
        principal: Any,
        context: Any,
    ) -> Decision:
        """Send the decision to the audit sink; if that fails, nothing is allowed unrecorded."""
        try:
            record = audit_record(decision, prepared, args, principal, context)
            sink: Any = self.audit
            if hasattr(sink, "write"):
                sink.write(record)
            else:
                sink(record)
        except Exception as exc:  # noqa: BLE001 - the sink failing must not allow anything
            if decision.effect is not Effect.DENY:
                reason = f"the audit log is unavailable ({type(exc).__name__}: {exc})"
                _refuse(decision, "audit_unavailable", reason)
                self._release(decision)
                _scrub(prepared, tool, decision, args, principal, context)
        return decision


def _same(text: str) -> str:
    return text


def _check_clock(clock: Any) -> None:
    """A clock that cannot tell the time is refused when it is given, not at the first decision."""
    now = getattr(clock, "now", None)
    if not callable(now):
        raise TypeError(
            f"clock must have a now() method returning a datetime, got {type(clock).__name__}"
        )
    reading = now()
    if not isinstance(reading, datetime) or reading.utcoffset() is None:
        raise TypeError(
            f"clock.now() must return a timezone-aware datetime, got {reading!r}; "
            "use FixedClock(datetime(..., tzinfo=UTC)) or SystemClock()"
        )


def _check_store(store: Any) -> None:
    """A rate-limit store must take receipts (``acquire(requests, now, consume, receipt)``).

    Checked when the engine is built: a store written for the protocol before
    receipts would otherwise fail at the first booking, and a ``fail open``
    limit would then skip counting altogether.
    """
    import inspect

    for name, arity in (("acquire", 4), ("refund", 3)):
        method = getattr(store, name, None)
        if not callable(method):
            raise TypeError(
                f"store must have an {name}() method (see policylang.runtime.limits.LimitStore), "
                f"got {type(store).__name__}"
            )
        try:
            inspect.signature(method).bind(*([None] * arity))
        except TypeError:
            raise TypeError(
                f"store.{name}() must accept {arity} arguments ({name}(requests, now, "
                f"{'consume, ' if name == 'acquire' else ''}receipt)); {type(store).__name__}."
                f"{name} does not: see policylang.runtime.limits.LimitStore"
            ) from None
        except ValueError:  # no signature to inspect (a builtin): trust it
            pass


def _fill(
    message: ast.Message,
    fn: Callable[..., tuple[Any, ...]],
    a: Any,
    p: Any,
    c: Any,
    now: datetime,
    tool: str,
    s: Any,
) -> str | None:
    """A because template filled by its generated function; None: let the interpreter do it."""
    try:
        values = iter(fn(a, p, c, now, tool, s))
        return "".join(
            part if isinstance(part, str) else celops.format_value(next(values))
            for part in message.parts
        )
    except Exception:  # noqa: BLE001 - the interpreter gives CEL's exact value or error text
        return None


def _scrub(
    prepared: _Prepared | None,
    tool: str,
    decision: Decision,
    args: Any,
    principal: Any,
    context: Any,
) -> Decision:
    """The second line of defence: this request's secret values, in any form, out of every text."""
    scrub = _scrubber(prepared, tool, args, principal, context)
    return scrub.decision(decision) if scrub else decision


def _secret_fields(prepared: _Prepared | None, tool: Any) -> SecretFields | None:
    return prepared.secrets_for(tool) if prepared is not None and type(tool) is str else None


def _scrubber(
    prepared: _Prepared | None, tool: Any, args: Any, principal: Any, context: Any
) -> Scrubber | None:
    """The scrubber of one request's secret values; None when it holds none."""
    fields = _secret_fields(prepared, tool)
    scrub = fields.scrubber(args, principal, context) if fields is not None else None
    return scrub if scrub else None


def secret_key(policy: str, limit_id: str, key_text: str) -> str:
    """The text of a limit key read from a @secret value: the marker and a SHA-256 digest.

    Distinct secrets keep distinct allowances, but neither the decision nor
    the rate-limit store ever holds the secret itself.
    """
    digest = hashlib.sha256(
        f"{policy}\x1f{limit_id}\x1f{key_text}".encode("utf-8", "surrogatepass")
    )
    return f"{MARKER}:{digest.hexdigest()[:24]}"


def _refuse(decision: Decision, code: str, reason: str) -> None:
    """Turn a decision into a deny after the fact (a store or the audit log failed)."""
    decision.effect, decision.code, decision.reasons = Effect.DENY, code, [reason]
    decision.message = f"{decision.tool} denied: {reason}"


def limit_key(policy: str, limit_id: str, key_text: str) -> str:
    """The store key of one limit's allowance for one ``by`` value."""
    return f"{policy}\x1f{limit_id}\x1f{key_text}"


def audit_record(
    decision: Decision, prepared: _Prepared | None, args: Any, principal: Any, context: Any
) -> dict[str, Any]:
    """One JSON-ready audit record; every value declared @secret (at any depth) is redacted."""
    fields = prepared.secrets_for(decision.tool) if prepared is not None else None
    shown_args = args
    if fields is not None:
        shown_args, principal, context = fields.redact(args, principal, context)
    pid = principal.get("id") if isinstance(principal, dict) else None
    shown_args, principal, context = _jsonable((shown_args, principal, context))  # one round trip
    d = decision
    at = d.at
    out = (
        d._out
    )  # read the shared tuples as they are: no need to give this decision lists of its own
    reasons = d._reasons if d._reasons is not None else out[0]  # type: ignore[index]
    rules = d._rules if d._rules is not None else out[1]  # type: ignore[index]
    # Built by hand: the same keys and values as decision.model_dump(mode="json"),
    # several times cheaper on the decision path (tests check they stay equal).
    return {
        "effect": _EFFECT_TEXT[d.effect],
        "tool": d.tool,
        "code": d.code,
        "reasons": list(reasons),
        "rules": [_RULE_KEYS(r.__dict__) for r in rules],
        "limits": [dict(s.__dict__) for s in d._limits],
        "errors": [dict(x.__dict__) for x in d._errors],
        "message": d.message,
        "decision_id": d.decision_id,
        "policy": d.policy,
        "policy_version": d.policy_version,
        "policy_hash": d.policy_hash,
        "at": _iso(at) if at is not None else None,
        "elapsed_us": d.elapsed_us,
        "args": shown_args,
        "principal_id": pid if type(pid) is str and pid.isascii() else _jsonable(pid),
        "principal": principal,
        "context": context,
    }


def _RULE_KEYS(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "effect": _EFFECT_TEXT[r["effect"]],
        "location": r["location"],
        "reason": r["reason"],
    }


_EFFECT_TEXT = {e: e.value for e in Effect}  # a dict read: Enum.value is a descriptor call


def _iso(at: datetime) -> str:
    """``at`` as pydantic writes it in JSON ("Z" for UTC); orjson formats it in a third of the time."""
    off = at.utcoffset()
    if off is not None and not off.microseconds and not off.seconds % 60:
        return orjson.dumps(at, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return _iso_general(at)


def _iso_general(at: datetime) -> str:
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _jsonable(v: Any) -> Any:
    """A JSON-safe copy of request data (orjson round trip; the slow path when it refuses)."""
    if v is None:
        return None
    try:
        return orjson.loads(orjson.dumps(v, default=_audit_default, option=_JSONABLE))
    except (TypeError, orjson.JSONEncodeError):
        return json_safe(v)


_JSONABLE = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _load_options(how: str, data: Any, reference: Any) -> None:
    """The loading options of ``Engine.<how>``: data files as a dict, ``reference`` a bool."""
    if data is not None and not isinstance(data, dict):
        raise _options.fail(f"Engine.{how}", "data", "a dict of data-file name to value", data)
    _options.flag(f"Engine.{how}", "reference", reference)


def _audit_sink(audit: Any) -> Any:
    """The audit option as a sink: a path opens a JSON Lines file, anything else must write."""
    if audit is None or callable(getattr(audit, "write", None)):
        return audit
    if isinstance(audit, str | os.PathLike) and not isinstance(audit, bytes):
        if not os.fspath(audit):
            raise ValueError(
                "Engine(audit=...) is an empty path; give a file name such as 'audit.jsonl'"
            )
        from policylang.runtime.audit import AuditError, JsonlSink

        try:
            return JsonlSink(audit)  # opened now: an unwritable place fails here, not per decision
        except AuditError:
            raise
        except OSError as exc:
            raise AuditError(
                f"Engine(audit=...): cannot open the audit file {os.fspath(audit)!r}: "
                f"{exc.strerror or exc}"
            ) from exc
    if callable(audit) and not isinstance(audit, type):
        return audit
    raise _options.fail(
        "Engine",
        "audit",
        "a file path (str or Path), an object with write(record) or a function of one record",
        audit,
    )


def _check_finite(args: Any, principal: Any, context: Any) -> None:
    """No NaN or ±inf anywhere in the request (RequestError naming the place).

    Checked once, on the caller's values, before any validator or rule: a NaN
    compares false with everything, so one in an untyped position (a ``dyn``
    argument, an undeclared principal or context key) would pass every
    ``> limit`` deny. Values that are not maps are left to the shape checks.
    """
    for value, what in (
        (args, "argument"),
        (principal, "principal field"),
        (context, "context field"),
    ):
        if isinstance(value, dict):
            check_finite(value, what)


def _as_map(v: Any, what: str) -> dict[str, Any]:
    if v is None:
        return {}
    if isinstance(v, dict):
        return v
    raise RequestError(
        f"{what} must be an object (a map of names to values), got {celops.type_name(v)}"
    )


def _td(seconds: float) -> Any:
    from datetime import timedelta

    return timedelta(seconds=seconds)
