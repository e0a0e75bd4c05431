"""Shared setup for the tests/security/test_links_*.py files: the shipped policies and engine pairs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from policylang import Engine, FixedClock

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 11, 10, 0, tzinfo=UTC)
AGENTS = Engine.from_path(ROOT / "rules" / "agents")  # has sessions: the ordinary path only
COMPANY = Engine.from_path(ROOT / "rules")  # no sessions: decided on the fused path
PROPERTY = settings(deadline=None, suppress_health_check=list(HealthCheck))


def fresh(engine: Engine) -> Engine:
    """An engine with its own clock, rate-limit store and session history over the same policy."""
    return Engine(engine.compiled, clock=FixedClock(NOW))


def fused_and_ordinary(engine: Engine, tool: str) -> tuple[Engine, Engine]:
    """Two engines over one policy: the first decides ``tool`` on the fused path, the second never does."""
    fused, ordinary = fresh(engine), fresh(engine)
    assert fused._prepared is not None and ordinary._prepared is not None
    assert tool in fused._prepared.fused, f"{tool} lost its fused path"
    ordinary._prepared.fused.clear()
    assert fused._prepared.fused, "clearing one engine's fused table cleared the other's"
    return fused, ordinary


def assert_same_decision(d1: Any, d2: Any) -> None:
    """Equal decisions, apart from the id and the time taken."""
    a, b = d1.model_dump(mode="json"), d2.model_dump(mode="json")
    for key in ("decision_id", "elapsed_us"):
        a.pop(key)
        b.pop(key)
    assert a == b
