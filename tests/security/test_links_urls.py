"""Links in outgoing text: urls() finds them in every spelling, host()/domain() read them as browsers do.

The class of attack: a link to an untrusted host written so that the policy
misreads its host (``evil%2Ecom``, a fullwidth or ideographic dot, backslashes,
a zero-width space, userinfo, an IPv4 in hex, a homograph, a trailing dot) or
does not see the link at all (``//evil.com/p``, ``ws://``, ``sftp://``, a bare
``evil.zip``, markdown and HTML). The properties generate hosts and spellings
of them and check that domain() agrees across spellings (with the ``idna``
package as an independent oracle for the ASCII form), and that any text that
links to a host outside an allow-list is never read as "every link trusted".
"""

from __future__ import annotations

import idna
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from links_support import (
    AGENTS,
    COMPANY,
    PROPERTY,
    assert_same_decision,
    fresh,
    fused_and_ordinary,
)

from policylang.errors import EvalError
from policylang.runtime.textfuncs import UNPARSABLE_HOST, domain, host, urls

TRUSTED = frozenset(["example.com", "acme-supplies.com", "globex.net", "github.com", "zoom.us"])

UNICODE_DOTS = ["\u3002", "\uff0e", "\uff61"]
INVISIBLE = ["\u200b", "\u00ad", "\u2060", "\ufeff"]  # ignored by UTS-46: a browser drops them

ASCII_LABEL = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
IDN_LABEL = st.sampled_from(["münchen", "bücher", "пример", "例え", "ελλάδα", "straße-x"])
LABEL = st.one_of(ASCII_LABEL, ASCII_LABEL, IDN_LABEL)
SUFFIX = st.sampled_from(["com", "org", "net", "io", "de", "co.uk", "zip", "xn--p1ai", "github.io"])


@st.composite
def hostnames(draw: st.DrawFn) -> str:
    """A host in Unicode lower case: one to three labels and a public suffix."""
    return ".".join([*draw(st.lists(LABEL, min_size=1, max_size=3)), draw(SUFFIX)])


def ascii_form(name: str) -> str:
    """The oracle: the IDNA (UTS-46) ASCII form of a host, from the idna package, not ada-url."""
    return idna.encode(name, uts46=True).decode("ascii")


@st.composite
def spelled(draw: st.DrawFn, name: str, percent: bool = True) -> str:
    """A spelling of ``name`` that a browser reads as the same host."""
    out = []
    for ch in name:
        if ch == ".":
            out.append(draw(st.sampled_from([".", ".", *UNICODE_DOTS])))
            continue
        choice = draw(st.integers(0, 9))
        if choice == 0 and ch.isascii() and ch.isalnum():
            out.append(chr(ord(ch) + 0xFEE0))  # fullwidth form
        elif choice == 1 and percent and ch.isascii() and ch.isalnum():
            out.append(f"%{ord(ch):02X}")
        elif choice == 2:
            out.append(ch + draw(st.sampled_from(INVISIBLE)))
        elif choice in (3, 4):
            out.append(ch.upper())
        else:
            out.append(ch)
    if draw(st.booleans()):
        out.append(".")  # a trailing dot names the same host
    return "".join(out)


LINK_FORMS = [
    "https://{h}/x",
    "HTTP://{h}",
    "hTtPs://user:pw@{h}:8443/p?q#f",
    "https:\\\\{h}\\x",
    "https:{h}/x",
    "//{h}/p.gif",
    "ws://{h}/socket",
    "wss://{h}",
    "ftp://{h}/f",
    "file://{h}/share",
    "sftp://{h}/in",
    "git+ssh://git@{h}/r.git",
]


@PROPERTY
@given(
    hostnames().flatmap(lambda n: st.tuples(st.just(n), spelled(n))), st.sampled_from(LINK_FORMS)
)
def test_host_and_domain_agree_across_spellings(pair: tuple[str, str], form: str) -> None:
    name, spelling = pair
    expected = ascii_form(name)
    link = form.format(h=spelling)
    assert host(link) == expected
    assert domain(link) == domain(expected) == domain("https://" + name + "/")
    assert domain(expected).isascii() and domain(expected) == domain(expected).lower()


