"""policylang: decide allow / deny / confirm before an AI agent's tool call runs.

>>> from policylang import Engine
>>> engine = Engine.from_string('''
... policy demo version "1"
... tool payments.send { amount: number }
... allow payments.send when args.amount <= 100
... ''')
>>> engine.decide("payments.send", args={"amount": 50}).effect
<Effect.ALLOW: 'allow'>
"""

from policylang.errors import (
    Diagnostic,
    EvalError,
    PolicyCheckError,
    PolicyError,
    PolicyLoadError,
    PolicySyntaxError,
    RequestError,
    Span,
    StoreUnavailable,
)
from policylang.runtime.clock import Clock, FixedClock, SystemClock
from policylang.runtime.decision import Decision, Effect, ErrorInfo, LimitState, RuleRef
from policylang.runtime.engine import Engine, combine
from policylang.runtime.limits import LimitStore, MemoryStore

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "Decision",
    "Effect",
    "RuleRef",
    "LimitState",
    "ErrorInfo",
    "combine",
    "Clock",
    "FixedClock",
    "SystemClock",
    "LimitStore",
    "MemoryStore",
    "PolicyError",
    "PolicyLoadError",
    "PolicySyntaxError",
    "PolicyCheckError",
    "EvalError",
    "RequestError",
    "StoreUnavailable",
    "Diagnostic",
    "Span",
    "__version__",
]
