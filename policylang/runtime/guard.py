"""Guards: the one path from a tool call to running it — decide, approve, reserve, run, commit, audit.

``engine.guard(fn, tool="crm.update")`` and ``@engine.protect("crm.update")``
wrap one function (sync or ``async def``); :class:`Guard` ``.call(tool, args)``
serves dispatch-style executors that hold a table of tools (or one
``dispatch(name, args)`` function). The OpenAI, LangChain and MCP adapters
(:mod:`policylang.adapters`) are thin shims over a Guard, so every call
through them takes the same path. For every call:

1. the call's arguments (positional ones bound by name, the function's
   defaults applied) are the ``args`` of the decision. The principal and the
   context come from the guard's providers (a dict or a zero-argument
   function), never from the call: a keyword named ``_principal`` or
   ``_context`` (or, in dispatch arguments, ``_approval``) is an unexpected
   argument and the call is denied ``invalid_request``. Trusted code that
   must act for someone else says so explicitly: ``guard.call(tool, args,
   principal=..., context=...)`` or ``wrapped.call_as(principal=...)(...)``;
2. an open circuit breaker denies ``circuit_open`` without asking the policy;
3. allow → the function runs **with the arguments the engine decided on**
   (validated, defaults filled in, text converted to timestamps and
   durations), never with the caller's raw ones; deny → :class:`PolicyDenied`;
   confirm → the ``approver`` (``(decision) -> bool``, sync or async: only
   ``True`` approves; anything else, or an exception, denies) decides, or,
   without one, :class:`ConfirmationRequired` carries a pending approval token
   (:mod:`policylang.runtime.approvals`): once a person approves it
   (``guard.approve(token, approver="alice")``) the same call retried with
   ``_approval=token`` (``approval=token``) runs, once; its limits are
   consumed then (``engine.commit``) and the session history counts it;
4. the outcome (ok or the error's type, and the duration) is written to the
   engine's audit sink as ``{"kind": "outcome", "decision_id": ...}``, feeds
   the tool's circuit breaker and, with ``refund_on_error=True``, gives back
   a failed call's limits.

A policy default that differs from the wrapped function's own default is a
:class:`GuardError` when the guard is built (the function's default would
otherwise run undecided). Anything that goes wrong before the function runs
— in deciding, in a store, in a provider or in the approver — is a deny:
nothing runs by accident. ``shadow=True`` decides and audits every call but
always runs it (to try a policy on live traffic).

Bounds: at most ``max_breakers`` (10,000) tools carry breaker state; idle
breakers are dropped first, and when every one holds failures a call to a
new tool is denied ``breaker_capacity``; both are counted in
``guard.stats``. Approval token stores are bounded too (see
:mod:`policylang.runtime.approvals`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import inspect
import json
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policylang.errors import PolicyError
from policylang.runtime import options as _options
from policylang.runtime.approvals import (
    ApprovalStore,
    ApprovalTokens,
    MemoryApprovalStore,
    SQLiteApprovalStore,
    TokenError,
    args_digest,
    binding,
    canonical_args,
)
from policylang.runtime.decision import Decision, Effect
from policylang.runtime.limits import MemoryStore

if TYPE_CHECKING:
    from policylang.runtime.engine import Engine

log = logging.getLogger("policylang.guard")

# Keywords no tool argument may use: they once carried identity and approvals in the call itself.
RESERVED = frozenset({"_principal", "_context", "_approval"})
_IDENTITY = frozenset({"_principal", "_context"})

Approver = Callable[[Decision], "bool | Awaitable[bool]"]
"""The one approver protocol: ``approver(decision)``; ``True`` approves, anything else does not."""


# ---------------------------------------------------------------- exceptions


class GuardError(PolicyError, ValueError):
    """A guard was built wrongly (caught when it is built, never at the first call)."""

    code = "guard_config"


class CallBlocked(PolicyError):
    """The guarded call did not run; ``decision`` says why."""

    code = "blocked"

    def __init__(self, decision: Decision):
        super().__init__(decision.message or f"{decision.effect} {decision.tool}")
        self.decision = decision

    @property
    def reason(self) -> str:
        return "; ".join(self.decision.reasons) or self.decision.message


class PolicyDenied(CallBlocked):
    """The call was denied (by the policy, a limit, a breaker, a bad token or request...)."""

    code = "denied"


class ConfirmationRequired(CallBlocked):
    """A person must approve: ``guard.approve(token, approver=...)``, then call again with the token.

    ``token`` is pending until then; ``arguments`` are the arguments the engine
    decided on (what the person approves).
    """

    code = "confirm"

    def __init__(self, decision: Decision, token: str):
        super().__init__(decision)
        self.token = token
        self.arguments = decided_args(decision)


def decided_args(decision: Decision) -> dict[str, Any] | None:
    """The arguments the engine decided on (validated, defaults filled in, converted), if it said."""
    return getattr(decision, "_args", None)


@dataclass
class Attempt:
    """What happened to one call: the decision, and the function's value or error if it ran."""

    decision: Decision
    ran: bool = False
    value: Any = None
    error: Exception | None = None  # the function raised (it ran)
    blocked: CallBlocked | None = None  # it did not run, and why

    @property
    def token(self) -> str | None:
        """The pending approval token of a confirm nobody has approved yet."""
        return self.blocked.token if isinstance(self.blocked, ConfirmationRequired) else None

    def result(self) -> Any:
        """The value; raises the block or the function's error."""
        if self.blocked is not None:
            raise self.blocked
        if self.error is not None:
            raise self.error
        return self.value


# ---------------------------------------------------------------- circuit breakers