@PROPERTY
@given(hostnames())
def test_idn_and_punycode_spellings_have_one_domain(name: str) -> None:
    assert (
        domain(f"https://{name}/")
        == domain(f"https://{ascii_form(name)}/")
        == domain(ascii_form(name))
    )


# --------------------------------------------------------------------------- never "all trusted"

EVIL_FORMS = [
    "https://{h}/login",
    "HtTpS://{h}",
    "http://example.com@{h}/sso",
    "https://example.com.{h}/x",
    "https:\\\\{h}\\x",
    "https:{h}/x",
    "<img src=//{h}/p.gif>",
    '<a href="//{h}/login">docs</a>',
    "<a href='https://{h}/x'>here</a>",
    "[docs](https://{h}/docs)",
    "[docs]({h}/docs)",
    "ws://{h}/s",
    "file://{h}/share/x",
    "sftp://{h}/in",
    "{h}/pay",
    "www.{h}",
    "(see {h}/x).",
    "mail me: bob@{h}/x",
]
EVIL_HOST = st.tuples(
    st.lists(ASCII_LABEL, min_size=1, max_size=2),
    st.sampled_from(["com", "net", "zip", "io", "ru", "mov", "co.uk"]),
).map(lambda t: ".".join([*t[0], t[1]]))
TRUSTED_LINK = st.sampled_from(
    [
        "https://docs.example.com/a",
        "github.com/org/repo",
        "https://zoom.us/j/1",
        "www.globex.net",
        "https://EXAMPLE.com./x",
    ]
)
WORD = st.from_regex(r"[A-Za-z]{1,8}[,.!?]?", fullmatch=True)


@st.composite
def text_with_an_untrusted_link(draw: st.DrawFn) -> tuple[str, str]:
    evil = draw(EVIL_HOST)
    assume(domain(evil) not in TRUSTED)
    spelling = draw(spelled(evil, percent=False)) if draw(st.booleans()) else evil
    form = draw(st.sampled_from(EVIL_FORMS))
    if form.startswith(("[docs]({h}", "{h}", "www.", "(see", "mail")) and spelling.endswith("."):
        spelling = spelling[:-1]  # a bare domain's trailing dot reads as the end of a sentence
    pieces = draw(st.lists(st.one_of(WORD, TRUSTED_LINK), max_size=6))
    at = draw(st.integers(0, len(pieces)))
    pieces.insert(at, form.format(h=spelling))
    return " ".join(pieces), domain(evil)


@PROPERTY
@given(text_with_an_untrusted_link())
def test_text_linking_outside_the_allow_list_is_never_all_trusted(case: tuple[str, str]) -> None:
    text, evil = case
    found = urls(text)
    domains = {domain(u) for u in found}
    assert evil in domains, (text, found)
    assert not all(d in TRUSTED for d in domains)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(text_with_an_untrusted_link())
def test_the_agents_policy_denies_mail_linking_outside_the_allow_list(
    case: tuple[str, str],
) -> None:
    text, _ = case
    engine = fresh(AGENTS)
    d = engine.decide(
        "email.send",
        args={"to": ["alice.nguyen@example.com"], "subject": "Notes", "body": text},
        principal={"id": "u-1", "role": "employee"},
        context={"session_id": "s-1", "confidence": 0.95},
    )
    assert d.effect == "deny" and "mail_unknown_links" in d.rule_names


@PROPERTY
@given(st.lists(st.one_of(WORD, TRUSTED_LINK), max_size=8))
def test_text_with_only_trusted_links_is_trusted(pieces: list[str]) -> None:
    assert all(domain(u) in TRUSTED for u in urls(" ".join(pieces)))


ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60)
LINKISH = st.text(
    alphabet=st.sampled_from(list("ab.:/\\@%[]-_ 0x1") + UNICODE_DOTS + INVISIBLE + ["\u202e"]),
    max_size=40,
)


