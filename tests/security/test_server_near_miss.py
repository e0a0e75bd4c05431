"""Near-miss tool names: spellings a person reads as a declared tool (or as a tool a rule's
pattern covers) are denied ``unknown_tool`` whatever the default, on the fused and the
reference engine alike; the "did you mean" search never runs on the decision path."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from policylang import Effect, Engine
from policylang.runtime import names as names_mod
from policylang.runtime.names import skeleton

WORD = st.text("abcdefghjkmnpqrstuvwxyz", min_size=2, max_size=8)
NAME = st.lists(WORD, min_size=1, max_size=3).map(lambda ws: "q" + ".".join(ws))  # no keywords
CONFUSABLE = {
    "a": "а",
    "e": "е",
    "o": "о",
    "p": "р",
    "c": "с",
    "x": "х",
    "y": "у",
    "s": "ѕ",
    "k": "κ",
    "n": "ո",
    "m": "ｍ",
}
INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\x00",
    "\x1b",
    "\t",
    " ",
    "\n",
    "\u00a0",
    "\u3000",
    "\u202e",
    "\U000e0041",
    "\u0301",
]
SEPARATORS = ["/", "_", "-", ":", "\\", " ", "..", "|", "\u2024", "\uff0e", "::"]


def policy(tools: list[str], default: str = "allow", extra: str = "") -> str:
    decls = "".join(f"tool {t} {{ amount: number }}\n" for t in tools)
    rules = "".join(f"deny {t} when args.amount > 100\n" for t in tools)
    return f"policy p\ndefault {default}\n{decls}{rules}{extra}"


@st.composite
def misspelling(draw: st.DrawFn, name: str) -> str:
    """One to three edits a person does not notice, applied to ``name``."""
    out = name
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["case", "invisible", "separator", "confusable", "width", "edge"])
        )
        i = draw(st.integers(0, len(out)))
        if kind == "case":
            j = draw(st.integers(0, len(out) - 1))
            out = out[:j] + out[j].swapcase() + out[j + 1 :]
        elif kind == "invisible":
            out = out[:i] + draw(st.sampled_from(INVISIBLE)) + out[i:]
        elif kind == "separator" and "." in out:
            out = out.replace(".", draw(st.sampled_from(SEPARATORS)), 1)
        elif kind == "confusable":
            spots = [j for j, ch in enumerate(out) if ch in CONFUSABLE]
            if spots:
                j = draw(st.sampled_from(spots))
                out = out[:j] + CONFUSABLE[out[j]] + out[j + 1 :]
        elif kind == "width":
            out = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in out)
        else:
            out = (
                draw(st.sampled_from([" ", "\t", "\u200b", "\r\n"]))
                + out
                + draw(st.sampled_from(["", " ", "\x00", "\u2028"]))
            )
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["fused", "reference"])
def reference(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@given(data=st.data(), tools=st.lists(NAME, min_size=1, max_size=4, unique=True))
def test_a_misspelt_declared_tool_is_unknown_whatever_the_default(
    reference: bool, data: st.DataObject, tools: list[str]
) -> None:
    target = data.draw(st.sampled_from(tools))
    wrong = data.draw(misspelling(target))
    assume(wrong not in tools)
    for default in ("allow", "deny"):
        engine = Engine.from_string(policy(tools, default), reference=reference)
        d = engine.decide(wrong, args={"amount": 500})
        assert (d.effect, d.code) == (Effect.DENY, "unknown_tool"), (wrong, d.message)
        assert (
            engine.decide(target, args={"amount": 500}).code == "denied"
        )  # the real one still works


@given(data=st.data(), ns=WORD, leaf=WORD)
def test_a_misspelling_cannot_walk_around_a_glob(
    reference: bool, data: st.DataObject, ns: str, leaf: str
) -> None:
    """``deny admin.*`` covers what reads as ``admin.<x>``; ``allow *`` keeps the rest open."""
    ns = "q" + ns  # never a keyword
    text = f"policy p\ndefault allow\ndeny {ns}.*\n"
    engine = Engine.from_string(text, reference=reference)
    wrong = data.draw(misspelling(f"{ns}.{leaf}"))
    d = engine.decide(wrong)
    assert d.effect is Effect.DENY, (wrong, d.message)
    assert d.code in ("unknown_tool", "denied")


@given(name=NAME)
def test_names_that_read_differently_stay_open(reference: bool, name: str) -> None:
    """Not over-blocking: an undeclared name unlike every declared one is decided by the default."""
    tools = ["payments.send", "files.delete"]
    assume(skeleton(name) not in {"payments.send", "paymentssend", "files.delete", "filesdelete"})
    engine = Engine.from_string(policy(tools), reference=reference)
    d = engine.decide(name, args={"anything": 1})
    assert (d.effect, d.code) == (Effect.ALLOW, "default_allow")


@pytest.mark.parametrize(
    "wrong",
    [
        "Payments.send",
        "payments.send\t",
        "payments/send",
        "payments_send",
        "pаyments.send",
        "pay\u200bments.send",
        "ＰＡＹＭＥＮＴＳ.ＳＥＮＤ",
        " payments.send",
        "payments.send\x00",
        "payments..send",
        "paymentssend",
        "PAYMENTS::SEND",
        unicodedata.normalize("NFD", "pàyments.send"),
    ],
)
def test_examples_from_the_hardening_list(wrong: str) -> None:
    engine = Engine.from_string(policy(["payments.send"]))
    d = engine.decide(wrong, args={"amount": 5})
    assert (d.effect, d.code) == (Effect.DENY, "unknown_tool")
    assert "reads like the declared tool 'payments.send'" in d.message
    assert (
        wrong not in d.reasons[0] or wrong.isprintable()
    )  # invisible characters are shown escaped


def test_a_name_with_nothing_visible_is_denied() -> None:
    engine = Engine.from_string(policy(["payments.send"]))
    for wrong in ("\u200b", " ", "\t\u200d", "..", "/"):
        assert engine.decide(wrong).code == "unknown_tool"
    assert engine.decide("weather.get").code == "default_allow"


def test_open_policy_exact_names_of_undeclared_tools_are_read_like_globs() -> None:
    engine = Engine.from_string("policy p\ndefault allow\ndeny admin.delete\n")
    assert engine.decide("admin.delete").code == "denied"
    assert engine.decide("Admin.Delete").code == "unknown_tool"
    assert engine.decide("admin.deleted").code == "default_allow"


def test_unknown_tool_suggestion_is_not_computed_per_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 1,000 declared tools an unknown name costs no "did you mean" search until it is read."""
    tools = [f"svc{i}.op" for i in range(1000)]
    engine = Engine.from_string(
        "policy p\n" + "".join(f"tool {t} {{}}\n" for t in tools) + "allow svc1.op\n"
    )
    calls: list[int] = []
    real = names_mod.difflib.get_close_matches

    def counting(word: str, possibilities: list[str], *a: object, **kw: object) -> list[str]:
        calls.append(len(possibilities))
        return real(word, possibilities, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(names_mod.difflib, "get_close_matches", counting)
    decisions = [engine.decide(f"nope{i}.op") for i in range(500)]
    assert all(d.code == "unknown_tool" for d in decisions)
    assert calls == []  # deciding never searched
    assert "is not a tool this policy declares" in decisions[0].message
    assert len(calls) == 1 and calls[0] <= names_mod._SUGGEST_CANDIDATES  # bounded when read
    assert decisions[0].model_dump()["reasons"] == decisions[0].reasons
    assert len(calls) == 1  # composed once per decision
    assert "did you mean 'svc12.op'" in engine.decide("svc12.opp").message
