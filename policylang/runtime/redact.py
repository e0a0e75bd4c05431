"""The redaction funnel: how ``@secret`` values are kept out of everything we write.

Two lines of defence, one module:

1. **Static taint** (:mod:`policylang.language.secrets`): at load time every
   ``because`` part, explained value and limit key whose expression reads a
   secret is replaced by :data:`MARKER` before any code is generated, so it is
   never evaluated and cannot reach a decision.
2. **Scrubbing by value** (:class:`Scrubber`): texts that quote run-time values
   we do not control — evaluation errors (``cannot convert '4111...' to int``),
   validation errors, store and sink exceptions — have every text form of this
   request's secret values replaced by the marker. Forms are the value's
   ``str``/``repr``/JSON/CEL renderings, numbers as ints and doubles, the
   leaves and the whole of nested lists and maps, and any prefix of at least
   :data:`SEED` characters of them (a truncated quote). Forms shorter than
   :data:`SHORT` characters are replaced only as whole tokens, so a secret
   ``7`` does not eat every digit of a message. At most :data:`MAX_LEAVES`
   leaves of one request are collected (a bound on the cost for hostile input).

:class:`SecretFields` (one per tool, built at load) knows where the secrets of
a request live — ``args``, ``principal`` and ``context`` fields declared
``@secret``, at any depth — and gives the redacted copy that audit records,
session history and replay examples store (every secret replaced by the marker).
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from policylang.language.secrets import MARKER, has_secret
from policylang.language.types import Type
from policylang.runtime import celops
from policylang.runtime.decision import Decision, ErrorInfo, LimitState, RuleRef, fast

SEED = 8  # a quote of at least this many leading characters of a secret form is scrubbed
SHORT = 4  # forms shorter than this are scrubbed only where they stand alone (not inside a word)
MAX_LEAVES = 256  # secret leaves collected per request
_MAX_DEPTH = 32

# Decision codes whose texts come only from the policy (already redacted statically).
CLEAN_CODES = frozenset(
    {"allowed", "denied", "confirm", "default_deny", "default_allow", "default_confirm"}
)


# A redaction plan: where the secrets inside a declared type are, worked out once at load so
# requests are walked without looking at types. ("obj", ((name, plan | None), ...)) lists only
# the fields that are or hold a secret (None: the field itself is secret); ("list", plan) and
# ("map", plan) describe the items; ("whole",) is a value to treat as secret as a whole.
Plan = tuple[Any, ...]
_WHOLE: Plan = ("whole",)


def plan_for(t: Type) -> Plan:
    """The redaction plan of a type that holds a secret."""
    while t.kind == "nullable" and t.params:
        t = t.params[0]
    if t.kind == "object":
        return (
            "obj",
            tuple(
                (name, None if f.secret else plan_for(f.type))
                for name, f in t.fields
                if f.secret or has_secret(f.type)
            ),
        )
    if t.kind == "list" and t.params:
        return ("list", plan_for(t.params[0]))
    if t.kind == "map" and len(t.params) == 2:
        return ("map", plan_for(t.params[1]))
    return _WHOLE


def _redact(value: Any, plan: Plan, depth: int = 0) -> Any:
    """A copy of ``value`` with every secret inside it (by ``plan``) replaced by the marker."""
    if value is None:
        return None
    kind = plan[0]
    if depth > _MAX_DEPTH or kind == "whole":
        return MARKER
    if kind == "obj":
        if not isinstance(value, dict):
            return MARKER  # not the declared shape: it may be the secret sent in the wrong place
        out = dict(value)
        for name, inner in plan[1]:
            if name in out:
                out[name] = MARKER if inner is None else _redact(out[name], inner, depth + 1)
        return out
    if kind == "list":
        if not isinstance(value, list | tuple):
            return MARKER
        return [_redact(x, plan[1], depth + 1) for x in value]
    if not isinstance(value, dict):  # a map
        return MARKER
    return {k: _redact(v, plan[1], depth + 1) for k, v in value.items()}


def _collect(value: Any, plan: Plan, out: list[Any], depth: int = 0) -> None:
    """Append the secret values inside ``value`` (by ``plan``) to ``out``."""
    if value is None or len(out) >= MAX_LEAVES:
        return
    kind = plan[0]
    if depth > _MAX_DEPTH or kind == "whole":
        out.append(value)
    elif kind == "obj" and isinstance(value, dict):
        for name, inner in plan[1]:
            if name in value:
                if inner is None:
                    out.append(value[name])
                else:
                    _collect(value[name], inner, out, depth + 1)
    elif kind == "list" and isinstance(value, list | tuple):
        for x in value:
            _collect(x, plan[1], out, depth + 1)
    elif kind == "map" and isinstance(value, dict):
        for v in value.values():
            _collect(v, plan[1], out, depth + 1)
    else:
        out.append(value)  # not the declared shape: treat the whole value as secret


class SecretFields:
    """Where one tool's ``@secret`` values live in a request; built once per tool at load.

    Each of ``args``/``principal``/``context`` is the redaction plan of its
    declared type when it holds a secret, else None.
    """

    __slots__ = ("args", "principal", "context")

    def __init__(self, args: Type | None, principal: Type | None, context: Type | None) -> None:
        self.args, self.principal, self.context = (
            plan_for(t) if t is not None else None for t in (args, principal, context)
        )

    @classmethod
    def of(
        cls, args: Type | None, principal: Type | None, context: Type | None
    ) -> SecretFields | None:
        """The fields of a tool, or None when its requests cannot hold a secret."""
        keep = [t if t is not None and has_secret(t) else None for t in (args, principal, context)]
        return cls(*keep) if any(t is not None for t in keep) else None

    def values(self, args: Any, principal: Any, context: Any) -> list[Any]:
        """The secret values of one request (raw or checked; any shape)."""
        out: list[Any] = []
        for value, t in ((args, self.args), (principal, self.principal), (context, self.context)):
            if t is not None and value is not None:
                _collect(value, t, out)
        return out

    def redact(self, args: Any, principal: Any, context: Any) -> tuple[Any, Any, Any]:
        """Copies of the three inputs with every secret replaced by the marker (others unchanged)."""
        return (
            _redact(args, self.args) if self.args is not None else args,
            _redact(principal, self.principal) if self.principal is not None else principal,
            _redact(context, self.context) if self.context is not None else context,
        )

    def scrubber(self, args: Any, principal: Any, context: Any) -> Scrubber | None:
        values = self.values(args, principal, context)
        return Scrubber(values) if values else None


def forms(value: Any, out: set[str] | None = None, depth: int = 0) -> set[str]:
    """Every text form of ``value`` that a message could quote (see the module docstring)."""
    out = set() if out is None else out
    if value is None or type(value) is bool or depth > _MAX_DEPTH or len(out) > 8 * MAX_LEAVES:
        return out
    if isinstance(value, str):
        out.update(
            (
                value,
                value.replace("'", "\\'"),
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
                repr(value)[1:-1],
            )
        )
    elif isinstance(value, int):
        out.add(str(value))
        if abs(value) < 2**53:
            out.add(repr(float(value)))
    elif isinstance(value, float):
        out.update((repr(value), celops.format_value(value), f"{value:g}"))
        if value.is_integer() and abs(value) < 1e300:
            out.add(str(int(value)))
    elif isinstance(value, bytes | bytearray):
        out.update((bytes(value).decode("utf-8", "replace"), repr(bytes(value))[2:-1]))
    elif isinstance(value, list | tuple | set | frozenset):
        for x in list(value)[:MAX_LEAVES]:
            forms(x, out, depth + 1)
        out.update((celops.format_value(value), repr(value), _json(value)))
    elif isinstance(value, dict):
        for k, v in list(value.items())[:MAX_LEAVES]:
            forms(k, out, depth + 1)
            forms(v, out, depth + 1)
        out.update((celops.format_value(value), repr(value), _json(value)))
    elif isinstance(value, date | timedelta):
        out.update((celops.format_value(value), str(value)))
    else:
        out.update((celops.format_value(value), str(value)))
    out.discard("")
    return out


def _json(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError, RecursionError):
        return ""


class Scrubber:
    """Replaces this request's secret values, in any of their forms, by the marker in a text."""

    __slots__ = ("_forms",)

    def __init__(self, values: list[Any]) -> None:
        found: set[str] = set()
        for v in values:
            forms(v, found)
        found.discard(MARKER)
        # longest first, so a longer form is replaced whole before a shorter one inside it
        self._forms = sorted(found, key=lambda f: (-len(f), f))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        if not text or not self._forms:
            return text
        for form in self._forms:
            text = _replace(text, form)
        return text

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self(text)

    def decision(self, d: Decision) -> Decision:
        """Scrub every text field of ``d`` in place (shared sub-objects are copied, never mutated)."""
        reasons = d.reasons
        scrubbed = [self(r) for r in reasons]
        if scrubbed != reasons:
            d.reasons = scrubbed
        message = d.message
        if message:
            clean = self(message)
            if clean != message:
                d.message = clean
        rules = d.rules
        if any(r.reason and self(r.reason) != r.reason for r in rules):
            d.rules = [
                fast(RuleRef, **{**r.__dict__, "reason": self.optional(r.reason)}) for r in rules
            ]
        errors = d.errors
        if any(self(e.message) != e.message for e in errors):
            d.errors = [
                fast(ErrorInfo, **{**e.__dict__, "message": self(e.message)}) for e in errors
            ]
        limits = d.limits
        if any(s.key and self(s.key) != s.key for s in limits):
            d.limits = [
                fast(LimitState, **{**s.__dict__, "key": self.optional(s.key)}) for s in limits
            ]
        return d


def _replace(text: str, form: str) -> str:
    """``text`` with every quote of ``form`` (whole, or a prefix of at least SEED characters) replaced."""
    seed = form[:SEED]
    short = len(form) < SHORT
    start = 0
    while True:
        i = text.find(seed, start)
        if i < 0:
            return text
        j, n = i + len(seed), len(seed)
        while n < len(form) and j < len(text) and text[j] == form[n]:
            j, n = j + 1, n + 1
        if short and ((i > 0 and text[i - 1].isalnum()) or (j < len(text) and text[j].isalnum())):
            start = i + 1
            continue
        text = text[:i] + MARKER + text[j:]
        start = i + len(MARKER)


__all__ = ["CLEAN_CODES", "MARKER", "SecretFields", "Scrubber", "forms"]