@PROPERTY
@given(
    st.one_of(
        ANY_TEXT,
        LINKISH,
        st.tuples(st.sampled_from(["https://", "//", "ws://", "a.com/"]), LINKISH).map("".join),
    )
)
def test_every_found_link_has_a_host_or_the_untrusted_marker(text: str) -> None:
    for u in urls(text):
        assert u and u in text
        name, reg = host(u), domain(u)  # never raises for a found link
        if UNPARSABLE_HOST in (name, reg):
            assert name == reg == UNPARSABLE_HOST
        else:
            assert name.isascii() and name == name.lower() and not name.endswith(".")
            assert name == reg or name.endswith("." + reg)


@PROPERTY
@given(ANY_TEXT)
def test_host_is_total_on_non_blank_text(text: str) -> None:
    if not text.strip():
        with pytest.raises(EvalError):
            host(text)
        return
    name = host(text)
    assert name == UNPARSABLE_HOST or (name.isascii() and "<" not in name)


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://evil%2Ecom/x", "evil.com"),
        ("https://evil\uff0ecom/x", "evil.com"),
        ("https://evil\u3002com/x", "evil.com"),
        ("https://evil\uff61com/x", "evil.com"),
        ("https:\\\\evil.com\\x", "evil.com"),
        ("https://ev\u200bil.com/x", "evil.com"),
        ("HTTPS://Trusted.COM@evil.com", "evil.com"),
        ("https://trusted.com%2F@evil.com/", "evil.com"),
        ("see //evil.com/p", "evil.com"),
        ("<img src=//evil.com/p>", "evil.com"),
        ('<a href="//evil.com">x</a>', "evil.com"),
        ("ws://evil.com", "evil.com"),
        ("file://evil.com/x", "evil.com"),
        ("sftp://evil.com/x", "evil.com"),
        ("grab evil.zip", "evil.zip"),
        ("go to evil.com/x now", "evil.com"),
        ("www.evil.com", "evil.com"),
        ("[x](https://evil.com)", "evil.com"),
        ("https://xn--pple-43d.com", "xn--pple-43d.com"),
        ("https://\u0430pple.com", "xn--pple-43d.com"),  # Cyrillic a: not apple.com
        ("https://trusted.com./", "trusted.com"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://[0:0::1]:8080/", "::1"),
        ("10.0.0.1:8080/admin", "10.0.0.1"),
        ("x@evil.com/path", "evil.com"),
    ],
)
def test_issue_spellings(text: str, expected: str) -> None:
    found = urls(text)
    assert found, text
    assert domain(found[0]) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://trusted.com\u202e.evil/x",  # a bidi control: no browser resolves it
        "https://a..b.com/",
        "https://.trusted.com/",
        "https://trusted.com../",
        "https://%zz.com/",
        "https://ev%252eil.com/",
        "http://[zz]/",
        "https://x:99999/",
        "javascript:alert(1)",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://xn--a.com/",  # not valid punycode
        "https://" + "a" * 64 + ".com/",  # a label longer than DNS allows
    ],
)
def test_unreadable_links_are_found_and_untrusted(text: str) -> None:
    found = urls(text)
    assert found, text
    assert domain(found[0]) == UNPARSABLE_HOST
    assert not all(domain(u) in TRUSTED | {UNPARSABLE_HOST.strip("<>")} for u in found)


@pytest.mark.parametrize(
    "text",
    [
        "e.g. this",
        "see report.pdf",
        "run setup.py now",
        "v1.2.3",
        "pi is 3.14",
        "a // comment",
        "mail bob@evil.com",
        "http://",
        "path/to/file.txt",
        "node.js",
        "10:30 a.m.",
    ],
)
def test_prose_is_not_links(text: str) -> None:
    assert urls(text) == []


def test_the_marker_is_no_host_a_browser_could_contact() -> None:
    assert host(UNPARSABLE_HOST) == UNPARSABLE_HOST  # it does not even parse as a host
    assert domain("https://" + UNPARSABLE_HOST + "/") == UNPARSABLE_HOST


