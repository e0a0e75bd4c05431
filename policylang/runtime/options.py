"""Checks for the options of :class:`~policylang.runtime.engine.Engine` and ``Guard``.

A wrong option must fail where it is written, not at the first decision:
``Engine(audit="log.jsonl")`` used to be accepted and then deny every call with
"audit unavailable (TypeError ...)", far from the mistake. Each check below
raises ``TypeError`` (or ``ValueError`` for a number out of range) naming the
option, what it must be and what it got. Duck typing is kept: a store, clock,
sink or session store is anything with the methods the engine calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def fail(owner: str, name: str, want: str, value: Any) -> TypeError:
    """The error for option ``name`` of ``owner``: what it must be, what it got."""
    return TypeError(f"{owner}({name}=...) must be {want}, got {_got(value)}")


def methods(owner: str, name: str, value: Any, required: tuple[str, ...], want: str) -> None:
    """``value`` is None or has every method in ``required`` (a store, a clock, a sink)."""
    if value is None:
        return
    missing = [m for m in required if not callable(getattr(value, m, None))]
    if missing:
        raise fail(
            owner, name, f"{want} (an object with {', '.join(m + '()' for m in missing)})", value
        )


def flag(owner: str, name: str, value: Any, optional: bool = False) -> None:
    """``value`` is True or False (or None when ``optional``): 0, 1 and "yes" are refused."""
    if type(value) is bool or (optional and value is None):
        return
    raise fail(owner, name, "True or False" + (" (or None)" if optional else ""), value)


def function(owner: str, name: str, value: Any, optional: bool = True) -> None:
    """``value`` is callable (or None when ``optional``)."""
    if callable(value) or (optional and value is None):
        return
    raise fail(owner, name, "a function" + (" or None" if optional else ""), value)


def positive_number(owner: str, name: str, value: Any) -> float:
    """A finite number above zero (bools refused); returned as a float."""
    if type(value) not in (int, float):
        raise fail(owner, name, "a number of seconds", value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}({name}=...) must be a finite number above zero, got {value!r}")
    return float(value)


def mapping(
    owner: str, name: str, value: Any, check: Callable[[Any, Any], bool], want: str
) -> None:
    """None or a mapping whose every (key, value) pair passes ``check``."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise fail(owner, name, want, value)
    for k, v in value.items():
        if not check(k, v):
            raise fail(owner, name, want, {k: v})


__all__ = ["fail", "flag", "function", "mapping", "methods", "positive_number"]
