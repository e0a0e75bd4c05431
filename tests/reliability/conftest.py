"""Shared pieces of the reliability suite: size scaling, measured figures, a real redis-server.

* ``POLICYLANG_THOROUGH=1`` switches every test to its thorough size (see ``scale``).
* ``POLICYLANG_FIGURES=/path/figures.jsonl``: tests append what they measured there
  (``figure`` fixture); ``benchmarks/reliability_report.py`` turns it into a table.
* ``redis_server``: a real ``redis-server`` on a free loopback port (shared with
  tests/conftest.py), skipped only when the binary or client is absent.
"""

from __future__ import annotations

import pytest
from reliability_support import REPO, THOROUGH, record_figure, scale  # noqa: F401


@pytest.fixture
def figure(request):
    def rec(name: str, value: float | int | str, unit: str = "") -> None:
        record_figure(name, value, unit, request.node.nodeid)

    return rec


# ---------------------------------------------------------------- a real redis-server
# RedisServer and the per-test ``redis_server`` fixture are shared (tests/redis_support.py,
# tests/conftest.py); the reliability suite adds one server per module.

from redis_support import RedisServer, free_port, running_redis  # noqa: E402,F401


@pytest.fixture(scope="module")
def redis_module_server():
    """One server for a whole module (Hypothesis tests reuse it with fresh key prefixes)."""
    with running_redis() as server:
        yield server
