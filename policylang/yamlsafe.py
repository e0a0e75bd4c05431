"""YAML and JSON from files policylang does not control: one bounded reader, one meaning.

Every YAML document the project reads (data files, ``*.cases.yaml``, requests
given to ``policylang eval``, tool definitions for ``import-tools``) goes
through :func:`load_yaml`, and every JSON document through :func:`load_json`.
Why one module: PyYAML's ``safe_load`` is YAML 1.1 and unbounded, and each
reader used to pick its own meaning.

Bounds (an alias bomb of a few hundred bytes used to take half a minute):

* aliases may repeat at most :data:`MAX_ALIAS_NODES` nodes in all (the
  document with every alias spelled out is at most that much bigger than as
  written), and an alias may not refer to a node that contains it;
* collections nest at most :data:`MAX_DEPTH` levels;
* a key appears once per map (YAML 1.1 silently kept the last one);
* tags other than the JSON-like ones (``!!set``, ``!!omap``, ``!!python/...``,
  custom tags) are refused.

Meaning (the YAML 1.1 traps: ``NO``/``off``/``Yes`` as booleans, ``0644`` as
octal, ``1:20:30`` as base 60, ``2001-01-01`` as a date):

* ``schema="data"`` (data files): a plain scalar is always a string; only an
  explicit tag types a value (``!!int 5``, ``!!bool true``, ``!!float 1.5``,
  ``!!null ""``, ``!!timestamp 2025-12-24``). An empty value is null.
* ``schema="core"`` (cases, requests, tool definitions): the YAML 1.2 core
  schema: ``true``/``false``, ``null``/``~``/empty, decimal, ``0o`` and ``0x``
  integers, and floats (with ``.inf`` and ``.nan``); everything else, dates
  and times included, is a string.

Every error is a :class:`StructuredTextError` with a line, a column and a
message that never quotes the document's text (so a file outside the policy
folder cannot leak through an error), and :func:`dump_yaml` writes YAML that
both YAML 1.1 and this reader read back as the same values.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal, cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

Schema = Literal["data", "core"]

MAX_ALIAS_NODES = 100_000  # nodes all aliases together may repeat
MAX_DEPTH = 100  # nesting of sequences and maps

_TAG = "tag:yaml.org,2002:"
_NULL_RE = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class StructuredTextError(ValueError):
    """A YAML/JSON document that cannot be read; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int = 1, column: int = 1):
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column


def _fail(message: str, mark: Any) -> StructuredTextError:
    return (
        StructuredTextError(message, mark.line + 1, mark.column + 1)
        if mark is not None
        else StructuredTextError(message)
    )


class _BoundedComposer(Composer):
    """The composer, counting what aliases repeat and how deep collections nest."""

    def compose_document(self) -> Any:
        self._depth = 0
        self._alias_nodes = 0
        self._open: set[str] = set()  # anchors of the collections being composed
        self._sizes: dict[int, int] = {}  # id(node) -> nodes in it, aliases spelled out
        return super().compose_document()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        parser: Any = self  # the Parser half of the loader this composer is mixed into
        event = parser.peek_event()
        if parser.check_event(AliasEvent):
            if event.anchor in self._open:
                raise _fail(
                    f"the alias *{event.anchor} refers to a node that contains it", event.start_mark
                )
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._alias_nodes += self._sizes.get(id(target), 1)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise _fail(
                        f"aliases repeat more than {MAX_ALIAS_NODES:,} nodes "
                        "(an alias bomb?); write the values out or share less",
                        event.start_mark,
                    )
            return cast(Node, super().compose_node(parent, index))
        opens = not isinstance(event, ScalarEvent)  # a list or a map: one level deeper
        self._depth += opens
        if self._depth > MAX_DEPTH:
            raise _fail(f"lists and maps nest more than {MAX_DEPTH} levels deep", event.start_mark)
        anchor = event.anchor
        if anchor is not None:
            self._open.add(anchor)
        node = cast(Node, super().compose_node(parent, index))
        if anchor is not None:
            self._open.discard(anchor)
        self._depth -= opens
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._sizes.get(id(item), 1) for item in node.value)
        elif isinstance(node, MappingNode):
            size += sum(
                self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
            )
        self._sizes[id(node)] = size
        return node


