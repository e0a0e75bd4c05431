"""The Decision: what the engine answers, why, and a line to hand back to the model.

A pydantic model so it serialises to JSON for the audit log, the HTTP server
and the CLI. The engine builds it with ``model_construct`` (no re-validation
on the hot path: every field is produced by our own code).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, Field

M = TypeVar("M", bound=BaseModel)


def fast(cls: type[M], **values: object) -> M:
    """Build a model from values our own code produced, skipping validation.

    ``model_construct`` does the same but costs several microseconds per call,
    which is most of a decision; the values here are always well-formed.
    """
    obj = cls.__new__(cls)
    data = dict(_DEFAULTS[cls])
    data.update(values)
    object.__setattr__(obj, "__dict__", data)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


_DEFAULTS: dict[type, dict[str, object]] = {}


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    CONFIRM = "confirm"


class RuleRef(BaseModel):
    """A rule that took part in the decision, with where it is written."""

    id: str
    name: str | None = None
    effect: Effect
    location: str
    reason: str | None = None


class LimitState(BaseModel):
    id: str
    key: str | None = None
    used: float
    limit: float
    window_seconds: float
    cost: float = 1
    exceeded: bool = False
    location: str = ""

    @property
    def remaining(self) -> float:
        return max(self.limit - self.used, 0)


class ErrorInfo(BaseModel):
    """An error met while deciding; ``rule`` is None for errors outside any rule."""

    rule: str | None = None
    location: str | None = None
    message: str


class Decision(BaseModel):
    effect: Effect
    tool: str
    code: str = Field(description="why, as a stable word: allowed, denied, confirm, default_deny, "
                      "default_allow, rate_limited, invalid_request, unknown_tool, "
                      "evaluation_error, store_unavailable, no_policy, internal_error")
    reasons: list[str] = Field(default_factory=list)
    rules: list[RuleRef] = Field(default_factory=list)
    limits: list[LimitState] = Field(default_factory=list)
    errors: list[ErrorInfo] = Field(default_factory=list)
    message: str = ""
    decision_id: str = ""
    policy: str = ""
    policy_version: str | None = None
    policy_hash: str = ""
    at: datetime | None = None
    elapsed_us: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    @property
    def denied(self) -> bool:
        return self.effect is Effect.DENY

    @property
    def needs_confirmation(self) -> bool:
        return self.effect is Effect.CONFIRM

    @property
    def rule_names(self) -> list[str]:
        return [r.id for r in self.rules]

    def __str__(self) -> str:
        return self.message or f"{self.effect.value} {self.tool}"


for _model in (RuleRef, LimitState, ErrorInfo, Decision):
    _DEFAULTS[_model] = {name: (f.default_factory() if f.default_factory is not None  # type: ignore[call-arg]
                                else f.default)
                         for name, f in _model.model_fields.items() if not f.is_required()}
