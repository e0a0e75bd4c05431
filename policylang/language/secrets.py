"""Static secret taint: which expressions of a policy read a ``@secret`` value.

The rule, decided once: any value derived from a ``@secret`` field — the
field itself, anything containing it (``args`` as a whole, an object or list
holding a secret field), or any function of it (``args.card.size()``,
``args.card == x ? "a" : "b"``, a ``def`` that reads it, a comprehension over
it) — is *secret*, and renders as :data:`MARKER` wherever it would be shown.

The analysis runs at load time on the checked policy (predicates are already
inlined there), per tool, because a field may be secret in one tool and not in
another that the same rule names. It is deliberately conservative: an
expression is secret as soon as one of its sub-expressions reads a secret
path, so it can over-redact (``{has(args.card) ? 'yes' : 'no'}``) but never
under-redact. ``session.calls`` is not secret: the engine stores remembered
calls with their secret arguments already replaced by the marker. ``session``
is secret when the session key itself reads a secret.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from policylang.language import ast
from policylang.language.types import DYN, Type

MARKER = "[redacted]"  # what a secret value is shown as, everywhere (audit records included)
# What an error in an expression that reads a secret says instead of its own text (which could
# quote a value computed from the secret, beyond what scrubbing by value can recognise).
WITHHELD = "an expression that reads a @secret value failed (its error text is withheld)"

_ROOTS = ("args", "principal", "context")


@lru_cache(maxsize=4096)
def has_secret(t: Type) -> bool:
    """Does a value of this type hold a ``@secret`` field anywhere inside it?"""
    if t.kind == "object":
        return any(f.secret or has_secret(f.type) for _, f in t.fields)
    return any(has_secret(p) for p in t.params)


@dataclass(frozen=True, slots=True)
class SecretScope:
    """The declared shapes one tool's expressions read, and whether the session key is secret.

    A root is ``None`` when it holds no secret (undeclared, or declared without
    ``@secret`` fields): reads of it are never secret.
    """

    args: Type | None = None
    principal: Type | None = None
    context: Type | None = None
    session: bool = False  # the session key reads a secret: session.id (and session) is secret

    @property
    def active(self) -> bool:
        return self.args is not None or self.principal is not None or self.context is not None

    def root(self, name: str) -> Type | None:
        return (
            self.args
            if name == "args"
            else self.principal
            if name == "principal"
            else self.context
            if name == "context"
            else None
        )


def _keep(t: Type | None) -> Type | None:
    return t if t is not None and has_secret(t) else None


def secret_scope(policy: object, tool: str | None) -> SecretScope:
    """The secret scope of one tool of a checked policy (``tool=None``: an undeclared tool)."""
    tools = getattr(policy, "tools", {})
    info = tools.get(tool) if tool is not None else None
    scope = SecretScope(
        _keep(info.args) if info is not None else None,
        _keep(getattr(policy, "principal", None)),
        _keep(getattr(policy, "context", None)),
    )
    session = getattr(policy, "session", None)
    if session is not None and scope.active and reads_secret(session.key, scope):
        scope = dataclasses.replace(scope, session=True)
    return scope


Env = dict[str, Type | None]  # comprehension variables in scope: the type of what each is bound to
_NO_VARS: Env = {}


def _path(node: ast.Expr, scope: SecretScope, env: Env) -> tuple[Type, bool] | None:
    """``node`` as a read of request data: (its declared type, whether it is inside a secret).

    None when ``node`` is not a plain ``root.a["b"].c`` path into a root holding a secret (or
    into a comprehension variable bound to part of one).
    """
    if isinstance(node, ast.Ident):
        t = env[node.name] if node.name in env else scope.root(node.name)
        return (t, False) if t is not None else None
    if isinstance(node, ast.Select | ast.Has):
        key: str | None = node.field
        operand = node.operand
    elif isinstance(node, ast.Index):
        idx = node.index
        key = idx.value if isinstance(idx, ast.Literal_) and isinstance(idx.value, str) else None
        operand = node.operand
        if key is None and not isinstance(idx, ast.Literal_) and reads_secret(idx, scope, env):
            return DYN, True  # a secret used as a key: what it selects is derived from it
    else:
        return None
    inner = _path(operand, scope, env)
    if inner is None:
        return None
    t, secret = inner
    if secret:
        return t, True
    t = t.base
    if t.kind == "object":
        if key is None:  # args[k] with k computed: it may be any field, the secret ones too
            return t, has_secret(t)
        f = t.field(key)
        if f is None:
            return DYN, False
        return f.type, f.secret
    if t.kind == "map" and len(t.params) == 2:
        return t.params[1], False
    if t.kind == "list" and t.params and isinstance(node, ast.Index):
        return t.params[0], False
    return DYN, False


def _element(t: Type) -> Type:
    """What a comprehension variable over a value of type ``t`` is bound to (map: its keys)."""
    t = t.base
    if t.kind in ("list", "map") and t.params:
        return t.params[0]
    return DYN


def reads_secret(expr: ast.Expr, scope: SecretScope, env: Env = _NO_VARS) -> bool:
    """Is the value of ``expr`` derived from a ``@secret`` value in this scope?

    A comprehension over a value that holds secrets is secret when its body
    (or condition) reads one through the variable, or when it returns the
    elements themselves (``filter``): ``args.owners.map(o, o.name)`` is not
    secret, ``args.owners.map(o, o.ssn)`` is.
    """
    if not scope.active and not scope.session:
        return False
    stack: list[tuple[ast.Expr, Env]] = [(expr, env)]
    while stack:
        node, vars_ = stack.pop()
        if (
            scope.session
            and isinstance(node, ast.Ident)
            and node.name == "session"
            and "session" not in vars_
        ):
            return True
        if isinstance(node, ast.Comprehension):
            target = _path(node.target, scope, vars_) if scope.active else None
            inner: Env
            if target is None:  # not a path: the target is read as an expression of its own
                stack.append((node.target, vars_))
                inner = {**vars_, node.var: None}
            else:
                t, secret = target
                if secret or (node.kind == "filter" and has_secret(t)):
                    return True
                inner = {**vars_, node.var: _element(t)}
            stack.extend((x, inner) for x in (node.body, node.condition) if x is not None)
            continue
        path = _path(node, scope, vars_) if scope.active or vars_ else None
        if path is not None:
            t, secret = path
            if secret or has_secret(t):
                return True
            if isinstance(node, ast.Index):  # the key is computed by an expression of its own
                stack.append((node.index, vars_))
            continue
        stack.extend((c, vars_) for c in ast.children(node))
    return False


def redact_message(message: ast.Message, scope: SecretScope) -> ast.Message:
    """``message`` with every ``{part}`` that reads a secret replaced by the marker text.

    The replaced parts are never evaluated, so neither their values nor their
    errors can reach a decision.
    """
    if message.is_plain or not (scope.active or scope.session):
        return message
    parts = tuple(
        MARKER if not isinstance(p, str) and reads_secret(p, scope) else p for p in message.parts
    )
    if parts == message.parts:
        return message
    merged: list[str | ast.Expr] = []  # adjacent texts as one part: a plain message has exactly one
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        else:
            merged.append(p)
    return dataclasses.replace(message, parts=tuple(merged))


def secret_parts(message: ast.Message, scope: SecretScope) -> list[ast.Expr]:
    """The ``{parts}`` of a because template that read a secret (for the PL213 lint)."""
    return [p for p in message.parts if not isinstance(p, str) and reads_secret(p, scope)]


__all__ = [
    "MARKER",
    "WITHHELD",
    "SecretScope",
    "has_secret",
    "reads_secret",
    "redact_message",
    "secret_parts",
    "secret_scope",
]