@dataclass(frozen=True)
class Breaker:
    """Open after ``failures`` failed runs within ``window`` seconds; stay open ``cooldown`` seconds,
    then let one probe call through (half-open): success closes, failure opens again."""

    failures: int = 5
    window: float = 60.0
    cooldown: float = 300.0
    errors: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        """Refuse a breaker that could never work (``failures="5"``, a negative window) when built."""
        if type(self.failures) is not int or self.failures < 1:
            raise _options.fail(
                "Breaker", "failures", "a whole number of at least 1", self.failures
            )
        _options.positive_number("Breaker", "window", self.window)
        _options.positive_number("Breaker", "cooldown", self.cooldown)
        if not (
            isinstance(self.errors, tuple)
            and self.errors
            and all(isinstance(e, type) and issubclass(e, BaseException) for e in self.errors)
        ):
            raise _options.fail("Breaker", "errors", "a tuple of exception classes", self.errors)


class _BreakerState:
    def __init__(self, config: Breaker):
        self.config = config
        self.fails: deque[float] = deque()
        self.opened_at: float | None = None
        self.probing = False
        self.lock = threading.Lock()

    @property
    def idle(self) -> bool:
        """Closed with no failures on record: forgetting it loses nothing."""
        return self.opened_at is None and not self.fails and not self.probing

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.probing else "open"

    def before(self, now: float) -> tuple[bool, bool, str]:
        """(may run, is the probe, reason if not)."""
        with self.lock:
            if self.opened_at is None:
                return True, False, ""
            left = self.opened_at + self.config.cooldown - now
            if left > 0:
                return (
                    False,
                    False,
                    (
                        f"the circuit breaker is open after {self.config.failures} failures "
                        f"in {self.config.window:g}s; retry in {left:.0f}s"
                    ),
                )
            if self.probing:
                return False, False, "the circuit breaker is half-open and a probe call is running"
            self.probing = True
            return True, True, ""

    def release(self) -> None:
        with self.lock:
            self.probing = False

    def after(self, now: float, ok: bool, probe: bool) -> None:
        with self.lock:
            if ok:
                if probe or self.opened_at is not None:
                    self.opened_at = None
                    self.probing = False
                    self.fails.clear()
                return
            if probe or self.opened_at is not None:
                self.opened_at = now
                self.probing = False
                return
            self.fails.append(now)
            while self.fails and self.fails[0] <= now - self.config.window:
                self.fails.popleft()
            if len(self.fails) >= self.config.failures:
                self.opened_at = now
                self.fails.clear()


# ---------------------------------------------------------------- the guard


class _Plan:
    """What to do for one call: run (with the decision) or raise."""

    __slots__ = ("decision", "probe", "breaker", "blocked")

    def __init__(
        self,
        decision: Decision,
        probe: bool = False,
        breaker: _BreakerState | None = None,
        blocked: CallBlocked | None = None,
    ):
        self.decision = decision
        self.probe = probe
        self.breaker = breaker
        self.blocked = blocked


class _BreakersFull(Exception):
    pass


Provider = Mapping[str, Any] | Callable[[], Any] | None
Dispatch = Callable[[str, dict[str, Any]], Any]
_DEFAULT_TTL = 300.0
_shared_tokens: weakref.WeakKeyDictionary[Any, ApprovalTokens] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def engine_tokens(engine: Any) -> ApprovalTokens:
    """The approval tokens every guard of ``engine`` shares unless given others (memory store)."""
    with _shared_lock:
        tokens = _shared_tokens.get(engine)
        if tokens is None:
            tokens = _shared_tokens[engine] = ApprovalTokens(ttl=_DEFAULT_TTL)
        return tokens


