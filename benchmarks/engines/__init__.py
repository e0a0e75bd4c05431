"""Engine adapters: one small module per engine, one class per module.

Every adapter has `name`, `load(workload) -> None` and `decide(request) -> str`
("allow" / "deny" / "confirm"). Converting the request into the engine's own
input format happens inside `decide`, so it is timed with the decision.

`REGISTRY` lists them in table order. Modules are imported lazily by
`load_adapter`, so an engine whose package is missing (or, for policylang, not
finished yet) becomes a status line in the table instead of a crash.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol

from benchmarks.workload import Request, Workload


class Adapter(Protocol):
    name: str

    def load(self, workload: Workload) -> None: ...

    def decide(self, request: Request) -> str: ...


@dataclass(frozen=True, slots=True)
class EngineSpec:
    name: str  # as shown in the table
    target: str  # "module:Class"
    package: str  # the PyPI distribution that provides the engine ("" for none)
    pip_note: str = ""  # what `pip install` said here, when it could not install the package


REGISTRY: tuple[EngineSpec, ...] = (
    EngineSpec("handwritten", "benchmarks.engines.handwritten:Handwritten", ""),
    EngineSpec(
        "handwritten-checked", "benchmarks.engines.handwritten_checked:HandwrittenChecked", ""
    ),
    EngineSpec("policylang", "benchmarks.engines.policylang_engine:Policylang", "policylang"),
    EngineSpec("cel-python", "benchmarks.engines.celpy_engine:CelPython", "cel-python"),
    EngineSpec(
        "cel-rust", "benchmarks.engines.cel_rust_engine:CelRust", "common-expression-language"
    ),
    EngineSpec("cedarpy", "benchmarks.engines.cedar_engine:Cedar", "cedarpy"),
    EngineSpec("pycasbin", "benchmarks.engines.casbin_engine:Casbin", "pycasbin"),
    EngineSpec(
        "regorus",
        "benchmarks.engines.regorus_engine:Regorus",
        "regorus",
        pip_note="ERROR: Could not find a version that satisfies the requirement "
        "regorus (from versions: none)",
    ),
)


class Unavailable(Exception):
    """The engine cannot run here; the message goes into the table's status column."""


def load_adapter(spec: EngineSpec) -> Adapter:
    module_name, _, class_name = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if spec.pip_note:
            raise Unavailable(f"not installable: {spec.pip_note}") from exc
        raise Unavailable(f"unavailable: {type(exc).__name__}: {exc}") from exc
    adapter: Adapter = getattr(module, class_name)()
    return adapter


def combine(fired_deny: bool, fired_confirm: bool, fired_allow: bool) -> str:
    """policylang's combining: deny overrides, then confirm, then allow, else default deny."""
    if fired_deny:
        return "deny"
    if fired_confirm:
        return "confirm"
    if fired_allow:
        return "allow"
    return "deny"
