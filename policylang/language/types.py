"""Static types of policy values, and how declared types map onto them.

The checker infers one of these for every expression; the compiler uses them
to pick a native Python operation where CEL and Python agree on that type, and
a checked runtime helper everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Type:
    kind: str  # int double number string bytes bool null timestamp duration date list map object dyn enum
    params: tuple[Type, ...] = ()
    fields: tuple[tuple[str, FieldType], ...] = ()
    values: tuple[object, ...] = ()  # enum members

    def __str__(self) -> str:
        if self.kind == "list":
            return f"list<{self.params[0]}>"
        if self.kind == "map":
            return f"map<{self.params[0]}, {self.params[1]}>"
        if self.kind == "object":
            return (
                "{"
                + ", ".join(f"{n}: {f.type}{'?' if f.optional else ''}" for n, f in self.fields[:4])
                + (", ...}" if len(self.fields) > 4 else "}")
            )
        if self.kind == "enum":
            return " | ".join(repr(v) if isinstance(v, str) else str(v) for v in self.values)
        if self.kind == "nullable":
            return f"{self.params[0]} | null"
        return self.kind

    def field(self, name: str) -> FieldType | None:
        for n, f in self.fields:
            if n == name:
                return f
        return None

    @property
    def base(self) -> Type:
        """An enum behaves as the type of its members, ``T | null`` as T; others as themselves."""
        if self.kind == "nullable":
            return self.params[0].base
        if self.kind == "enum":
            kinds = {type(v) for v in self.values}
            if kinds <= {str}:
                return STRING
            if kinds <= {int}:
                return INT
            if kinds <= {int, float}:
                return NUMBER
            return DYN
        return self


@dataclass(frozen=True, slots=True)
class FieldType:
    type: Type
    optional: bool = False
    nullable: bool = False
    secret: bool = False
    default: object = field(default=None, compare=False)
    has_default: bool = False


INT = Type("int")
DOUBLE = Type("double")
NUMBER = Type("number")  # declared `number`: an int or a double at run time
STRING = Type("string")
BYTES = Type("bytes")
BOOL = Type("bool")
NULL = Type("null")
TIMESTAMP = Type("timestamp")
DURATION = Type("duration")
DATE = Type("date")
DYN = Type("dyn")


def list_of(t: Type) -> Type:
    return Type("list", (t,))


def map_of(k: Type, v: Type) -> Type:
    return Type("map", (k, v))


DYN_MAP = map_of(STRING, DYN)
DYN_LIST = list_of(DYN)

SCALARS = {
    "int": INT,
    "double": DOUBLE,
    "float": DOUBLE,
    "number": NUMBER,
    "string": STRING,
    "bytes": BYTES,
    "bool": BOOL,
    "timestamp": TIMESTAMP,
    "datetime": TIMESTAMP,
    "duration": DURATION,
    "date": DATE,
    "dyn": DYN,
    "any": DYN,
}
NUMERIC = {"int", "double", "number"}


def is_numeric(t: Type) -> bool:
    return t.base.kind in NUMERIC


def is_dyn(t: Type) -> bool:
    return t.kind == "dyn"


def comparable(a: Type, b: Type) -> bool:
    """May values of these types be compared with ``==`` without being a mistake?"""
    a, b = a.base, b.base
    if is_dyn(a) or is_dyn(b) or a.kind == "null" or b.kind == "null":
        return True
    if is_numeric(a) and is_numeric(b):
        return True
    if a.kind in ("map", "object") and b.kind in ("map", "object"):
        return True
    if a.kind == "list" and b.kind == "list":
        return comparable(a.params[0], b.params[0])
    return a.kind == b.kind


def orderable(a: Type, b: Type) -> bool:
    """May these types be ordered with ``<``?"""
    a, b = a.base, b.base
    if is_dyn(a) or is_dyn(b):
        return True
    if is_numeric(a) and is_numeric(b):
        return True
    return a.kind == b.kind and a.kind in (
        "string",
        "bytes",
        "bool",
        "timestamp",
        "duration",
        "date",
    )


def same_family(a: Type, b: Type) -> bool:
    """Python's native ==/< agrees with CEL for these statically known types."""
    a, b = a.base, b.base
    if is_numeric(a) and is_numeric(b):
        return True
    return a.kind == b.kind and a.kind in (
        "string",
        "bytes",
        "timestamp",
        "duration",
        "date",
        "bool",
    )


def element_type(t: Type) -> Type:
    if t.kind == "list":
        return t.params[0]
    if t.kind == "map":
        return t.params[0]
    return DYN


def join(a: Type, b: Type) -> Type:
    """The least common type (for list literals and the two arms of ?:)."""
    if a == b:
        return a
    if a.kind == "null":
        return b
    if b.kind == "null":
        return a
    if is_numeric(a) and is_numeric(b):
        return NUMBER if a.base != b.base else a.base
    if a.base == b.base:
        return a.base
    return DYN


def type_of_value(value: object, depth: int = 0) -> Type:
    """Infer a static type for data loaded from YAML/JSON (homogeneous where possible)."""
    from datetime import date, datetime, timedelta

    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, str):
        return STRING
    if isinstance(value, bytes):
        return BYTES
    if isinstance(value, datetime):
        return TIMESTAMP
    if isinstance(value, date):
        return DATE
    if isinstance(value, timedelta):
        return DURATION
    if depth > 6:
        return DYN
    if isinstance(value, list | tuple):
        elem: Type | None = None
        for item in value[:1000]:
            t = type_of_value(item, depth + 1)
            elem = t if elem is None else join(elem, t)
            if elem == DYN:
                break
        return list_of(elem or DYN)
    if isinstance(value, dict):
        if value and all(isinstance(k, str) for k in value) and len(value) <= 64 and depth < 3:
            return Type(
                "object",
                fields=tuple((k, FieldType(type_of_value(v, depth + 1))) for k, v in value.items()),
            )
        vals: Type | None = None
        for v in list(value.values())[:1000]:
            t = type_of_value(v, depth + 1)
            vals = t if vals is None else join(vals, t)
        return map_of(STRING if all(isinstance(k, str) for k in value) else DYN, vals or DYN)
    return DYN
