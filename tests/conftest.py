"""Shared test setup: Hypothesis profiles and small helpers.

``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) keeps a fixed, modest budget and no
deadline so CI stays fast and deterministic; ``thorough`` is for local runs.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def redis_server():  # type: ignore[no-untyped-def]
    """A real redis-server on a free loopback port, stopped afterwards."""
    from redis_support import running_redis

    with running_redis() as server:
        yield server
