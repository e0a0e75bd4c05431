"""Guards: run a tool function only when the policy allows it.

``engine.guard(fn, tool="crm.update")`` and ``@engine.protect("crm.update")``
wrap one function (sync or ``async def``); :class:`Guard` ``.call(tool, args)``
serves dispatch-style executors that hold a table of tools. For every call:

1. the function's arguments (positional ones bound by name with
   :func:`inspect.signature`, defaults applied) are the ``args`` of the
   decision; ``_principal=``, ``_context=`` and ``_approval=`` keyword
   arguments, or the ``principal``/``context`` given to the guard (a dict or a
   function returning one), supply the rest;
2. an open circuit breaker denies ``circuit_open`` without asking the policy;
3. allow → the function runs; deny → :class:`PolicyDenied`; confirm → the
   ``approver`` (``(decision) -> bool``, sync or async) decides, or, without
   one, :class:`ConfirmationRequired` carries a signed, single-use, expiring
   token: calling again with the same arguments and ``_approval=token`` runs
   the call (its limits are consumed then);
4. the outcome (ok or the error's type, and the duration) is written to the
   engine's audit sink as ``{"kind": "outcome", "decision_id": ...}`` and feeds
   the tool's circuit breaker.

Anything that goes wrong before the function runs — in deciding, in the
store, in a provider or in the approver — is a deny: nothing runs by
accident. ``shadow=True`` decides and audits every call but always runs it
(to try a policy on live traffic).
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import functools
import hashlib
import hmac
import inspect
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policylang.errors import PolicyError
from policylang.runtime import options as _options
from policylang.runtime.decision import Decision, Effect
from policylang.runtime.limits import MemoryStore

if TYPE_CHECKING:
    from policylang.runtime.engine import Engine

log = logging.getLogger("policylang.guard")

_RESERVED = ("_principal", "_context", "_approval")


# ---------------------------------------------------------------- exceptions


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
    """A person must approve; call again with ``_approval=token`` (or ``approval=token``) once they have."""

    code = "confirm"

    def __init__(self, decision: Decision, token: str):
        super().__init__(decision)
        self.token = token


# ---------------------------------------------------------------- confirmation tokens


def canonical_args(args: Any) -> str:
    return json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=repr)


def args_digest(args: Any) -> str:
    return hashlib.sha256(canonical_args(args).encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    pass


class ApprovalTokens:
    """HMAC-signed approval tokens bound to tool, arguments and principal; single use, expiring.

    Used token ids are remembered in this process until they expire, so a
    token works once per ``ApprovalTokens`` (share one ``secret`` and a shared
    used-id store between processes to honour tokens across them).
    """

    def __init__(
        self,
        secret: bytes | None = None,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        if secret is not None and not isinstance(secret, bytes):
            raise _options.fail(
                "ApprovalTokens", "secret", "bytes (or None for a random secret)", secret
            )
        ttl = _options.positive_number("ApprovalTokens", "ttl", ttl)
        _options.function("ApprovalTokens", "clock", clock, optional=False)
        self.secret = secret if secret is not None else os.urandom(32)
        self.ttl = ttl
        self.clock = clock
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, tool: str, args: Any, principal_id: Any, decision_id: str = "") -> str:
        payload = {
            "v": 1,
            "id": os.urandom(12).hex(),
            "tool": tool,
            "args": args_digest(args),
            "pid": principal_id,
            "exp": round(self.clock() + self.ttl, 3),
            "d": decision_id,
        }
        body = _b64(canonical_args(payload).encode())
        sig = _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}"

    def check(self, token: Any, tool: str, args: Any, principal_id: Any) -> dict[str, Any]:
        """The token's payload if it approves exactly this call; raises TokenError otherwise."""
        if not isinstance(token, str) or token.count(".") != 1:
            raise TokenError("the approval token is malformed")
        body, sig = token.split(".")
        want = _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig, want):
            raise TokenError("the approval token's signature is not valid")
        try:
            payload = json.loads(_unb64(body))
        except ValueError:
            raise TokenError("the approval token is malformed") from None
        if payload.get("exp", 0) <= self.clock():
            raise TokenError("the approval token has expired")
        if payload.get("tool") != tool:
            raise TokenError(f"the approval token is for {payload.get('tool')}, not {tool}")
        if payload.get("args") != args_digest(args):
            raise TokenError("the approval token was issued for different arguments")
        if payload.get("pid") != principal_id:
            raise TokenError("the approval token was issued to a different principal")
        with self._lock:
            if payload["id"] in self._used:
                raise TokenError("the approval token has already been used")
        return payload

    def consume(self, payload: dict[str, Any]) -> None:
        """Mark a checked token used; raises TokenError if another call used it first."""
        now = self.clock()
        with self._lock:
            if payload["id"] in self._used:
                raise TokenError("the approval token has already been used")
            if len(self._used) > 1024:
                for k in [k for k, exp in self._used.items() if exp <= now]:
                    del self._used[k]
            self._used[payload["id"]] = float(payload.get("exp", now))


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


