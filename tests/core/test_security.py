"""Hostile policy text: no code injection through literals or names, no side effects, no ReDoS."""

from __future__ import annotations

import ast as pyast
import random
import sys
import time

import pytest

from policylang import Effect, Engine, PolicyLoadError
from policylang.language.formatter import quote_string

# ------------------------------------------------------------ audit-hook canary

_WATCHED = (
    "exec",
    "import",
    "os.system",
    "subprocess.Popen",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "ctypes.",
    "builtins.input",
    "open",
)
_STATE = {"on": False, "events": []}


def _hook(event: str, args: tuple) -> None:
    if _STATE["on"] and event.startswith(_WATCHED):
        if event == "exec" and getattr(args[0], "co_filename", "").startswith("<policylang "):
            return  # the engine compiling its own evaluator for an undeclared tool (lazily)
        _STATE["events"].append((event, repr(args)[:200]))


if not getattr(sys, "_policylang_canary_installed", False):  # audit hooks cannot be removed
    sys.addaudithook(_hook)
    sys._policylang_canary_installed = True  # type: ignore[attr-defined]
    sys._policylang_canary_state = _STATE  # type: ignore[attr-defined]
else:  # pragma: no cover - module re-imported in one session
    _STATE = sys._policylang_canary_state  # type: ignore[attr-defined]


def _watched_decide(engine: Engine, *a, **kw):
    _STATE["events"].clear()
    _STATE["on"] = True
    try:
        return engine.decide(*a, **kw)
    finally:
        _STATE["on"] = False
        events = list(_STATE["events"])
        assert not events, f"side effects during decide(): {events}"


def test_canary_sees_an_exec():
    _STATE["events"].clear()
    _STATE["on"] = True
    try:
        exec("1 + 1")  # noqa: S102 - proving the canary works
    finally:
        _STATE["on"] = False
    assert any(e == "exec" for e, _ in _STATE["events"])
    _STATE["events"].clear()


# ------------------------------------------------------------ hostile text generator

PAYLOADS = [
    "__import__('os').system('echo pwned')",
    '"); __import__("os").system("echo pwned"); ("',
    "'); import os; os.system('echo pwned') #",
    '""" + __import__("os").getcwd() + """',
    "''' or 1 or '''",
    "{__import__('os')}",
    "{{}}",
    "{",
    "}",
    "{{",
    "}}",
    "{args.s}",
    "\\",
    "\\\\",
    "\\n",
    '\\"',
    "\\x41",
    "\\u0041",
    "\\101",
    "\\q",
    "\n",
    "\r\n",
    "\t",
    "\x01",
    "\x7f",
    "\u2028",
    "\u0085",
    "＂",
    "＇",
    "ʺ",
    "“",
    "”",
    "‘",
    "’",
    "‹",
    "«",
    "\u200b",
    "\ufeff",
    "\u202e",
    "#",
    "# comment",
    "//",
    "/*",
    "*/",
    "${x}",
    "%s",
    "%(x)s",
    "{0}",
    "f'{x}'",
    "exec",
    "eval",
    "__builtins__",
    "__class__",
    "__subclasses__()",
    "globals()",
    "lambda: 0",
    "a[0]",
    "os",
    "sys.modules",
    "DENY",
    "ALLOW",
    "hits",
    "errs",
    "a",
    "p",
    "c",
    "K1_s",
    "R0_deny",
    "_recover",
    "_eq",
    "None",
    "True",
    "rule",
    "allow",
    "deny",
    "when",
    "because",
    "policy",
    "tool",
    "limit",
    "*",
    "t*",
    "a" * 300,
    "é",
    "日本",
    "😀",
    "\U0001f600\u0301",
]


def _pieces(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(PAYLOADS) for _ in range(n))


