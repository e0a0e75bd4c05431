"""policylang: the engine under test, fed the generated text from `workload.policylang_text`.

`policylang` is imported when this module is, i.e. lazily by the registry, so
an engine that does not import yet shows as "unavailable: ..." in the table.
Decide passes the request as it comes (timestamps as ISO strings): turning it
into typed values is the engine's own work and is timed with the decision.
"""

from __future__ import annotations

from typing import Any

from benchmarks.workload import Request, Workload
from policylang import Engine


class Policylang:
    name = "policylang"

    def __init__(self) -> None:
        self._engine: Any = None

    def load(self, workload: Workload) -> None:
        self._engine = Engine.from_string(workload.policylang_text(), data=dict(workload.data))

    def decide(self, request: Request) -> str:
        effect: str = self._engine.decide(
            request.tool, args=request.args, principal=request.principal, context=request.context
        ).effect
        return effect  # an Effect, a str enum: equal to "allow" / "deny" / "confirm"
