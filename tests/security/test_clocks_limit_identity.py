"""A limit's counters are kept under what it says, not where it stands.

The class of problem: any edit that does not change a limit's meaning —
comments, blank lines, other rules added, removed or reordered above it, its
own layout, parentheses, ``per hour`` for ``per 1h``, its tool list reordered —
must keep its counters across a reload (memory store) and across a restart
(a new engine on the same SQLite file). An edit that does change it (amount,
window, ``by``, ``when``, ``sum``, tools) starts fresh counters. Named limits
are kept under their name whatever their content.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.compiler.plan import limit_identities
from policylang.language.policy import Policy
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Effect
from policylang.runtime.stores import SQLiteStore

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)

HEADER = "policy ident\ntool t { n: int = 0 }\ntool u { n: int = 0 }\n"

# spellings of one limit: the same statement, laid out and written differently
SAME_LIMIT = [
    "limit t to 2 per 1h by principal.id",
    "limit t  to 2 per hour by principal.id",
    "limit t to 2 per 60m by (principal.id)",
    "limit t to 2 per 3600s\n    by principal.id",
    "limit t to 2.0 per 1h by principal.id  # two an hour",
]
OTHER = [  # statements that may stand around it
    "allow t",
    "allow u",
    'deny t when args.n > 100 because "too many"',
    "confirm u when args.n > 5",
    "limit u to 5 per 1m by principal.id",
    "limit t to 9 per 1d",
    "def big(x): x > 1000",
]
FILLER = st.sampled_from(
    ["", "# a comment", "   ", "# limit t to 2 per 1h by principal.id", "\t# tab"]
)


@st.composite
def layouts(draw: st.DrawFn) -> str:
    """A policy: the limit somewhere among the other statements, comments and blank lines."""
    body = draw(st.permutations(OTHER))
    body = body[: draw(st.integers(2, len(body)))]
    if "allow t" not in body:
        body = ["allow t", *body]
    at = draw(st.integers(0, len(body)))
    statements = [*body[:at], draw(st.sampled_from(SAME_LIMIT)), *body[at:]]
    lines = []
    for s in statements:
        lines += draw(st.lists(FILLER, max_size=3))
        lines.append(s)
    return HEADER + "\n".join(lines) + "\n"


def _use_up(engine: Engine, who: str = "u-1") -> list[Effect]:
    return [engine.decide("t", principal={"id": who}).effect for _ in range(2)]


@given(layouts(), layouts())
def test_layout_edits_keep_the_counter_across_reload(first: str, second: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.policy"
        path.write_text(first)
        engine = Engine.from_path(path, clock=FixedClock(T0))
        assert _use_up(engine) == [Effect.ALLOW, Effect.ALLOW]
        path.write_text(second)
        engine.reload()
        d = engine.decide("t", principal={"id": "u-1"})
        assert d.code == "rate_limited", (second, d.message)
        assert engine.decide("t", principal={"id": "u-2"}).effect is Effect.ALLOW


@given(layouts(), layouts())
def test_layout_edits_keep_the_counter_across_a_restart_on_sqlite(first: str, second: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "limits.db"
        store = SQLiteStore(db)
        before = Engine.from_string(first, path="p.policy", clock=FixedClock(T0), store=store)
        assert _use_up(before) == [Effect.ALLOW, Effect.ALLOW]
        store.close()
        store = SQLiteStore(db)  # a new process: nothing shared but the file
        after = Engine.from_string(second, path="q/p.policy", clock=FixedClock(T0), store=store)
        try:
            assert after.decide("t", principal={"id": "u-1"}).code == "rate_limited"
        finally:
            store.close()


CHANGED = [
    "limit t to 3 per 1h by principal.id",
    "limit t to 2 per 2h by principal.id",
    "limit t to 2 per 1h by principal.role",
    "limit t to 2 per 1h by principal.id when args.n >= 0",
    "limit t to sum(1) 2 per 1h by principal.id",
    "limit t, u to 2 per 1h by principal.id",
]


def test_an_edit_that_changes_the_limit_starts_fresh_counters() -> None:
    for changed in CHANGED:
        engine = Engine.from_string(
            HEADER + "allow t\n" + SAME_LIMIT[0] + "\n", clock=FixedClock(T0)
        )
        assert _use_up(engine) == [Effect.ALLOW, Effect.ALLOW]
        engine.reload_string(HEADER + "allow t\n" + changed + "\n")
        assert engine.decide("t", principal={"id": "u-1", "role": "r"}).effect is Effect.ALLOW, (
            changed
        )


def test_a_named_limit_keeps_its_name_as_identity() -> None:
    engine = Engine.from_string(
        HEADER + "allow t\nrule per_user: limit t to 2 per 1h by principal.id\n",
        clock=FixedClock(T0),
    )
    assert _use_up(engine) == [Effect.ALLOW, Effect.ALLOW]
    engine.reload_string(
        HEADER + "# raised\nallow t\nrule per_user: limit t to 3 per 1h by principal.id\n"
    )
    assert [engine.decide("t", principal={"id": "u-1"}).effect for _ in range(2)] == [
        Effect.ALLOW,
        Effect.DENY,
    ]


def test_identical_unnamed_limits_do_not_share_and_double_book_one_counter() -> None:
    text = HEADER + "allow t\nlimit t to 2 per 1h\nlimit t to 2 per 1h\n"
    engine = Engine.from_string(text, clock=FixedClock(T0))
    assert [engine.decide("t").effect for _ in range(3)] == [
        Effect.ALLOW,
        Effect.ALLOW,
        Effect.DENY,
    ]
    compiled = engine.compiled
    assert compiled is not None
    ids = limit_identities(compiled.policy)
    assert len(set(ids)) == 2 and ids[1] == ids[0] + "~2"


def test_identities_are_content_hashes_that_ignore_position() -> None:
    def ids(text: str) -> list[str]:
        policy: Policy = Engine.from_string(HEADER + text).compiled.policy  # type: ignore[union-attr]
        return limit_identities(policy)

    a = ids("allow t\nlimit t to 2 per 1h by principal.id\n")
    b = ids("\n\n# moved\nallow t\nallow u\n\nlimit t to 2 per hour by (principal.id)\n")
    assert a == b and a[0].startswith("#")
    assert ids("allow t\nlimit t, u to 2 per 1h\n") == ids("allow t\nlimit u, t to 2 per 1h\n")
    # what happens when the store is down does not change what the limit counts
    assert ids("allow t\nlimit t to 2 per 1h\n") == ids("allow t\nlimit t to 2 per 1h fail open\n")
    assert ids("allow t\nlimit t to 2 per 1h\n") != ids(
        "allow t\nlimit t to 2 per 1h when args.n > 0\n"
    )
