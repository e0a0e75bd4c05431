"""Tests for policylang.runtime.textfuncs: links, hosts, domains, e-mails, literal regexes."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policylang.errors import EvalError
from policylang.runtime import celops, textfuncs
from policylang.runtime.textfuncs import domain, emails, host, regex_escape, urls

FAST = settings(max_examples=150, deadline=None)
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20)
LABEL = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
WORD = st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True)


# --------------------------------------------------------------------------- urls


def test_urls_in_prose() -> None:
    text = (
        "Hi! See https://example.com/a?b=1. Also (https://en.wikipedia.org/wiki/Foo_(bar)) "
        "and www.x.com/a, or bit.ly/x; pay at evil.com/pay! [doc](http://t.co/abc) "
        "'https://q.io/x' ftp://files.example.org/f münchen.de/x again https://example.com/a?b=1"
    )
    assert urls(text) == [
        "https://example.com/a?b=1",
        "https://en.wikipedia.org/wiki/Foo_(bar)",
        "www.x.com/a",
        "bit.ly/x",
        "evil.com/pay",
        "http://t.co/abc",
        "https://q.io/x",
        "ftp://files.example.org/f",
        "münchen.de/x",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "e.g. this",
        "i.e. that",
        "pi is 3.14",
        "see report.pdf",
        "run setup.py now",
        "v1.2.3",
        "mail bob@evil.com",
        "john.smith@example.co.uk",
        "http://",
        "path/to/file.txt",
        "node.js",
    ],
)
def test_urls_ignores_non_links(text: str) -> None:
    assert urls(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("send to evil.com.", ["evil.com"]),
        ("short: t.co", ["t.co"]),
        ("visit WWW.Example.ORG!", ["WWW.Example.ORG"]),
        ("go evil.ru/x?y=1#z)", ["evil.ru/x?y=1#z"]),
        ("at example.com:8080/admin", ["example.com:8080/admin"]),
        ("<https://a.example/x>", ["https://a.example/x"]),
        ('"http://x.io/a"', ["http://x.io/a"]),
    ],
)
def test_urls_edges(text: str, expected: list[str]) -> None:
    assert urls(text) == expected


@FAST
@given(
    st.lists(WORD, max_size=4),
    st.sampled_from(["http", "https"]),
    st.lists(LABEL, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "de"]),
    LABEL,
    st.lists(WORD, max_size=4),
)
def test_urls_finds_a_link_anywhere_in_prose(
    before: list[str], scheme: str, labels: list[str], tld: str, path: str, after: list[str]
) -> None:
    link = f"{scheme}://{'.'.join(labels)}.{tld}/{path}"
    text = " ".join([*before, link + ".", *after])
    assert link in urls(text)
    assert host(link) == f"{'.'.join(labels)}.{tld}"


@FAST
@given(TEXT)
def test_urls_are_substrings_and_unique(text: str) -> None:
    found = urls(text)
    assert len(found) == len(set(found)) and all(u in text for u in found)


def test_urls_is_linear_on_hostile_input() -> None:
    text = "a." * 50_000 + " " + "http://" + "x" * 100_000
    start = time.perf_counter()
    urls(text)
    assert time.perf_counter() - start < 2.0


def test_urls_type_error() -> None:
    with pytest.raises(EvalError, match="urls expects a string, got int"):
        urls(5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- host and domain


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pw@WWW.Example.com:8080/x?y#z", "www.example.com"),
        ("www.x.com/a", "www.x.com"),
        ("//cdn.example.net/lib.js", "cdn.example.net"),
        ("http://[::1]:80/", "::1"),
        ("https://Bücher.Example/x", "xn--bcher-kva.example"),
        ("example.com.", "example.com"),
        ("HTTP://EVIL.COM\\@good.com", "evil.com"),
    ],
)
def test_host(url: str, expected: str) -> None:
    assert host(url) == expected


@pytest.mark.parametrize("url", ["", "   "])
def test_host_errors(url: str) -> None:
    with pytest.raises(EvalError, match="host in"):
        host(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://",
        "hello world",
        "http://[zz]/",
        "mailto:a@b.com",
        "https://a..b.com/",
        "http://x:99999/",
    ],
)
def test_host_unreadable_is_the_untrusted_marker(url: str) -> None:
    # Changed deliberately: a link no browser can resolve is untrusted, not an error.
    assert host(url) == domain(url) == textfuncs.UNPARSABLE_HOST


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.b.example.co.uk/x", "example.co.uk"),
        ("https://www.example.com", "example.com"),
        ("alice.github.io/page", "alice.github.io"),
        ("http://127.0.0.1:8080/", "127.0.0.1"),
        ("http://localhost/", "localhost"),
        ("bit.ly/x", "bit.ly"),
        ("https://mail.münchen.de/", "xn--mnchen-3ya.de"),
    ],
)
def test_domain(url: str, expected: str) -> None:
    assert domain(url) == expected


def test_domain_fallback_without_public_suffix_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textfuncs, "_psl", False)
    assert domain("https://a.b.example.co.uk/x") == "example.co.uk"
    assert domain("https://a.b.example.com/x") == "example.com"


# --------------------------------------------------------------------------- emails


def test_emails() -> None:
    text = (
        "Write to Bob.Smith@Evil.COM, cc: alice+tag@sub.example.org; not me@localhost "
        "or @handle or .dot.@x.io; again bob.smith@evil.com. and ü@münchen.de"
    )
    assert emails(text) == [
        "Bob.Smith@evil.com",
        "alice+tag@sub.example.org",
        "dot@x.io",
        "bob.smith@evil.com",
    ]


@FAST
@given(
    st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,10}[a-z0-9]", fullmatch=True),
    st.lists(LABEL, min_size=1, max_size=3),
    st.sampled_from(["com", "ORG", "io"]),
)
def test_emails_found_and_never_urls(local: str, labels: list[str], tld: str) -> None:
    address = f"{local}@{'.'.join(labels)}.{tld}"
    text = f"contact {address}, thanks"
    if ".." not in local:
        assert emails(text) == [f"{local}@{'.'.join(labels)}.{tld.lower()}"]
    assert all("@" not in u and not address.endswith(u) for u in urls(text))


# --------------------------------------------------------------------------- regex_escape


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT)
def test_regex_escape_means_contains_literally(haystack: str, needle: str) -> None:
    assert celops.matches(haystack, regex_escape(needle)) == (needle in haystack)
    assert celops.matches(haystack + needle, regex_escape(needle))


def test_regex_escape_examples() -> None:
    assert celops.matches("price: $5.00 (net)", regex_escape("$5.00 (net)"))
    assert not celops.matches("price: $5000 net", regex_escape("$5.00"))
    assert regex_escape("") == "" and celops.regex_problem(regex_escape("a(b[c\\")) is None


def test_domain_uses_the_public_suffix_list_when_installed() -> None:
    pytest.importorskip("publicsuffixlist")
    assert domain("https://shop.example.gov.bd/x") == "example.gov.bd"  # wildcard rule *.bd
