"""``by`` keys are canonical, and keys built from several parts never collide.

Two classes of problem:

* Spellings of one key — other case, surrounding or doubled whitespace,
  invisible characters (zero-width, bidi controls, soft hyphen, BOM),
  full-width or decomposed Unicode forms — are one allowance, so a caller
  cannot get a fresh one by respelling its id.
* Keys built from several values are unambiguous: ``"a/b" + "/" + "c"`` and
  ``"a" + "/" + "b/c"`` are different allowances, and no scalar key equals a
  composite one.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from policylang import Engine
from policylang.runtime.clock import FixedClock
from policylang.runtime.decision import Effect
from policylang.runtime.limits import canonical_key, canonical_text

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u202e",
    "\u2066",
    "\x00",
    "\x7f",
]
SPACES = [" ", "\t", "\n", "\u00a0", "\u3000", "\u2003", "\r\n"]
BASE = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.@éüñç", min_size=1, max_size=12
).filter(lambda s: s.strip(" ") == s)


@st.composite
def spellings(draw: st.DrawFn, base: str) -> str:
    """``base`` respelt: case, width, decomposition, invisible characters, whitespace."""
    out = []
    for ch in base:
        if ch.isalpha() and draw(st.booleans()):
            ch = ch.upper()
        if "!" <= ch <= "~" and draw(st.booleans()):
            ch = chr(ord(ch) + 0xFEE0)  # the full-width form
        if draw(st.booleans()):
            ch = unicodedata.normalize("NFD", ch)
        out.append(ch)
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from(INVISIBLE)))
    lead = "".join(draw(st.lists(st.sampled_from(SPACES), max_size=2)))
    trail = "".join(draw(st.lists(st.sampled_from(SPACES + INVISIBLE), max_size=2)))
    return lead + "".join(out) + trail


@given(st.data(), BASE)
def test_spellings_of_one_key_are_one_canonical_key(data: st.DataObject, base: str) -> None:
    variant = data.draw(spellings(base))
    assert canonical_key(variant) == canonical_key(base)


@given(st.text())
def test_canonical_text_is_stable(s: str) -> None:
    c = canonical_text(s)
    assert canonical_text(c) == c
    assert c == c.strip() and "  " not in c


LIMITED = """
policy keys
tool t { to: string = "" }
allow t
limit t to 2 per 1h by principal.id
"""


def _engine(text: str, fused: bool) -> Engine:
    engine = Engine.from_string(text, clock=FixedClock(T0))
    assert engine._prepared is not None
    if not fused:
        engine._prepared.fused.clear()
    return engine


@given(st.data(), BASE)
def test_respelling_the_key_never_gets_a_fresh_allowance(data: st.DataObject, base: str) -> None:
    names = [base] + data.draw(st.lists(spellings(base), min_size=3, max_size=6))
    for fused in (True, False):
        engine = _engine(LIMITED, fused)
        effects = [engine.decide("t", principal={"id": name}).effect for name in names]
        assert effects.count(Effect.ALLOW) == 2, (names, effects)


# ---------------------------------------------------------------- composite keys

PART = st.text(alphabet="ab/", max_size=4)


@given(st.lists(PART, max_size=4), st.lists(PART, max_size=4))
def test_composite_keys_are_equal_only_when_every_part_is(x: list[str], y: list[str]) -> None:
    same_parts = [canonical_text(a) for a in x] == [canonical_text(b) for b in y]
    assert (canonical_key(x) == canonical_key(y)) == same_parts


@given(st.text(), st.lists(st.text(max_size=4), max_size=3))
def test_no_scalar_key_equals_a_composite_key(s: str, parts: list[str]) -> None:
    assert canonical_key(s) != canonical_key(parts)
    assert canonical_key(s) != canonical_key([s])


@given(st.text(), st.text())
def test_scalar_keys_are_equal_exactly_when_their_canonical_texts_are(a: str, b: str) -> None:
    assert (canonical_key(a) == canonical_key(b)) == (canonical_text(a) == canonical_text(b))


JOINED = """
policy keys
tool t { to: string = "" }
allow t
limit t to 1 per 1h by principal.id + "/" + args.to
"""


@st.composite
def split_twice(draw: st.DrawFn) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two (id, to) pairs whose joined ``id + "/" + to`` texts are the same."""
    pieces = draw(st.lists(st.text(alphabet="xyz", min_size=1, max_size=3), min_size=3, max_size=5))
    i, j = sorted(
        draw(st.lists(st.integers(1, len(pieces) - 1), min_size=2, max_size=2, unique=True))
    )
    return ("/".join(pieces[:i]), "/".join(pieces[i:])), (
        "/".join(pieces[:j]),
        "/".join(pieces[j:]),
    )