Provider = Mapping[str, Any] | Callable[[], Any] | None


class Guard:
    """Decides before running: for wrapped functions and for dispatch tables of tools.

    ``tools``: ``{name: fn}`` for :meth:`call`. ``approver``: ``(decision) -> bool``
    (or awaitable) asked on confirm. ``principal`` / ``context``: a dict or a
    zero-argument function giving one (e.g. from a ``contextvars`` variable).
    ``shadow=True``: always run, only decide and audit. ``breakers``:
    ``{tool or glob: Breaker(...)}``. ``token_ttl`` / ``secret``: approval tokens.
    ``refund_on_error=True`` gives back an allowed call's limit usage when the
    function raises. ``decide_in_thread`` (async calls): run the decision in
    a worker thread so a slow store does not block the event loop (default:
    when the store is not in memory).
    """

    def __init__(
        self,
        engine: Engine,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        *,
        approver: Callable[[Decision], Any] | None = None,
        principal: Provider = None,
        context: Provider = None,
        shadow: bool = False,
        breakers: Mapping[str, Breaker] | None = None,
        token_ttl: float = 300.0,
        secret: bytes | None = None,
        tokens: ApprovalTokens | None = None,
        refund_on_error: bool = False,
        decide_in_thread: bool | None = None,
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
            monotonic,
        )
        self.engine = engine
        self.tools = dict(tools or {})
        self.approver = approver
        self.principal = principal
        self.context = context
        self.shadow = shadow
        self.breaker_config = dict(breakers or {})
        self._breakers: dict[str, _BreakerState] = {}
        self._breakers_lock = threading.Lock()
        # tools found to have no breaker, with the compiled policy that said so (a reload may add one)
        self._no_breaker: dict[str, Any] = {}
        self.tokens = tokens or ApprovalTokens(secret, token_ttl)
        self.refund_on_error = refund_on_error
        self.decide_in_thread = (
            (not isinstance(engine.store, MemoryStore))
            if decide_in_thread is None
            else decide_in_thread
        )
        self.monotonic = monotonic

    # ---- public entry points

    def call(
        self,
        tool: str,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
        approval: str | None = None,
    ) -> Any:
        """Decide and run ``tools[tool](**args)``; ``args`` may be a dict or a JSON object string."""
        fn = self.tools.get(tool)
        parsed, bad = _parse_args(args)
        plan = self._plan(
            tool,
            parsed,
            principal,
            context,
            approval,
            bad=bad,
            missing=None if fn is not None else f"no function is registered for tool '{tool}'",
        )
        return self._run_sync(plan, tool, fn, (), parsed or {})

    async def acall(
        self,
        tool: str,
        args: Any = None,
        principal: Any = None,
        context: Any = None,
        approval: str | None = None,
    ) -> Any:
        fn = self.tools.get(tool)
        parsed, bad = _parse_args(args)
        missing = None if fn is not None else f"no function is registered for tool '{tool}'"
        plan = await self._aplan(
            tool, parsed, principal, context, approval, bad=bad, missing=missing
        )
        return await self._run_async(plan, tool, fn, (), parsed or {})

    def breaker_state(self, tool: str) -> str:
        b = self._breaker(tool)
        return b.state if b is not None else "none"

    def wrap(self, fn: Callable[..., Any], tool: str | None = None) -> Callable[..., Any]:
        name = tool or fn.__name__
        sig = inspect.signature(fn)
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
        required = names - defaults.keys()

        def bind(
            a: tuple[Any, ...], kw: dict[str, Any]
        ) -> tuple[dict[str, Any] | None, str | None, tuple[Any, ...], dict[str, Any]]:
            if plain and not a and required <= kw.keys() <= names:
                # keywords only, every one a parameter, every required one given: what sig.bind
                # + apply_defaults would give, without their cost on every call
                return {n: kw[n] if n in kw else defaults[n] for n in sig.parameters}, None, a, kw
            try:
                bound = sig.bind(*a, **kw)
            except TypeError as exc:
                return None, f"the call does not match {name}'s parameters: {exc}", a, kw
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
            return out, None, a, kw

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                p, c, approval = (
                    kw.pop("_principal", None),
                    kw.pop("_context", None),
                    kw.pop("_approval", None),
                )
                args, bad, a, kw = bind(a, kw)
                plan = await self._aplan(name, args, p, c, approval, bad=bad)
                return await self._run_async(plan, name, fn, a, kw, direct=True)

            async_wrapper.guard = self  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            p, c, approval = (
                kw.pop("_principal", None),
                kw.pop("_context", None),
                kw.pop("_approval", None),
            )
            args, bad, a, kw = bind(a, kw)
            plan = self._plan(name, args, p, c, approval, bad=bad)
            return self._run_sync(plan, name, fn, a, kw, direct=True)

        wrapper.guard = self  # type: ignore[attr-defined]
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
                    self._no_breaker.clear()
                self._no_breaker[tool] = compiled
                return None
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
                tool=tool,
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
                payload = self.tokens.check(approval, tool, args, _pid(p))
            except TokenError as exc:
                return self._deny(tool, "invalid_approval", str(exc), args, p, c), p, c, None, None
        probe = None
        breaker = self._breaker(tool) if not self.shadow else None
        if breaker is not None:
            may, is_probe, why = breaker.before(self.monotonic())
            if not may:
                return self._deny(tool, "circuit_open", why, args, p, c), p, c, None, None
            probe = (breaker, is_probe)
        return None, p, c, probe, payload

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
        elif decision.effect is Effect.CONFIRM:
            if payload is not None:
                return self._approved(plan, tool, decision, args, p, c, payload, "token"), False
            if self.approver is not None:
                return plan, True
            token = self.tokens.issue(tool, args, _pid(p), decision.decision_id)
            plan.blocked = ConfirmationRequired(decision, token)
        elif payload is not None:  # allowed anyway: the token is spent all the same
            try:
                self.tokens.consume(payload)
            except TokenError as exc:
                plan = self._deny(tool, "invalid_approval", str(exc), args, p, c)
        return plan, False

    def _approved(
        self,
        plan: _Plan,
        tool: str,
        decision: Decision,
        args: Any,
        p: Any,
        c: Any,
        payload: Any,
        by: str,
    ) -> _Plan:
        """A person approved a confirm decision: spend the token, record it, consume the limits."""
        try:
            if payload is not None:
                self.tokens.consume(payload)
            self.engine.write_audit(
                {
                    "kind": "approval",
                    "decision_id": decision.decision_id,
                    "tool": tool,
                    "approved": True,
                    "by": by,
                    "at": time.time(),
                }
            )
        except TokenError as exc:
            return self._deny(tool, "invalid_approval", str(exc), args, p, c)
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
            return self._approved(plan, tool, d, args, p, c, None, "approver")
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

    # ---- running

    def _run_sync(
        self,
        plan: _Plan,
        tool: str,
        fn: Any,
        a: tuple[Any, ...],
        kw: dict[str, Any],
        direct: bool = False,
    ) -> Any:
        if plan.blocked is not None:
            raise plan.blocked
        started = time.perf_counter()
        try:
            result = fn(*a, **kw)
        except BaseException as exc:
            self._outcome(plan, tool, exc, started)
            raise
        self._outcome(plan, tool, None, started)
        return result

    async def _run_async(
        self,
        plan: _Plan,
        tool: str,
        fn: Any,
        a: tuple[Any, ...],
        kw: dict[str, Any],
        direct: bool = False,
    ) -> Any:
        if plan.blocked is not None:
            raise plan.blocked
        started = time.perf_counter()
        try:
            result = fn(*a, **kw)
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
        if error is not None and self.refund_on_error and d.effect is Effect.ALLOW:
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
    _options.mapping(
        "Guard",
        "tools",
        tools,
        lambda k, v: isinstance(k, str) and callable(v),
        "a dict of tool name to function",
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
    _options.function("Guard", "monotonic", monotonic, optional=False)


def _pid(principal: Any) -> Any:
    return principal.get("id") if isinstance(principal, Mapping) else None


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