# --------------------------------------------------------------------------- fused and ordinary paths


_FUSED, _ORDINARY = fused_and_ordinary(COMPANY, "email.send")


@PROPERTY
@given(
    st.one_of(
        text_with_an_untrusted_link().map(lambda c: c[0]),
        ANY_TEXT,
        LINKISH,
        st.lists(st.one_of(WORD, TRUSTED_LINK), max_size=5).map(" ".join),
    )
)
def test_fused_and_ordinary_paths_agree_on_link_texts(body: str) -> None:
    req = {
        "args": {"to": ["alice@example.com"], "subject": "Hi", "body": body},
        "principal": {"id": "u-1", "role": "employee", "scopes": ["email"]},
        "context": {"confidence": 1.0},
    }
    assert_same_decision(_FUSED.decide("email.send", **req), _ORDINARY.decide("email.send", **req))


# --------------------------------------------------------------------------- line breaks and HTML

BREAK = st.sampled_from(["\n", "\r\n", "\t", "\n\t\r\n"])  # browsers drop these, not spaces
GLUE = st.sampled_from([".", "@", ":", "%2E", "\u3002"])


@PROPERTY
@given(TRUSTED_LINK.filter(lambda u: "://" in u), BREAK, EVIL_HOST)
def test_a_line_break_inside_an_href_does_not_hide_the_real_host(
    trusted: str, gap: str, evil: str
) -> None:
    # Browsers delete tabs and line breaks inside a URL, so this href goes to <trusted>.<evil>.
    host_end = (
        trusted.index("/", trusted.index("//") + 2) if trusted.count("/") > 2 else len(trusted)
    )
    for glue in (".", "@"):
        link = trusted[:host_end] + gap + glue + evil + "/x"
        text = f'<a href="{link}">open</a>'
        assert not all(domain(u) in TRUSTED for u in urls(text)), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see https://example.com\nThanks, Bob", ["https://example.com"]),
        ("https://github.com/a\n\nregards", ["https://github.com/a"]),
        ("https://zoom.us/j/1\t(call)", ["https://zoom.us/j/1"]),
        ("https://zoom.us/j/1.\n.\nBye", ["https://zoom.us/j/1"]),
        ("see https://zoom.us/j/1\u00a0today", ["https://zoom.us/j/1"]),  # a no-break space ends it
        ("https://zoom.us/j/1\u3000\u3000next", ["https://zoom.us/j/1"]),
    ],
)
def test_a_line_break_after_a_link_still_ends_it(text: str, expected: list[str]) -> None:
    assert urls(text) == expected


@PROPERTY
@given(
    EVIL_HOST,
    st.sampled_from(["&sol;", "&#47;", "&#x2F;", "&#x2f;", "&bsol;", "&#92;", "&quest;", "&num;"]),
    st.sampled_from(sorted(TRUSTED)),
)
def test_a_host_that_depends_on_html_decoding_is_untrusted(
    evil: str, entity: str, trusted: str
) -> None:
    # As HTML this is a link to <evil>; as plain text one to <trusted>: either way not trusted.
    link = f"https://{evil}{entity}@{trusted}/login"
    assert urls(f"click {link} now") == [link]
    assert domain(link) not in TRUSTED


def test_html_escapes_that_do_not_move_the_host_are_harmless() -> None:
    assert domain("https://docs.example.com/a?b=1&amp;c=2") == "example.com"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to Bob@Evil.COM", ["Bob@evil.com"]),
        ("write to bob@evil\uff0ecom", ["bob@evil.com"]),
        ("write to bob@evil\u3002com", ["bob@evil.com"]),
        ("write to bob@ev\u200bil.com", ["bob@evil.com"]),
        ("write to bob@\uff25\uff36\uff29\uff2c.com", ["bob@evil.com"]),
    ],
)
def test_emails_fold_look_alike_domains(text: str, expected: list[str]) -> None:
    from policylang.runtime.textfuncs import emails

    assert emails(text) == expected
