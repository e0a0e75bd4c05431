"""Shared by the security tests: one real redis-server for the whole session."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from policylang.runtime.stores import RedisStore


@pytest.fixture(scope="session")
def redis_store() -> Iterator[Callable[..., RedisStore]]:
    """Makes RedisStores on one real server, each under a fresh key prefix (so nothing is shared).

    The stores run on the engine's time (``use_server_time=False``, unless overridden), so
    the clock a test steps is the one that counts. Session-scoped, so Hypothesis tests can
    use it.
    """
    from redis_support import running_redis

    prefixes = itertools.count()
    with running_redis() as server:

        def make(**options: Any) -> RedisStore:
            settings = {"use_server_time": False, "timeout": 2.0, **options}
            return RedisStore(server.url, prefix=f"sec{next(prefixes)}:", **settings)

        yield make


@pytest.fixture(scope="module")
def redis_or_none(request: pytest.FixtureRequest) -> Callable[..., RedisStore] | None:
    """The ``redis_store`` factory, or None where no server can run (memory and SQLite still run)."""
    try:
        return request.getfixturevalue("redis_store")  # type: ignore[no-any-return]
    except pytest.skip.Exception:
        return None