class Guard:
    """Decides before running: for wrapped functions and for dispatch tables of tools.

    ``tools``: ``{name: fn}`` (called as ``fn(**args)``) or one
    ``dispatch(name, args)`` function, for :meth:`call`. ``approver``: see
    :data:`Approver`. ``principal`` / ``context``: a dict or a zero-argument
    function giving one (e.g. from a ``contextvars`` variable); what the
    policy sees as ``principal``/``context`` on every call. ``shadow=True``:
    always run, only decide and audit. ``breakers``: ``{tool or glob:
    Breaker(...)}``. ``tokens`` (or ``secret`` / ``token_ttl`` /
    ``approvals``, an :class:`~policylang.runtime.approvals.ApprovalStore`):
    approval tokens; by default every guard of one engine shares one set.
    ``refund_on_error=True`` gives back an allowed call's limit usage when the
    function raises. ``decide_in_thread`` (async calls): run the decision in
    a worker thread so a slow store does not block the event loop (default:
    when the store is not in memory).
    """

    def __init__(
        self,
        engine: Engine,
        tools: Mapping[str, Callable[..., Any]] | Dispatch | None = None,
        *,
        approver: Approver | None = None,
        principal: Provider = None,
        context: Provider = None,
        shadow: bool = False,
        breakers: Mapping[str, Breaker] | None = None,
        token_ttl: float = _DEFAULT_TTL,
        secret: bytes | None = None,
        tokens: ApprovalTokens | None = None,
        approvals: ApprovalStore | None = None,
        refund_on_error: bool = False,
        decide_in_thread: bool | None = None,
        max_breakers: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        _check_options(
            engine,
            tools,
            approver,
            principal,
            context,
            shadow,
            breakers,
            token_ttl,
            secret,
            tokens,
            refund_on_error,
            decide_in_thread,
            approvals,
            max_breakers,
            monotonic,
        )
        self.engine = engine
        self._dispatch: Dispatch | None = None
        if tools is None or isinstance(tools, Mapping):
            self.tools = dict(tools or {})
            for name, fn in self.tools.items():
                if not isinstance(name, str) or not callable(fn):
                    raise TypeError(
                        f"tools must map tool names to functions; {name!r} maps to {fn!r}"
                    )
                check_defaults(engine, name, function_defaults(fn), f"the function for '{name}'")
        elif callable(tools):
            self.tools, self._dispatch = {}, tools
        else:
            raise TypeError(
                "tools must be a {name: function} mapping or one dispatch(name, args) function"
            )
        if approver is not None and not callable(approver):
            raise TypeError("approver must be a function (decision) -> bool (or an async one)")
        for what, provider in (("principal", principal), ("context", context)):
            if (
                provider is not None
                and not isinstance(provider, Mapping)
                and not callable(provider)
            ):
                raise TypeError(f"{what} must be a dict or a zero-argument function returning one")
        if not isinstance(max_breakers, int) or max_breakers < 1:
            raise ValueError("max_breakers must be a positive int")
        self.approver = approver
        self.principal = principal
        self.context = context
        self.shadow = shadow
        self.breaker_config = dict(breakers or {})
        for pattern, config in self.breaker_config.items():
            if not isinstance(config, Breaker):
                raise TypeError(
                    f"breakers['{pattern}'] must be a Breaker, not {type(config).__name__}"
                )
        self.max_breakers = max_breakers
        self._breakers: dict[str, _BreakerState] = {}
        self._breakers_lock = threading.Lock()
        # tools found to have no breaker, with the compiled policy that said so (a reload may add one)
        self._no_breaker: dict[str, Any] = {}
        if tokens is not None:
            if secret is not None or approvals is not None:
                raise TypeError("give either tokens= or secret=/approvals=, not both")
            self.tokens = tokens
        elif secret is None and approvals is None and token_ttl == _DEFAULT_TTL:
            self.tokens = engine_tokens(engine)
        else:
            self.tokens = ApprovalTokens(secret, token_ttl, store=approvals)
        self.refund_on_error = refund_on_error
        self.decide_in_thread = (
            (not isinstance(engine.store, MemoryStore))
            if decide_in_thread is None
            else decide_in_thread
        )
        self.monotonic = monotonic
        # bounds reached, counted (never silent): see the module docstring
        self.stats = {"breakers_dropped": 0, "breakers_full": 0, "no_breaker_cache_cleared": 0}

    # ---- public entry points

    def call(
        self,
        tool: str,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
        approval: str | None = None,
    ) -> Any:
        """Decide and run ``tools[tool](**args)``; ``args`` may be a dict or a JSON object string.

        ``principal`` / ``context`` here override the guard's providers: trusted
        code only (never values taken from a model's tool call).
        """
        return self.attempt(tool, args, principal, context, approval).result()

    async def acall(
        self,
        tool: str,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
        approval: str | None = None,
    ) -> Any:
        return (await self.aattempt(tool, args, principal, context, approval)).result()

    def attempt(
        self,
        tool: str,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
        approval: str | None = None,
        *,
        fn: Callable[[dict[str, Any]], Any] | None = None,
        invalid: str | None = None,
    ) -> Attempt:
        """Like :meth:`call`, but says what happened instead of raising.

        ``fn(args)``: run this instead of the registered tool (adapters);
        ``invalid``: the request could not be read (denied ``invalid_request``).
        """
        parsed, bad, missing, run = self._request(tool, args, fn, invalid)
        plan = self._plan(tool, parsed, principal, context, approval, bad=bad, missing=missing)
        if plan.blocked is not None:
            return Attempt(plan.decision, blocked=plan.blocked)
        try:
            value = self._run_sync(plan, tool, run, parsed, None)
        except Exception as exc:  # noqa: BLE001 - the function's own error, reported to the caller
            return Attempt(plan.decision, ran=True, error=exc)
        return Attempt(plan.decision, ran=True, value=value)

    async def aattempt(
        self,
        tool: str,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
        approval: str | None = None,
        *,
        fn: Callable[[dict[str, Any]], Any] | None = None,
        invalid: str | None = None,
    ) -> Attempt:
        parsed, bad, missing, run = self._request(tool, args, fn, invalid)
        plan = await self._aplan(
            tool, parsed, principal, context, approval, bad=bad, missing=missing
        )
        if plan.blocked is not None:
            return Attempt(plan.decision, blocked=plan.blocked)
        try:
            value = await self._run_async(plan, tool, run, parsed, None)
        except Exception as exc:  # noqa: BLE001
            return Attempt(plan.decision, ran=True, error=exc)
        return Attempt(plan.decision, ran=True, value=value)

    def approve(self, token: str, approver: str) -> None:
        """A person (``approver``: their id) approves the call behind ``token``; it may then run once."""
        self._answer_token(token, approver, True)

    def decline(self, token: str, approver: str) -> None:
        """A person declines it: the token can never run the call."""
        self._answer_token(token, approver, False)

    def _answer_token(self, token: str, approver: str, approved: bool) -> None:
        payload = (self.tokens.approve if approved else self.tokens.decline)(token, approver)
        self.engine.write_audit(
            {
                "kind": "approval",
                "stage": "answered",
                "token_id": payload["id"],
                "decision_id": payload.get("d"),
                "tool": payload.get("t"),
                "approved": approved,
                "by": approver,
                "at": time.time(),
            }
        )

    def breaker_state(self, tool: str) -> str:
        try:
            b = self._breaker(tool)
        except _BreakersFull:
            return "none"
        return b.state if b is not None else "none"

    def _request(
        self, tool: str, args: Any, fn: Callable[[dict[str, Any]], Any] | None, invalid: str | None
    ) -> tuple[dict[str, Any] | None, str | None, str | None, Callable[[dict[str, Any]], Any]]:
        """(parsed args, why they are bad, why the tool is missing, how to run it) for a dispatch call."""
        parsed, bad = _parse_args(args)
        if invalid is not None:
            bad = invalid
        elif parsed is not None and not RESERVED.isdisjoint(parsed):
            bad = _reserved_reason(sorted(RESERVED.intersection(parsed))[0])
        missing = None
        if fn is None:
            target = self.tools.get(tool) if isinstance(tool, str) else None
            if target is not None:
                fn = functools.partial(_call_keywords, target)
            elif self._dispatch is not None:
                fn = functools.partial(self._dispatch, tool)
            else:
                missing = f"no function is registered for tool '{tool}'"
                fn = _unreachable
        return parsed, bad, missing, fn

    def wrap(self, fn: Callable[..., Any], tool: str | None = None) -> Callable[..., Any]:
        """``fn`` behind this guard; the wrapper's ``call_as(principal=, context=, approval=)`` is the
        explicit override for trusted code."""
        if not callable(fn):
            raise TypeError(f"only a function can be guarded, not {type(fn).__name__}")
        name = tool or getattr(fn, "__name__", None)
        if not isinstance(name, str) or not name:
            raise TypeError("name the tool: guard(fn, tool='...')")
        sig = inspect.signature(fn)
        taken = RESERVED.intersection(sig.parameters)
        if taken:
            raise GuardError(
                f"{name}: the parameter name {sorted(taken)[0]} is reserved by the guard; rename it"
            )
        plain = all(
            p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            for p in sig.parameters.values()
        )
        names = frozenset(sig.parameters)
        defaults = {
            n: p.default
            for n, p in sig.parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        check_defaults(self.engine, name, defaults, f"{name}()")
        required = names - defaults.keys()
        run: Callable[[dict[str, Any]], Any] = (
            _keywords_caller(fn) if plain else _signature_caller(fn, sig)
        )

        def bind(
            a: tuple[Any, ...], kw: dict[str, Any]
        ) -> tuple[dict[str, Any] | None, str | None]:
            if plain and not a and required <= kw.keys() <= names:
                # keywords only, every one a parameter, every required one given: what sig.bind
                # + apply_defaults would give, without their cost on every call
                return {n: kw[n] if n in kw else defaults[n] for n in sig.parameters}, None
            if not RESERVED.isdisjoint(kw):
                return None, _reserved_reason(sorted(RESERVED.intersection(kw))[0])
            try:
                bound = sig.bind(*a, **kw)
            except TypeError as exc:
                # a parameter left out that the policy gives a default: the decided arguments fill it in
                try:
                    bound = sig.bind_partial(*a, **kw)
                except TypeError:
                    return None, f"the call does not match {name}'s parameters: {exc}"
                left_out = required - bound.arguments.keys()
                if not left_out or not left_out <= _policy_defaults(self.engine, name):
                    return None, f"the call does not match {name}'s parameters: {exc}"
            bound.apply_defaults()
            out: dict[str, Any] = {}
            for pname, value in bound.arguments.items():
                kind = sig.parameters[pname].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    out.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    out[pname] = list(value)
                else:
                    out[pname] = value
            return out, None

        def shadowed(a: tuple[Any, ...], kw: dict[str, Any]) -> Callable[[], Any] | None:
            return functools.partial(fn, *a, **kw) if self.shadow else None

        if inspect.iscoroutinefunction(fn):

            async def ainvoke(
                p: Any, c: Any, approval: Any, a: tuple[Any, ...], kw: dict[str, Any]
            ) -> Any:
                args, bad = bind(a, kw)
                plan = await self._aplan(name, args, p, c, approval, bad=bad)
                if plan.blocked is not None:
                    raise plan.blocked
                return await self._run_async(plan, name, run, args, shadowed(a, kw))

            @functools.wraps(fn)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                return await ainvoke(None, None, _token(kw.pop("_approval", _ABSENT)), a, kw)

            def acall_as(
                principal: Any = None, context: Any = None, approval: str | None = None
            ) -> Callable[..., Awaitable[Any]]:
                async def bound(*a: Any, **kw: Any) -> Any:
                    return await ainvoke(principal, context, approval, a, kw)

                return bound

            async_wrapper.guard = self  # type: ignore[attr-defined]
            async_wrapper.call_as = acall_as  # type: ignore[attr-defined]
            return async_wrapper

        def invoke(p: Any, c: Any, approval: Any, a: tuple[Any, ...], kw: dict[str, Any]) -> Any:
            args, bad = bind(a, kw)
            plan = self._plan(name, args, p, c, approval, bad=bad)
            if plan.blocked is not None:
                raise plan.blocked
            return self._run_sync(plan, name, run, args, shadowed(a, kw))

        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:  # invoke(None, None, ...), inlined: the hot path
            approval = _token(kw.pop("_approval", _ABSENT)) if "_approval" in kw else None
            args, bad = bind(a, kw)
            plan = self._plan(name, args, None, None, approval, bad=bad)
            if plan.blocked is not None:
                raise plan.blocked
            return self._run_sync(plan, name, run, args, shadowed(a, kw) if self.shadow else None)

        def call_as(
            principal: Any = None, context: Any = None, approval: str | None = None
        ) -> Callable[..., Any]:
            return lambda *a, **kw: invoke(principal, context, approval, a, kw)

        wrapper.guard = self  # type: ignore[attr-defined]
        wrapper.call_as = call_as  # type: ignore[attr-defined]
        return wrapper

    # ---- deciding (everything here fails closed)

    def _breaker(self, tool: str) -> _BreakerState | None:
        b = self._breakers.get(tool)
        if b is not None:
            return b
        compiled = self.engine.compiled
        if self._no_breaker.get(tool, self) is compiled:
            return None
        with self._breakers_lock:
            b = self._breakers.get(tool)
            if b is not None:
                return b
            config = self.breaker_config.get(tool)
            if config is None:
                config = next(
                    (
                        v
                        for k, v in self.breaker_config.items()
                        if any(ch in k for ch in "*?[") and fnmatch.fnmatchcase(tool, k)
                    ),
                    None,
                )
            if config is None:
                config = self._declared_breaker(tool)
            if config is None:
                if len(self._no_breaker) >= 4096:
                    self._no_breaker.clear()  # a cache only: forgetting costs a lookup, nothing more
                    self.stats["no_breaker_cache_cleared"] += 1
                self._no_breaker[tool] = compiled
                return None
            if len(self._breakers) >= self.max_breakers:
                idle = [k for k, v in self._breakers.items() if v.idle]
                for k in idle:
                    del self._breakers[k]
                self.stats["breakers_dropped"] += len(idle)
                if len(self._breakers) >= self.max_breakers:
                    self.stats["breakers_full"] += 1
                    raise _BreakersFull
            b = self._breakers[tool] = _BreakerState(config)
            return b

    def _declared_breaker(self, tool: str) -> Breaker | None:
        """A breaker the policy declares (``breaker TOOLS after N failures in W for C``)."""
        from policylang.language.policy import tool_matches

        compiled = self.engine.compiled
        if compiled is None:
            return None
        for decl in compiled.policy.breakers:
            if any(tool_matches(p.pattern, tool) for p in decl.tools):
                return Breaker(
                    failures=decl.failures,
                    window=decl.window.total_seconds(),
                    cooldown=decl.cooldown.total_seconds(),
                )
        return None

    def _who(self, principal: Any, context: Any) -> tuple[Any, Any]:
        """The explicit per-call values (trusted code) if given, else the guard's providers."""
        if principal is None:
            principal = self.principal() if callable(self.principal) else self.principal
        if context is None:
            context = self.context() if callable(self.context) else self.context
        return principal, context

    def _deny(self, tool: str, code: str, reason: str, args: Any, p: Any, c: Any) -> _Plan:
        try:
            d = self.engine.reject(tool, code, reason, args=args, principal=p, context=c)
        except Exception as exc:  # noqa: BLE001
            try:  # the texts go through the engine's redaction funnel; if even that fails, drop them
                scrub = self.engine.redactor(tool, args, p, c)
                reason, detail = scrub(reason), scrub(str(exc))
            except Exception:  # noqa: BLE001
                reason, detail = f"the call was refused ({code})", type(exc).__name__
            d = Decision.model_construct(
                effect=Effect.DENY,
                tool=str(tool),
                code=code,
                reasons=[reason],
                message=f"{tool} denied: {reason} ({detail})",
            )
        return _Plan(d, blocked=PolicyDenied(d))

    def _pre(
        self,
        tool: str,
        args: dict[str, Any] | None,
        principal: Any,
        context: Any,
        approval: Any,
        bad: str | None,
        missing: str | None,
    ) -> tuple[_Plan | None, Any, Any, Any, Any]:
        """Checks before the policy: request form, breaker, token. Returns (plan or None, p, c, probe, token)."""
        p, c = self._who(principal, context)
        if bad is not None:
            return self._deny(tool, "invalid_request", bad, args, p, c), p, c, None, None
        if missing is not None:
            return self._deny(tool, "unknown_tool", missing, args, p, c), p, c, None, None
        payload = None
        if approval is not None:
            try:
                payload = self.tokens.read(approval)
            except TokenError as exc:
                return self._deny(tool, "invalid_approval", str(exc), args, p, c), p, c, None, None
        probe = None
        try:
            breaker = self._breaker(tool) if not self.shadow else None
        except _BreakersFull:
            return (
                self._deny(
                    tool,
                    "breaker_capacity",
                    f"the guard already tracks circuit breakers for "
                    f"{self.max_breakers} tools, all with recent failures",
                    args,
                    p,
                    c,
                ),
                p,
                c,
                None,
                None,
            )
        if breaker is not None:
            may, is_probe, why = breaker.before(self.monotonic())
            if not may:
                return self._deny(tool, "circuit_open", why, args, p, c), p, c, None, None
            probe = (breaker, is_probe)
        return None, p, c, probe, payload

    def _bound(self, tool: str, decision: Decision, p: Any, c: Any) -> dict[str, Any]:
        """What an approval token for this confirm binds (see policylang.runtime.approvals)."""
        session = getattr(decision, "_sid", None)
        if session is None and isinstance(c, Mapping):
            session = c.get("session_id")
        return binding(
            tool,
            decided_args(decision),
            p,
            session,
            [r.id for r in decision.rules],
            decision.policy_hash,
        )

    def _post(
        self, tool: str, decision: Decision, args: Any, p: Any, c: Any, payload: Any, probe: Any
    ) -> tuple[_Plan, bool]:
        """After the decision: (plan, whether the approver must be asked)."""
        breaker, is_probe = probe if probe is not None else (None, False)
        plan = _Plan(decision, is_probe, breaker)
        if self.shadow:
            return plan, False
        if decision.effect is Effect.DENY:
            plan.blocked = PolicyDenied(decision)
        elif decision._args is None:  # run exactly what was decided, or nothing
            return self._deny(
                tool,
                "internal_error",
                "the engine did not report the arguments it decided on; not running the call",
                args,
                p,
                c,
            ), False
        elif decision.effect is Effect.CONFIRM:
            if payload is not None:
                return self._redeem(plan, tool, decision, args, p, c, payload), False
            if self.approver is not None:
                return plan, True
            try:
                token = self.tokens.issue(self._bound(tool, decision, p, c), decision.decision_id)
            except TokenError as exc:
                return self._deny(tool, "approval_unavailable", str(exc), args, p, c), False
            except Exception as exc:  # noqa: BLE001 - no pending token on record: nothing to approve
                return self._deny(
                    tool,
                    "store_unavailable",
                    f"the approval store is unavailable ({type(exc).__name__}: {exc})",
                    args,
                    p,
                    c,
                ), False
            plan.blocked = ConfirmationRequired(decision, token)
        return plan, False

    def _redeem(
        self,
        plan: _Plan,
        tool: str,
        decision: Decision,
        args: Any,
        p: Any,
        c: Any,
        payload: dict[str, Any],
    ) -> _Plan:
        """Spend an approved token on this confirm, if it was issued for exactly this call."""
        try:
            by = self.tokens.redeem(payload, self._bound(tool, decision, p, c))
        except TokenError as exc:
            return self._deny(tool, "invalid_approval", str(exc), args, p, c)
        except Exception as exc:  # noqa: BLE001 - a token that cannot be marked used is not honoured
            return self._deny(
                tool,
                "store_unavailable",
                f"the approval store is unavailable ({type(exc).__name__}: {exc})",
                args,
                p,
                c,
            )
        return self._approved(plan, tool, decision, args, p, c, by, str(payload["id"]))

    def _approved(
        self,
        plan: _Plan,
        tool: str,
        decision: Decision,
        args: Any,
        p: Any,
        c: Any,
        by: str,
        token_id: str | None,
    ) -> _Plan:
        """A person approved a confirm decision: record who, then consume the limits."""
        record = {
            "kind": "approval",
            "decision_id": decision.decision_id,
            "tool": tool,
            "approved": True,
            "by": by,
            "at": time.time(),
        }
        if token_id is not None:
            record["token_id"] = token_id
        try:
            self.engine.write_audit(record)
        except Exception as exc:  # noqa: BLE001 - an approval must be on record before anything runs
            return self._deny(
                tool,
                "audit_unavailable",
                f"the audit log is unavailable ({type(exc).__name__}: {exc})",
                args,
                p,
                c,
            )
        committed = self.engine.commit(decision)
        if committed.effect is Effect.DENY:
            return _Plan(committed, blocked=PolicyDenied(committed))
        return plan

    def _answer(
        self,
        plan: _Plan,
        tool: str,
        args: Any,
        p: Any,
        c: Any,
        answer: Any,
        error: BaseException | None,
    ) -> _Plan:
        d = plan.decision
        if error is not None:
            return self._deny(
                tool,
                "approver_error",
                f"the approver failed ({type(error).__name__}: {error}); not running the call",
                args,
                p,
                c,
            )
        if answer is True:
            return self._approved(plan, tool, d, args, p, c, "approver", None)
        try:
            self.engine.write_audit(
                {
                    "kind": "approval",
                    "decision_id": d.decision_id,
                    "tool": tool,
                    "approved": False,
                    "by": "approver",
                    "at": time.time(),
                }
            )
        except Exception:  # noqa: BLE001 - it is a deny anyway
            log.warning("could not audit a declined approval of %s", d.decision_id)
        return self._deny(
            tool, "not_approved", f"the approver did not approve ({d.message})", args, p, c
        )

    def _plan(
        self,
        tool: str,
        args: dict[str, Any] | None,
        principal: Any,
        context: Any,
        approval: Any,
        bad: str | None = None,
        missing: str | None = None,
    ) -> _Plan:
        probe = None
        try:
            early, p, c, probe, payload = self._pre(
                tool, args, principal, context, approval, bad, missing
            )
            if early is not None:
                return early
            decision = self.engine.decide(tool, args, p, c)
            plan, ask = self._post(tool, decision, args, p, c, payload, probe)
            if ask:
                try:
                    answer = self.approver(decision)  # type: ignore[misc]
                    if inspect.isawaitable(answer):
                        answer = _run_coroutine(answer)
                    plan = self._answer(plan, tool, args, p, c, answer, None)
                except Exception as exc:  # noqa: BLE001
                    plan = self._answer(plan, tool, args, p, c, None, exc)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything at all
            plan = self._deny(
                tool,
                "internal_error",
                f"the guard failed: {type(exc).__name__}: {exc}",
                args,
                None,
                None,
            )
        return self._settle(plan, probe)

    async def _aplan(
        self,
        tool: str,
        args: dict[str, Any] | None,
        principal: Any,
        context: Any,
        approval: Any,
        bad: str | None = None,
        missing: str | None = None,
    ) -> _Plan:
        probe = None
        try:
            early, p, c, probe, payload = self._pre(
                tool, args, principal, context, approval, bad, missing
            )
            if early is not None:
                return early
            if self.decide_in_thread:
                decision = await asyncio.to_thread(self.engine.decide, tool, args, p, c)
            else:
                decision = self.engine.decide(tool, args, p, c)
            plan, ask = self._post(tool, decision, args, p, c, payload, probe)
            if ask:
                try:
                    answer = self.approver(decision)  # type: ignore[misc]
                    if inspect.isawaitable(answer):
                        answer = await answer
                    plan = self._answer(plan, tool, args, p, c, answer, None)
                except Exception as exc:  # noqa: BLE001
                    plan = self._answer(plan, tool, args, p, c, None, exc)
        except Exception as exc:  # noqa: BLE001
            plan = self._deny(
                tool,
                "internal_error",
                f"the guard failed: {type(exc).__name__}: {exc}",
                args,
                None,
                None,
            )
        return self._settle(plan, probe)

    @staticmethod
    def _settle(plan: _Plan, probe: Any) -> _Plan:
        """A probe slot taken for a call that will not run is given back."""
        if plan.blocked is not None and probe is not None and probe[1]:
            probe[0].release()
            plan.probe = False
        if plan.blocked is not None:
            plan.breaker = None
        return plan

    # ---- running (only plans that are not blocked get here)

    @staticmethod
    def _arguments(decided: dict[str, Any] | None, given: dict[str, Any] | None) -> dict[str, Any]:
        """The decided arguments; a ``null`` the policy read as "left out" is passed on as None."""
        if decided is None:  # shadow mode only: the engine refused the request, run it as it came
            return dict(given or {})
        if given is not None and len(decided) < len(given):
            return {
                **{k: None for k, v in given.items() if v is None and k not in decided},
                **decided,
            }
        return decided

    def _run_sync(
        self,
        plan: _Plan,
        tool: str,
        run: Callable[[dict[str, Any]], Any],
        given: dict[str, Any] | None,
        shadowed: Callable[[], Any] | None,
    ) -> Any:
        decided = plan.decision._args  # set on every Decision; checked in _post
        started = time.perf_counter()
        try:
            if decided is None:  # shadow mode only (_post denies otherwise): run it as it came
                result = shadowed() if shadowed is not None else run(dict(given or {}))
            elif given is not None and len(decided) < len(given):
                result = run(self._arguments(decided, given))
            else:
                result = run(decided)
            if hasattr(result, "__await__"):  # an async tool called from sync code: finish it here
                result = _run_coroutine(result)
        except BaseException as exc:
            self._outcome(plan, tool, exc, started)
            raise
        self._outcome(plan, tool, None, started)
        return result

    async def _run_async(
        self,
        plan: _Plan,
        tool: str,
        run: Callable[[dict[str, Any]], Any],
        given: dict[str, Any] | None,
        shadowed: Callable[[], Any] | None,
    ) -> Any:
        decided = plan.decision._args  # set on every Decision; checked in _post
        started = time.perf_counter()
        try:
            result = (
                shadowed()
                if decided is None and shadowed is not None
                else run(self._arguments(decided, given))
            )
            if inspect.isawaitable(result):
                result = await result
        except BaseException as exc:
            self._outcome(plan, tool, exc, started)
            raise
        self._outcome(plan, tool, None, started)
        return result

    def _outcome(self, plan: _Plan, tool: str, error: BaseException | None, started: float) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        d = plan.decision
        failed = error is not None and (
            plan.breaker is None or isinstance(error, plan.breaker.config.errors)
        )
        if plan.breaker is not None:
            plan.breaker.after(self.monotonic(), not failed, plan.probe)
        if error is not None and self.refund_on_error and d.effect is not Effect.DENY:
            try:
                self.engine.refund(d)
            except Exception:  # noqa: BLE001
                log.warning("could not refund the limits of %s", d.decision_id, exc_info=True)
        if self.engine.audit is None:
            return  # nothing to record the outcome in
        record = {
            "kind": "outcome",
            "decision_id": d.decision_id,
            "tool": tool,
            "effect": d.effect.value,
            "ok": error is None,
            "error": type(error).__name__ if error is not None else None,
            "duration_ms": round(duration_ms, 3),
            "at": time.time(),
        }
        if self.shadow:
            record["shadow"] = True
        try:
            self.engine.write_audit(record)
        except Exception:  # noqa: BLE001 - the call already ran; do not hide its result
            log.warning(
                "could not write the outcome of %s to the audit log", d.decision_id, exc_info=True
            )


def _check_options(
    engine: Any,
    tools: Any,
    approver: Any,
    principal: Any,
    context: Any,
    shadow: Any,
    breakers: Any,
    token_ttl: Any,
    secret: Any,
    tokens: Any,
    refund_on_error: Any,
    decide_in_thread: Any,
    approvals: Any,
    max_breakers: Any,
    monotonic: Any,
) -> None:
    """Guard's options, checked at construction (a wrong one raises TypeError or ValueError here).

    Why here: a Guard is built once and wraps every call of an agent; a
    mistake such as ``principal="alice"`` or ``shadow="no"`` would otherwise
    show up as a deny (or, for ``shadow``, as every call running) far from it.
    """
    from policylang.runtime.engine import Engine

    if not isinstance(engine, Engine):
        raise _options.fail("Guard", "engine", "an Engine", engine)
    if not callable(tools):  # a dispatch(name, args) function, or a table of tools
        _options.mapping(
            "Guard",
            "tools",
            tools,
            lambda k, v: isinstance(k, str) and callable(v),
            "a dict of tool name to function, or one dispatch(name, args) function",
        )
    _options.function("Guard", "approver", approver)
    for name, provider in (("principal", principal), ("context", context)):
        if provider is not None and not isinstance(provider, Mapping) and not callable(provider):
            raise _options.fail(
                "Guard", name, "a dict, a function returning one, or None", provider
            )
    _options.flag("Guard", "shadow", shadow)
    _options.mapping(
        "Guard",
        "breakers",
        breakers,
        lambda k, v: isinstance(k, str) and isinstance(v, Breaker),
        "a dict of tool name (or glob) to Breaker",
    )
    _options.positive_number("Guard", "token_ttl", token_ttl)
    if secret is not None and not isinstance(secret, bytes):
        raise _options.fail("Guard", "secret", "bytes (or None for a random secret)", secret)
    if tokens is not None and not isinstance(tokens, ApprovalTokens):
        raise _options.fail("Guard", "tokens", "an ApprovalTokens", tokens)
    _options.flag("Guard", "refund_on_error", refund_on_error)
    _options.flag("Guard", "decide_in_thread", decide_in_thread, optional=True)
    if approvals is not None and not all(
        callable(getattr(approvals, m, None)) for m in ("add", "decide", "consume", "state")
    ):
        raise _options.fail("Guard", "approvals", "an ApprovalStore", approvals)
    if isinstance(max_breakers, bool) or not isinstance(max_breakers, int):
        raise _options.fail("Guard", "max_breakers", "a whole number", max_breakers)
    if max_breakers < 1:
        raise ValueError(f"Guard(max_breakers=...) must be at least 1, got {max_breakers}")
    if secret is not None and len(secret) < 16:
        raise ValueError("Guard(secret=...) must be at least 16 bytes (or None for a random one)")
    _options.function("Guard", "monotonic", monotonic, optional=False)


# ---------------------------------------------------------------- helpers


def _reserved_reason(key: str) -> str:
    what = {"_principal": "the principal", "_context": "the context"}.get(key, "an approval")
    return (
        f"unexpected argument '{key}': the name is reserved; {what} never comes from a tool call's "
        "arguments" + (" (pass the token to the guard as approval=)" if key == "_approval" else "")
    )


_ABSENT: Any = object()


def _token(value: Any) -> Any:
    """A wrapper's ``_approval=`` keyword: absent is no token; present, even null, must be a valid one."""
    return None if value is _ABSENT else "" if value is None else value


def _call_keywords(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    return fn(**args)


def _keywords_caller(fn: Callable[..., Any]) -> Callable[[dict[str, Any]], Any]:
    def run(args: dict[str, Any]) -> Any:
        return fn(**args)

    return run


def _unreachable(
    args: dict[str, Any],
) -> Any:  # pragma: no cover - a missing tool is always denied first
    raise PolicyError("no function is registered for this tool")


def _signature_caller(
    fn: Callable[..., Any], sig: inspect.Signature
) -> Callable[[dict[str, Any]], Any]:
    """How to call ``fn`` with a dict of decided arguments when some must go positionally."""
    params = list(sig.parameters.values())
    star = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    positional = (
        (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if star
        else (inspect.Parameter.POSITIONAL_ONLY,)
    )
    before = [p.name for p in params if p.kind in positional]
    skip = frozenset([*before, *([star] if star else [])])

    def run(args: dict[str, Any]) -> Any:
        a = [args[n] for n in before if n in args]
        if star:
            a.extend(args.get(star) or ())
        return fn(*a, **{k: v for k, v in args.items() if k not in skip})

    return run


def function_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of ``fn`` that have defaults (nothing when it cannot be inspected)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    return {
        n: p.default for n, p in sig.parameters.items() if p.default is not inspect.Parameter.empty
    }


def _policy_defaults(engine: Any, tool: str) -> frozenset[str]:
    """The arguments of ``tool`` the loaded policy gives a default."""
    compiled = getattr(engine, "compiled", None)
    info = compiled.policy.tools.get(tool) if compiled is not None else None
    return (
        frozenset(n for n, f in info.args.fields if f.has_default)
        if info is not None
        else frozenset()
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001
        return False


def check_defaults(engine: Any, tool: str, defaults: Mapping[str, Any], what: str) -> None:
    """Raise GuardError when ``tool``'s policy defaults differ from the function's own.

    The function runs with the decided arguments, so a policy default always
    reaches it; but a function default the policy does not share means the
    two disagree on what an absent argument is. A parameter the policy
    declares optional without a default reads as absent, i.e. ``None``.
    """
    compiled = getattr(engine, "compiled", None)
    info = compiled.policy.tools.get(tool) if compiled is not None else None
    if info is None:
        return
    for name, f in info.args.fields:
        if name not in defaults:
            continue
        if f.has_default:
            theirs: Any = f.default
        elif f.optional or f.nullable:
            theirs = None
        else:
            continue  # required by the policy: the function's default never applies
        if not _same(defaults[name], theirs):
            raise GuardError(
                f"{what}: the default of '{name}' is {defaults[name]!r}, but the policy's is "
                f"{theirs!r} ({tool} {{ {name}: ... }}); make them the same so the call that "
                "runs is the call that was decided"
            )


def _parse_args(args: Any) -> tuple[dict[str, Any] | None, str | None]:
    if args is None:
        return {}, None
    if isinstance(args, str | bytes | bytearray):
        try:
            args = json.loads(args)
        except ValueError as exc:
            return None, f"the arguments are not valid JSON: {exc}"
    if not isinstance(args, Mapping):
        return None, f"the arguments must be a JSON object, not {type(args).__name__}"
    return dict(args), None


def _run_coroutine(awaitable: Any) -> Any:
    """Run an async approver from synchronous code (in a helper thread if a loop is running here)."""

    async def main() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["v"] = asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001
            box["e"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


__all__ = [
    "RESERVED",
    "ApprovalTokens",
    "Approver",
    "Attempt",
    "Breaker",
    "CallBlocked",
    "ConfirmationRequired",
    "Guard",
    "GuardError",
    "MemoryApprovalStore",
    "PolicyDenied",
    "SQLiteApprovalStore",
    "TokenError",
    "args_digest",
    "canonical_args",
    "check_defaults",
    "decided_args",
    "engine_tokens",
    "function_defaults",
]