class _Constructor(SafeConstructor):
    """JSON-like values only, YAML 1.2 spellings for explicit tags, each key once per map."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:
                    raise _fail(
                        "a map key cannot be a list or a map", key_node.start_mark
                    ) from None
                if first is not None:
                    raise _fail(
                        f"the key {_show(key)} appears twice in this map "
                        f"(first on line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_yaml_null(self, node: Any) -> None:
        if not _NULL_RE.match(self.construct_scalar(node)):
            raise _fail("!!null takes null, ~ or nothing", node.start_mark)
        return None

    def construct_yaml_bool(self, node: Any) -> bool:
        text = self.construct_scalar(node)
        if not _BOOL_RE.match(text):
            raise _fail(
                "!!bool takes true or false (YAML 1.2: yes/no/on/off are strings)", node.start_mark
            )
        return text.lower() == "true"

    def construct_yaml_int(self, node: Any) -> int:
        text = self.construct_scalar(node)
        if not _INT_RE.match(text):
            raise _fail(
                "!!int takes a decimal, 0o octal or 0x hexadecimal integer", node.start_mark
            )
        try:
            if text.startswith(("0o", "0x")):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text, 10)
        except ValueError:  # Python refuses to convert more than 4,300 digits
            raise _fail(
                f"the integer has too many digits ({len(text):,})", node.start_mark
            ) from None

    def construct_yaml_float(self, node: Any) -> float:
        text = self.construct_scalar(node)
        if _INT_RE.match(text) and not text.startswith(("0o", "0x")):
            return float(text)  # "5" -> 5.0; huge ones become inf, as floats do
        if not _FLOAT_RE.match(text):
            raise _fail("!!float takes a number such as 1.5, 1e3, .inf or .nan", node.start_mark)
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text)

    def construct_yaml_timestamp(self, node: Any) -> Any:
        if not self.timestamp_regexp.match(self.construct_scalar(node)):
            raise _fail("!!timestamp takes a date (2025-12-24) or a date and time", node.start_mark)
        return super().construct_yaml_timestamp(node)

    def construct_unsupported(self, node: Any) -> Any:
        raise _fail(
            f"the tag {node.tag.replace(_TAG, '!!')} is not supported; "
            "use a list, a map or a plain value",
            node.start_mark,
        )


def add_constructor(cls: type[SafeConstructor], tag: str | None, constructor: Any) -> None:
    """``cls.add_constructor``, for the loader classes here (the stubs only know PyYAML's)."""
    cast(Any, cls).add_constructor(tag, constructor)


for _name in ("null", "bool", "int", "float", "timestamp"):
    add_constructor(_Constructor, _TAG + _name, getattr(_Constructor, f"construct_yaml_{_name}"))
for _name in ("set", "omap", "pairs", "merge", "value", "yaml"):
    add_constructor(_Constructor, _TAG + _name, _Constructor.construct_unsupported)
add_constructor(_Constructor, None, _Constructor.construct_unsupported)


class DataLoader(Reader, Scanner, Parser, _BoundedComposer, _Constructor, BaseResolver):
    """Data files: plain scalars are strings, an empty value is null; tags type values."""

    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _Constructor.__init__(self)
        BaseResolver.__init__(self)


class CoreLoader(DataLoader):
    """The YAML 1.2 core schema: cases, requests and tool definitions."""


DataLoader.add_implicit_resolver(_TAG + "null", re.compile(r"^$"), [""])
_CORE_RESOLVERS = [
    ("null", _NULL_RE, ["~", "n", "N", ""]),
    ("bool", _BOOL_RE, list("tTfF")),
    ("int", _INT_RE, list("-+0123456789")),
    ("float", _FLOAT_RE, list("-+.0123456789")),
]
for _name, _regexp, _first in _CORE_RESOLVERS:
    CoreLoader.add_implicit_resolver(_TAG + _name, _regexp, _first)


class Dumper(yaml.SafeDumper):
    """Quotes every string that YAML 1.1 *or* the 1.2 core schema would read as another type."""


for _name, _regexp, _first in _CORE_RESOLVERS:
    Dumper.add_implicit_resolver(_TAG + _name, _regexp, _first)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_yaml(text: str, schema: Schema = "core", loader: type[DataLoader] | None = None) -> Any:
    """One YAML document as Python values; a :class:`StructuredTextError` on any problem.

    ``loader`` is a subclass of :class:`DataLoader` or :class:`CoreLoader` that
    adds constructors (the cases reader records line numbers this way).
    """
    cls = loader or (DataLoader if schema == "data" else CoreLoader)
    instance: DataLoader | None = None
    try:
        instance = cls(text)  # the reader refuses control characters here
        return instance.get_single_data()
    except StructuredTextError:
        raise
    except yaml.MarkedYAMLError as exc:  # never str(exc): it quotes the offending line
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            message = f"{exc.context}, {exc.problem}"
        raise _fail(message, exc.problem_mark) from None
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise StructuredTextError(
            f"the character #x{exc.character:04x} is not allowed in YAML", line, column
        ) from None
    except yaml.YAMLError as exc:
        raise StructuredTextError(type(exc).__name__) from None
    except (ValueError, TypeError, OverflowError) as exc:  # a constructor's own complaint
        raise StructuredTextError(f"cannot read a value: {type(exc).__name__}") from None
    except RecursionError:
        raise StructuredTextError(
            f"lists and maps nest more than {MAX_DEPTH} levels deep"
        ) from None
    finally:
        if instance is not None:
            instance.dispose()


def _no_constant(name: str) -> Any:
    raise StructuredTextError(f"{name} is not JSON (write a number, or a string in quotes)")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StructuredTextError(f"the key {_show(key)} appears twice in one object")
        out[key] = value
    return out


def load_json(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, each key once per object; a :class:`StructuredTextError`."""
    try:
        return json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise StructuredTextError(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise StructuredTextError("arrays and objects nest too deeply") from None


def dump_yaml(value: Any, **options: Any) -> str:
    """YAML that reads back (as YAML 1.1 and with :func:`load_yaml`) as the same values."""
    text: str = yaml.dump(value, Dumper=Dumper, **options)
    return text


__all__ = [
    "StructuredTextError",
    "DataLoader",
    "CoreLoader",
    "Dumper",
    "load_yaml",
    "load_json",
    "dump_yaml",
    "add_constructor",
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
]
