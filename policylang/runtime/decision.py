"""The Decision: what the engine answers, why, and a line to hand back to the model.

A plain slotted class, not a pydantic model: building one is most of the cost
of a decision, and a slotted object costs a fraction of a model. It keeps the
pydantic surface users rely on (``model_dump``, ``model_dump_json``,
``model_validate``, ``model_fields``, use as a field of other models) through
:class:`DecisionModel`, which states the schema once. Two fields are filled in
lazily from what the engine recorded: ``at`` (a clock reading turned into a
datetime in the policy's zone on first read) and ``decision_id`` (a counter
turned into text on first read); both read the same as eager values.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar, overload

from pydantic import BaseModel, Field, GetCoreSchemaHandler
from pydantic_core import core_schema

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def fast(cls: type[M], **values: object) -> M:
    """Build a model from values our own code produced, skipping validation.

    ``model_construct`` does the same but costs several microseconds per call;
    the values here are always well-formed.
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


class DecisionModel(BaseModel):
    """The schema of a Decision: what its JSON holds and how input is validated."""

    effect: Effect
    tool: str
    code: str = Field(
        description="why, as a stable word: allowed, denied, confirm, default_deny, "
        "default_allow, rate_limited, invalid_request, unknown_tool, "
        "evaluation_error, store_unavailable, no_policy, internal_error"
    )
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


FIELDS: tuple[str, ...] = tuple(DecisionModel.model_fields)


class Origin:
    """What every decision of one loaded policy shares: its name, version, hash, zone and id prefix."""

    __slots__ = ("policy", "policy_version", "policy_hash", "id_prefix", "zone")

    def __init__(
        self,
        policy: str = "",
        policy_version: str | None = None,
        policy_hash: str = "",
        id_prefix: str = "",
        zone: tzinfo | None = None,
    ) -> None:
        self.policy, self.policy_version, self.policy_hash = policy, policy_version, policy_hash
        self.id_prefix, self.zone = id_prefix, zone

    def replace(self, **values: Any) -> Origin:
        fields = {name: getattr(self, name) for name in self.__slots__}
        return Origin(**{**fields, **values})


class _Shared(Generic[T]):
    """A list field kept as a shared tuple until someone reads it (then a list of its own).

    ``None`` in the slot means "not copied yet": the tuple is item ``index`` of
    the decision's ``_out`` (the fused path's outcome, shared by every decision
    with the same outcome, so building one touches a single object).
    """

    def __init__(self, slot: str, index: int = -1) -> None:
        self.slot, self.index = slot, index

    @overload
    def __get__(self, obj: None, owner: Any = None) -> _Shared[T]: ...
    @overload
    def __get__(self, obj: Decision, owner: Any = None) -> list[T]: ...

    def __get__(self, obj: Decision | None, owner: Any = None) -> list[T] | _Shared[T]:
        if obj is None:
            return self
        v = getattr(obj, self.slot)
        if v is None:
            v = obj._out[self.index]  # type: ignore[index]
        if type(v) is tuple:
            v = list(v)
            setattr(obj, self.slot, v)
        return v

    def __set__(self, obj: Decision, value: list[T]) -> None:
        setattr(obj, self.slot, value)


class _Message:
    """The message: on the fused path, the tool's name plus a text shared by every tool."""

    def __get__(self, obj: Decision | None, owner: Any = None) -> Any:
        if obj is None:
            return self
        v = obj._message
        if v is None:
            v = obj._message = obj.tool + obj._out[2]  # type: ignore[index]
        return v

    def __set__(self, obj: Decision, value: str) -> None:
        obj._message = value


