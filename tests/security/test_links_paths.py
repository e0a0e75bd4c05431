"""Path canonicalisation: normpath() and every shipped rule that matches paths.

The class of attack: the same file spelled differently (``//etc/passwd``,
``/./etc/passwd``, ``/tmp/../etc/passwd``, a trailing slash) so that a rule
written against one spelling misses another, and spellings whose meaning
depends on the reader (NUL bytes, backslashes, percent-escapes). The
properties generate members of the class and check that the shipped policies
(rules/agents, which has sessions, and rules/, which takes the fused path)
decide every spelling of a path alike, and refuse ambiguous spellings.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from links_support import (
    AGENTS,
    COMPANY,
    PROPERTY,
    assert_same_decision,
    fresh,
    fused_and_ordinary,
)

from policylang import Engine
from policylang.errors import EvalError
from policylang.runtime.textfuncs import normpath

EMPLOYEE = {"id": "u-1", "role": "employee"}
CONTEXT = {"session_id": "s-1", "confidence": 0.95}

# Segments that matter to the shipped rules, and ordinary ones.
SEGMENT = st.sampled_from(
    [
        "etc",
        "secrets",
        "home",
        "u-1",
        "notes.txt",
        "passwd",
        ".ssh",
        "id_rsa",
        "key.pem",
        "proc",
        "root",
        "shared",
        "a..b",
        "~",
        "ETC",
        "50% off",
        "x y",
    ]
)
CANONICAL = st.lists(SEGMENT, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))


@st.composite
def spelling_of(draw: st.DrawFn, path: str) -> str:
    """Any spelling of an absolute canonical path that names the same file lexically."""
    parts = path.strip("/").split("/")
    out = "/" * draw(st.integers(1, 3))
    for _ in range(draw(st.integers(0, 2))):  # climbing above the root stays at the root
        out += "../" + "/" * draw(st.integers(0, 2))
    for i, part in enumerate(parts):
        for _ in range(draw(st.integers(0, 2))):
            out += draw(st.sampled_from(["./", ".//", "detour/../", "a/b/../../"]))
        out += part
        if i < len(parts) - 1:
            out += "/" * draw(st.integers(1, 3))
    return out + draw(st.sampled_from(["", "/", "//", "/.", "/./"]))


# --------------------------------------------------------------------------- normpath itself


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("//etc/passwd", "/etc/passwd"),
        ("/./etc/passwd", "/etc/passwd"),
        ("///etc//./passwd/", "/etc/passwd"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/home/u/../../etc/passwd", "/etc/passwd"),
        ("/", "/"),
        ("//", "/"),
        ("/..", "/"),
        ("", "."),
        (".", "."),
        ("a/../../b", "../b"),
        ("./a/./b/", "a/b"),
        ("~/notes", "~/notes"),
        ("~root/.ssh", "~root/.ssh"),
        ("/ETC/Passwd", "/ETC/Passwd"),
        ("/docs/50% off.txt", "/docs/50% off.txt"),
        ("/docs/a..b/...", "/docs/a..b/..."),
    ],
)
def test_normpath_examples(path: str, expected: str) -> None:
    assert normpath(path) == expected


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/home/u/a.txt\x00/../../etc/passwd", "NUL byte"),
        ("\x00", "NUL byte"),
        ("\\etc\\passwd", "backslash"),
        ("/home/u\\..\\..\\etc", "backslash"),
        ("/home/u/..%2f..%2fetc/passwd", "percent-escape"),
        ("/%2e%2e/etc", "percent-escape"),
        ("/%65tc/passwd", "percent-escape"),
        ("/a%00b", "percent-escape"),
        ("/a%252e", "percent-escape"),
    ],
)
def test_normpath_refuses_ambiguous_spellings(path: str, problem: str) -> None:
    with pytest.raises(EvalError, match=problem):
        normpath(path)


def test_normpath_wants_a_string() -> None:
    with pytest.raises(EvalError, match="normpath expects a string, got int"):
        normpath(5)  # type: ignore[arg-type]


PLAIN_PATH = st.text(alphabet=st.sampled_from("/.a~ -_%b"), max_size=30)


@given(PLAIN_PATH)
def test_normpath_is_posix_normalisation_with_one_root(path: str) -> None:
    # posixpath keeps a leading "//" (implementation-defined in POSIX); normpath never does.
    try:
        got = normpath(path)
    except EvalError:
        return  # only a %XX escape can get here with this alphabet (no NUL, no backslash)
    oracle = (
        posixpath.normpath("/" + path.lstrip("/"))
        if path.startswith("/")
        else posixpath.normpath(path)
    )
    assert got == oracle
    assert normpath(got) == got  # canonical: idempotent
    if got.startswith("/"):
        assert "//" not in got and ".." not in got.split("/") and "." not in got.split("/")[1:]


@given(CANONICAL.flatmap(lambda p: st.tuples(st.just(p), spelling_of(p))))
def test_every_spelling_has_the_canonical_form(pair: tuple[str, str]) -> None:
    canonical, spelling = pair
    assert normpath(spelling) == normpath(canonical) == canonical


# --------------------------------------------------------------------------- the shipped policies


def _outcome(
    engine: Engine,
    tool: str,
    args: dict[str, Any],
    context: dict[str, Any] | None = None,
    principal: dict[str, Any] | None = None,
) -> tuple[str, tuple[str, ...]]:
    d = engine.decide(tool, args=args, principal=principal or EMPLOYEE, context=context or CONTEXT)
    return d.effect, tuple(sorted(d.rule_names))


FILE_CALLS = [
    ("files.read", lambda p: {"path": p}),
    ("files.write", lambda p: {"path": p, "content": "hello"}),
    ("files.delete", lambda p: {"path": p}),
    ("files.share", lambda p: {"path": p, "recipients": ["alice.nguyen@example.com"]}),
]


@PROPERTY
@given(
    CANONICAL.flatmap(lambda p: st.tuples(st.just(p), spelling_of(p))),
    st.sampled_from(range(len(FILE_CALLS))),
)
def test_agents_policy_decides_every_spelling_of_a_path_alike(
    pair: tuple[str, str], which: int
) -> None:
    canonical, spelling = pair
    tool, args = FILE_CALLS[which]
    assert _outcome(fresh(AGENTS), tool, args(spelling)) == _outcome(
        fresh(AGENTS), tool, args(canonical)
    )
    mail = {"to": ["dan.okafor@example.com"], "subject": "FYI", "body": "Attached."}
    assert _outcome(fresh(AGENTS), "email.send", {**mail, "attachments": [spelling]}) == _outcome(
        fresh(AGENTS), "email.send", {**mail, "attachments": [canonical]}
    )


@PROPERTY
@given(CANONICAL.flatmap(lambda p: st.tuples(st.just(p), spelling_of(p))))
def test_a_read_under_secrets_marks_the_session_in_any_spelling(pair: tuple[str, str]) -> None:
    canonical, spelling = pair
    outcomes = []
    for path in (canonical, spelling):
        engine = fresh(AGENTS)
        engine.decide("files.read", args={"path": path}, principal=EMPLOYEE, context=CONTEXT)
        outcomes.append(_outcome(engine, "chat.post", {"channel": "eng", "body": "done"}))
    assert outcomes[0] == outcomes[1]
    if canonical.lower().startswith("/secrets/") or canonical.lower() == "/secrets":
        assert outcomes[0][0] == "deny" and "chat_after_secrets" in outcomes[0][1]


@PROPERTY
@given(
    CANONICAL.flatmap(lambda p: st.tuples(st.just(p), spelling_of(p))),
    st.sampled_from(range(len(FILE_CALLS))),
)
def test_company_policy_decides_every_spelling_of_a_path_alike(
    pair: tuple[str, str], which: int
) -> None:
    canonical, spelling = pair
    tool, args = FILE_CALLS[which]
    staff = {"id": "u-1", "role": "employee", "scopes": []}
    assert _outcome(fresh(COMPANY), tool, args(spelling), {}, staff) == _outcome(
        fresh(COMPANY), tool, args(canonical), {}, staff
    )
    mailer = {**staff, "scopes": ["email"]}
    mail = {"to": ["alice.nguyen@example.com"], "subject": "FYI", "body": "Attached."}
    assert _outcome(
        fresh(COMPANY), "email.send", {**mail, "attachments": [spelling]}, {}, mailer
    ) == _outcome(fresh(COMPANY), "email.send", {**mail, "attachments": [canonical]}, {}, mailer)


AMBIGUOUS = st.sampled_from(["\x00", "\\", "%2e", "%2F", "%5c", "%00", "%41", "%252e"])


@PROPERTY
@given(CANONICAL, AMBIGUOUS, st.integers(0, 40), st.sampled_from(range(len(FILE_CALLS))))
def test_ambiguous_spellings_are_denied_by_both_shipped_policies(
    path: str, bad: str, at: int, which: int
) -> None:
    at = min(at, len(path))
    spelling = path[:at] + bad + path[at:]
    tool, args = FILE_CALLS[which]
    effect, rules = _outcome(fresh(AGENTS), tool, args(spelling))
    assert effect == "deny" and "files_clean_paths" in rules
    staff = {"id": "u-1", "role": "employee", "scopes": []}
    effect, rules = _outcome(fresh(COMPANY), tool, args(spelling), {}, staff)
    assert effect == "deny" and "absolute_paths" in rules


@pytest.mark.parametrize(
    "path",
    [
        "//etc/passwd",
        "/./etc/passwd",
        "/tmp/../etc/passwd",
        "/etc/",
        "/ETC/passwd",
        "///etc///shadow",
        "/../etc/passwd",
    ],
)
def test_the_issue_spellings_of_etc_passwd_are_denied(path: str) -> None:
    effect, rules = _outcome(fresh(AGENTS), "files.read", {"path": path})
    assert effect == "deny" and "files_system_paths" in rules
    staff = {"id": "u-1", "role": "employee", "scopes": []}
    effect, rules = _outcome(fresh(COMPANY), "files.read", {"path": path}, {}, staff)
    assert effect == "deny" and "protected_paths" in rules


# --------------------------------------------------------------------------- fused and ordinary paths


_FUSED, _ORDINARY = fused_and_ordinary(COMPANY, "files.read")


@PROPERTY
@given(
    st.one_of(
        CANONICAL.flatmap(spelling_of),
        CANONICAL,
        PLAIN_PATH,
        st.tuples(CANONICAL, AMBIGUOUS).map("".join),
    ),
    st.sampled_from(range(len(FILE_CALLS))),
)
def test_fused_and_ordinary_paths_agree_on_path_spellings(path: str, which: int) -> None:
    tool, args = FILE_CALLS[which]
    req = {"args": args(path), "principal": {"id": "u-1", "role": "employee", "scopes": []}}
    assert_same_decision(_FUSED.decide(tool, **req), _ORDINARY.decide(tool, **req))


@pytest.mark.parametrize("literal", ["C:\\\\Users", "/a%2e%2e/b", "/a\\u0000b"])
def test_a_constant_path_normpath_refuses_is_a_load_error(literal: str) -> None:
    from policylang.errors import PolicyCheckError

    text = f'policy p\ntool t {{ x: string }}\nallow t when normpath("{literal}") == args.x\n'
    with pytest.raises(PolicyCheckError, match="PL103 normpath"):
        Engine.from_string(text)


def test_a_valid_constant_path_loads_and_decides() -> None:
    engine = Engine.from_string(
        'policy p\ntool t { x: string }\nallow t when normpath("//a/./b/") == args.x\n'
    )
    assert engine.decide("t", args={"x": "/a/b"}).effect == "allow"
    assert engine.decide("t", args={"x": "//a/./b/"}).effect == "deny"