@given(split_twice())
def test_a_joined_by_key_is_split_into_its_parts(
    pairs: tuple[tuple[str, str], tuple[str, str]],
) -> None:
    (a, b), (c, d) = pairs
    assert a + "/" + b == c + "/" + d
    for fused in (True, False):
        engine = _engine(JOINED, fused)
        assert engine.decide("t", args={"to": b}, principal={"id": a}).effect is Effect.ALLOW
        second = engine.decide("t", args={"to": d}, principal={"id": c})
        assert second.effect is Effect.ALLOW, second.message  # its own allowance
        again = engine.decide("t", args={"to": b.upper()}, principal={"id": f" {a} "})
        assert again.code == "rate_limited"  # the first pair's, respelt
        assert again.limits[0].key == canonical_key([a, b])


DYNAMIC = """
policy keys
tool t {}
allow t
limit t to 1 per 1h by context.a + context.b
"""


def _ctx(engine: Engine, a: Any, b: Any) -> Any:
    return engine.decide("t", context={"a": a, "b": b})


def test_a_plus_of_numbers_still_adds_up_and_a_bad_plus_fails_closed() -> None:
    for fused in (True, False):
        engine = _engine(DYNAMIC, fused)
        assert _ctx(engine, 1, 2).effect is Effect.ALLOW
        assert _ctx(engine, 2, 1).code == "rate_limited"  # 3 either way: the same allowance
        assert _ctx(engine, 1.5, 1.5).code == "rate_limited"  # 3.0 is 3
        assert _ctx(engine, "1", "2").effect is Effect.ALLOW  # strings: the parts ["1","2"]
        assert _ctx(engine, "12", "").effect is Effect.ALLOW  # not the same parts
        bad = _ctx(engine, "a", 1)
        assert bad.effect is Effect.DENY and bad.code == "evaluation_error", bad.message
        lists = _ctx(engine, ["p"], ["q"])  # list + list concatenates, as CEL does
        assert lists.effect is Effect.ALLOW and lists.limits[0].key == '["p","q"]'
        assert _ctx(engine, ["p", "q"], []).code == "rate_limited"


def test_a_list_by_key_and_a_constant_prefix_are_unambiguous() -> None:
    text = LIMITED.replace("by principal.id", 'by ["u", principal.id, args.to]')
    prefix = LIMITED.replace("by principal.id", 'by "user:" + principal.id')
    for fused in (True, False):
        engine = _engine(text, fused)
        assert engine.decide("t", args={"to": "b/c"}, principal={"id": "a"}).effect is Effect.ALLOW
        assert engine.decide("t", args={"to": "c"}, principal={"id": "a/b"}).effect is Effect.ALLOW
        d = engine.decide("t", args={"to": "c"}, principal={"id": "A/B"})
        assert d.effect is Effect.ALLOW and d.limits[0].key == '["u","a/b","c"]'
        assert engine.decide("t", args={"to": "c"}, principal={"id": "a/b"}).code == "rate_limited"
        one = _engine(prefix, fused)
        codes = [one.decide("t", principal={"id": i}).code for i in ("Bob", "bob ", "bo", "BOB")]
        assert codes == ["allowed", "allowed", "allowed", "rate_limited"]