def _hostile(count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    items = list(PAYLOADS)
    while len(items) < count:
        items.append(_pieces(rnd, rnd.randint(1, 5)))
    return items[:count]


LITERALS = _hostile(1200, 1)
NAMES = _hostile(900, 2)


def _literal_positions(text: str) -> bool:
    return len(text) >= 6 and text.strip() == text


def _assert_generated_code_is_clean(engine: Engine, user_texts: list[str]) -> None:
    compiled = engine.compiled
    sources = [compiled.module.source] + [engine.source_for(t) for t in engine.tools]
    for source in sources:
        tree = pyast.parse(source)
        docstring = pyast.get_docstring(tree, clean=False)
        for node in pyast.walk(tree):
            assert not isinstance(node, pyast.Import | pyast.ImportFrom), source
            if isinstance(node, pyast.Attribute):
                assert not node.attr.startswith("__"), source
            if isinstance(node, pyast.Name):
                assert not node.id.startswith("__") or node.id == "__name__", source
            if isinstance(node, pyast.Constant) and isinstance(node.value, str | bytes):
                value = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
                if value == docstring:  # our fixed module docstring
                    continue
                for text in user_texts:
                    if _literal_positions(text):
                        assert text not in value, f"user text {text!r} pasted into {source}"


def _batched(items: list[str], size: int):
    for k in range(0, len(items), size):
        yield items[k : k + size]


@pytest.mark.parametrize("batch", list(_batched(LITERALS, 60)), ids=lambda b: f"{len(b)}lit")
def test_hostile_string_literals(batch):
    rules = [
        f'rule "r{k}": deny t when args.s == {quote_string(lit)} because "matched {k}"'
        for k, lit in enumerate(batch)
    ]
    text = "policy sec\ntool t { s: string }\nallow t\n" + "\n".join(rules) + "\n"
    for reference in (False, True):
        try:
            engine = Engine.from_string(text, reference=reference)
        except PolicyLoadError:
            pytest.fail("escaped literals must load")  # every literal is properly escaped
        _assert_generated_code_is_clean(engine, batch)
        for k, lit in enumerate(batch[:20]):
            d = _watched_decide(engine, "t", args={"s": lit})
            assert d.effect is Effect.DENY and f"r{k}" in d.rule_names, (lit, d.message)
        d = _watched_decide(engine, "t", args={"s": "\x00benign\x00"})
        assert d.effect is Effect.ALLOW


@pytest.mark.parametrize("batch", list(_batched(NAMES, 60)), ids=lambda b: f"{len(b)}names")
def test_hostile_rule_names_and_reasons(batch):
    seen: set[str] = set()
    rules = []
    kept = []
    for k, name in enumerate(batch):
        unique = f"{name}#{k}"
        if unique in seen:
            continue
        seen.add(unique)
        kept.append(unique)
        reason = quote_string(name.replace("{", "{{").replace("}", "}}"))
        rules.append(f"rule {quote_string(unique)}: deny t when args.n == {k} because {reason}")
    text = "policy sec\ntool t { n: int }\nallow t\n" + "\n".join(rules) + "\n"
    engine = Engine.from_string(text)
    _assert_generated_code_is_clean(engine, kept)
    for k, unique in enumerate(kept[:20]):
        d = _watched_decide(engine, "t", args={"n": k})
        assert d.effect is Effect.DENY
        assert d.rule_names == [unique]
        assert d.reasons == [batch[k]]
        assert Effect(d.model_dump(mode="json")["effect"]) is Effect.DENY
    assert _watched_decide(engine, "t", args={"n": -1}).effect is Effect.ALLOW


@pytest.mark.parametrize(
    "text",
    [
        'policy p\ntool t { s: string }\ndeny t when args.s == "unterminated\n',
        'policy p\ntool t { s: string }\ndeny t when args.s == "\\q"\n',
        'policy p\ntool t { s: string }\ndeny t when args.s == "\\uD800"\n',
        'policy p\ntool t { s: string }\ndeny t when args.s == """a"""b"""\n',
        "policy p\ntool t { s: string }\ndeny t when args.s == ＂x＂\n",
        "policy p\ntool t { s: string }\ndeny t when __import__('os').system('x')\n",
        'policy p\ntool t { s: string }\ndeny t when args.__class__ == "x"\n',
        "policy p\ntool t { s: string }\ndeny t when args.s.__len__() == 1\n",
        'policy p\ntool t { s: string }\nrule "a\nb": deny t\n',
        "policy p\ntool t { s: string }\ndeny t because \"{__import__('os')}\"\n",
    ],
)
def test_malformed_hostile_text_is_a_load_error(text):
    with pytest.raises(PolicyLoadError):
        Engine.from_string(text)


def test_dunder_fields_are_plain_data_not_python_attributes():
    text = (
        'policy p\ntool t { "__class__": string, "__init__": int }\n'
        'deny t when args.__class__ == "x" || args["__init__"] == 3\nallow t\n'
    )
    for reference in (False, True):
        engine = Engine.from_string(text, reference=reference)
        _assert_generated_code_is_clean(engine, ["__class__", "__init__"])
        assert (
            _watched_decide(engine, "t", args={"__class__": "x", "__init__": 0}).effect
            is Effect.DENY
        )
        assert (
            _watched_decide(engine, "t", args={"__class__": "y", "__init__": 3}).effect
            is Effect.DENY
        )
        assert (
            _watched_decide(engine, "t", args={"__class__": "y", "__init__": 0}).effect
            is Effect.ALLOW
        )


def test_open_policy_with_hostile_tool_names_and_keys():
    engine = Engine.from_string('policy p\ndefault allow\ndeny * when args.x == "__import__"\n')
    for tool in ["__import__", "os.system", "a'b", 'a"b', "x\ny", "😀"]:
        d = _watched_decide(engine, tool, args={"x": "__import__", "__class__": 1})
        assert d.effect is Effect.DENY
        d = _watched_decide(engine, tool, args={"x": "ok"})
        assert d.effect is Effect.ALLOW


def test_catastrophic_regex_is_linear():
    text = 'policy r\ntool t { s: string }\ndeny t when args.s.matches("(a+)+$")\nallow t\n'
    payload = "a" * 100_000 + "!"
    for reference in (False, True):
        engine = Engine.from_string(text, reference=reference)
        start = time.perf_counter()
        d = engine.decide("t", args={"s": payload})
        assert time.perf_counter() - start < 1.0
        assert d.effect is Effect.ALLOW  # no run of a's right before the end
    start = time.perf_counter()
    assert engine.decide("t", args={"s": "a" * 100_000}).effect is Effect.DENY
    assert time.perf_counter() - start < 1.0


def test_runtime_regex_from_arguments_is_linear_and_bad_ones_fail_closed():
    text = (
        "policy r\ntool t { s: string, re: string }\ndeny t when args.s.matches(args.re)\nallow t\n"
    )
    engine = Engine.from_string(text)
    start = time.perf_counter()
    d = engine.decide("t", args={"s": "a" * 100_000 + "!", "re": "^(a|aa)+$"})
    assert time.perf_counter() - start < 1.0 and d.effect is Effect.ALLOW
    d = engine.decide("t", args={"s": "x", "re": "(a)\\1"})
    assert d.effect is Effect.DENY and d.code == "evaluation_error"


def test_there_are_enough_hostile_inputs():
    assert len(LITERALS) + len(NAMES) >= 2000
    assert any("__import__" in s for s in LITERALS) and any("＂" in s for s in NAMES)