class _FromOrigin:
    """A field every decision of one policy shares, read from its :class:`Origin`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: Decision | None, owner: Any = None) -> Any:
        return self if obj is None else getattr(obj._origin, self.name)

    def __set__(self, obj: Decision, value: Any) -> None:
        obj._origin = obj._origin.replace(**{self.name: value})


class Decision:
    """One decision: effect, the stable ``code``, reasons, the rules that decided it, and more.

    Construct with keyword arguments (validated like a pydantic model). The
    engine builds its own without validation, sharing what decisions have in
    common: list fields start as shared tuples and become lists of their own
    when read, the message is composed when read, and the policy's name,
    version and hash come from one :class:`Origin`. So a decision touches few
    objects per call, which keeps 1,000 tools as fast as 10.
    """

    # _receipt (set only when limits were checked or booked; read with getattr): what this
    # decision did in the rate-limit store, so commit and refund settle it at most once
    # _args / _sid: the arguments the engine decided on (validated, defaults filled in, converted)
    # and the session id it used; never part of the dump, read by guards to run exactly that call.
    __slots__ = (
        "effect",
        "tool",
        "code",
        "_message",
        "elapsed_us",
        "_reasons",
        "_rules",
        "_limits",
        "_errors",
        "_id",
        "_at",
        "_origin",
        "_out",
        "_receipt",
        "_args",
        "_sid",
    )

    model_fields: ClassVar[dict[str, Any]] = DecisionModel.model_fields

    effect: Effect
    tool: str
    code: str
    elapsed_us: float
    _id: str | int
    _at: datetime | float | None
    _origin: Origin
    _receipt: Any  # a policylang.runtime.limits.Receipt

    def __init__(self, **values: Any) -> None:
        self._fill(DecisionModel(**values))

    def _fill(self, m: DecisionModel) -> None:
        self.effect, self.tool, self.code, self._message = m.effect, m.tool, m.code, m.message
        self._reasons, self._rules, self._limits, self._errors = (
            m.reasons,
            m.rules,
            m.limits,
            m.errors,
        )
        self._out = None
        self.elapsed_us, self._id, self._at = m.elapsed_us, m.decision_id, m.at
        self._origin = Origin(m.policy, m.policy_version, m.policy_hash)
        self._args = self._sid = None

    @classmethod
    def _raw(
        cls,
        effect: Effect,
        tool: str,
        code: str,
        reasons: list[str],
        rules: list[RuleRef],
        limits: list[LimitState],
        errors: list[ErrorInfo],
        message: str,
        origin: Origin,
        at: datetime | None,
    ) -> Decision:
        """A decision from values our own code produced: no validation."""
        d = _new(cls)
        d.effect, d.tool, d.code, d._message, d.elapsed_us = effect, tool, code, message, 0.0
        d._reasons, d._rules, d._limits, d._errors = reasons, rules, limits, errors
        d._id, d._at, d._origin, d._out = "", at, origin, None
        d._args = d._sid = None
        return d

    _reasons: list[str] | tuple[str, ...] | None
    _rules: list[RuleRef] | tuple[RuleRef, ...] | None
    _limits: list[LimitState] | tuple[LimitState, ...]
    _errors: list[ErrorInfo] | tuple[ErrorInfo, ...]
    _message: str | None
    _out: (
        tuple[tuple[str, ...], tuple[RuleRef, ...], str] | None
    )  # reasons, rules, message after the tool
    _args: dict[str, Any] | None
    _sid: str | None
    reasons = _Shared[str]("_reasons", 0)
    rules = _Shared[RuleRef]("_rules", 1)
    message = _Message()
    limits = _Shared[LimitState]("_limits")
    errors = _Shared[ErrorInfo]("_errors")
    policy = _FromOrigin("policy")
    policy_version = _FromOrigin("policy_version")
    policy_hash = _FromOrigin("policy_hash")

    # ---- the two lazy fields

    @property
    def decision_id(self) -> str:
        v = self._id
        if type(v) is int:
            v = self._id = f"{self._origin.id_prefix}-{v:x}"
        return v  # type: ignore[return-value]

    @decision_id.setter
    def decision_id(self, value: str) -> None:
        self._id = value

    @property
    def at(self) -> datetime | None:
        v = self._at
        if type(v) is float:
            v = self._at = datetime.fromtimestamp(v, self._origin.zone)
        return v  # type: ignore[return-value]

    @at.setter
    def at(self, value: datetime | None) -> None:
        self._at = value

    # ---- reading it

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

    def __repr__(self) -> str:
        return "Decision(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in FIELDS) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a pydantic model

    # ---- the pydantic surface

    def as_model(self) -> DecisionModel:
        """This decision as its pydantic model (for serialising and schemas)."""
        return DecisionModel.model_construct(**{name: getattr(self, name) for name in FIELDS})

    def model_dump(self, **options: Any) -> dict[str, Any]:
        return self.as_model().model_dump(**options)

    def model_dump_json(self, **options: Any) -> str:
        return self.as_model().model_dump_json(**options)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Decision:
        copied = self.as_model().model_copy(update=update, deep=deep)
        d = _new(Decision)
        d._fill(copied)
        return d

    @classmethod
    def model_validate(cls, obj: Any) -> Decision:
        if isinstance(obj, Decision):
            obj = obj.as_model()
        d = _new(cls)
        d._fill(DecisionModel.model_validate(obj))
        return d

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Decision:
        d = _new(cls)
        d._fill(DecisionModel.model_validate_json(data))
        return d

    @classmethod
    def model_construct(cls, **values: Any) -> Decision:
        d = _new(cls)
        d._fill(DecisionModel.model_construct(**values))
        return d

    @classmethod
    def model_json_schema(cls, **options: Any) -> dict[str, Any]:
        return DecisionModel.model_json_schema(**options)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> Any:
        """Lets a Decision be a field of a pydantic model or a FastAPI response."""
        return core_schema.no_info_plain_validator_function(
            cls.model_validate,
            json_schema_input_schema=handler(DecisionModel),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda d, info: d.model_dump(mode=info.mode), info_arg=True
            ),
        )


_new = object.__new__

for _model in (RuleRef, LimitState, ErrorInfo):
    _DEFAULTS[_model] = {
        name: (
            f.default_factory()  # type: ignore[call-arg]
            if f.default_factory is not None
            else f.default
        )
        for name, f in _model.model_fields.items()
        if not f.is_required()
    }
