"""Text functions for catching prompt-injected content in what agents send.

Takes free text (an e-mail body, a chat message, a tool argument) and gives the
pieces a policy wants to test: the links in it (:func:`urls`), a link's host and
registrable domain (:func:`host`, :func:`domain`), the e-mail addresses in it
(:func:`emails`), and :func:`regex_escape` to build literal RE2 patterns.

Every failure raises :class:`policylang.errors.EvalError`; no raw Python
exception escapes a public function. All scanning uses RE2, so a hostile
message cannot make extraction take more than linear time.

What counts as a link (a deliberate, documented heuristic):

* anything starting with ``http://``, ``https://`` or ``ftp://``;
* ``www.`` followed by a domain;
* a bare domain followed by a path, query or fragment (``evil.com/pay``,
  ``bit.ly/x``) when its top-level domain is a two-letter country code, an
  ``xn--`` IDN code, or one of the common generic TLDs bundled below;
* a bare domain with no path when its TLD is in the bundled common set (which
  leaves out country codes that clash with file extensions, such as ``.py``,
  ``.md``, ``.sh``, ``.pl``) or it is a known link shortener (``t.co``).

So ``e.g.``, ``3.14`` and ``report.pdf`` are not links, while ``evil.com`` is.
E-mail addresses are never links. Trailing punctuation (``.,;:!?'"``) and
unbalanced closing brackets are trimmed, as people write links in prose.

The registrable domain uses the Public Suffix List bundled with the
``publicsuffixlist`` package (no network access at run time). Without that
package a small built-in suffix set is used: correct for common domains, wrong
for rare multi-label suffixes.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import re2

from policylang.errors import EvalError

__all__ = ["domain", "emails", "host", "regex_escape", "urls"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

_LABEL = r"[\p{L}\p{N}](?:[\p{L}\p{N}_-]*[\p{L}\p{N}])?"
_URL_RE = re2.compile(
    r"(?i)(\b(?:https?|ftp)://[^\s<>\"`]+)"
    r"|((?:" + _LABEL + r"\.)+(?:\p{L}{2,63}|xn--[a-z0-9-]{1,59}))"
    r"((?::[0-9]{1,5})?[/?#][^\s<>\"`]*)?",
    _OPTIONS,
)
_EMAIL_RE = re2.compile(
    r"([A-Za-z0-9._%+-]{1,64})@((?:[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?\.)+\p{L}{2,63})",
    _OPTIONS,
)
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_HOST_RE = re.compile(r"[\w.-]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Generic TLDs people meet in links, plus popular country codes that do not
# clash with file extensions. Two-letter codes with a path are accepted anyway.
_COMMON_TLDS = _words("""
com net org edu gov mil int info biz name pro mobi asia xyz online site top shop store tech
cloud app dev page link live news blog club space website email click win bid loan work today
world life email support services agency digital network systems solutions company global
icu vip fun host press cam art ly io co ai me tv us uk de fr ru cn jp br it nl es au ca ch se
eu in ir kr tr ua za mx ar be at dk fi gr hu cz ro pt nz sg hk tw id vn th my ph pk ng ke gg
""")
_SHORTENERS = _words("""
t.co bit.ly goo.gl tinyurl.com ow.ly is.gd buff.ly rebrand.ly cutt.ly t.ly shorturl.at
rb.gy tiny.cc bl.ink lnkd.in s.id v.gd qr.ae adf.ly bitly.com short.io
""")
_TRAILING = ".,;:!?'\""
_CLOSERS = {")": "(", "]": "[", "}": "{"}

# Used only when the publicsuffixlist package is missing: common multi-label suffixes.
_FALLBACK_SUFFIXES = _words("""
co.uk org.uk ac.uk gov.uk me.uk ltd.uk plc.uk net.uk com.au net.au org.au edu.au gov.au
co.nz org.nz co.jp ne.jp or.jp ac.jp co.kr or.kr com.br net.br org.br com.cn net.cn org.cn
gov.cn com.mx com.ar com.tr com.tw com.hk com.sg com.my co.in net.in org.in co.za org.za
co.il ac.il com.ua com.pl com.es com.co github.io blogspot.com herokuapp.com appspot.com
""")

_psl: Any = None


def _want_str(fn: str, v: object) -> str:
    if type(v) is not str:
        raise EvalError(f"{fn} expects a string, got {type(v).__name__}")
    return v


def _quote(text: str) -> str:
    short = text if len(text) <= 80 else text[:77] + "..."
    return "'" + short.replace("'", "\\'") + "'"


def _trim_trailing(url: str) -> str:
    """Drop sentence punctuation and closing brackets that the link did not open."""
    while url:
        last = url[-1]
        if last in _TRAILING or (last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last])):
            url = url[:-1]
        else:
            break
    return url


def _bare_domain_ok(text: str, start: int, end: int, hostname: str, rest: str) -> bool:
    """Whether a scheme-less domain match is a link rather than prose, a file or an e-mail."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before in "@/\\.-_" or before.isalnum() or after == "@":
        return False
    hostname = hostname.lower()
    tld = hostname.rsplit(".", 1)[-1]
    if hostname.startswith("www.") or hostname in _SHORTENERS or tld in _COMMON_TLDS:
        return True
    path = _trim_trailing(rest)
    return bool(path) and (len(tld) == 2 or tld.startswith("xn--"))


def urls(text: str) -> list[str]:
    """Every link in free text, in order of appearance, each once."""
    _want_str("urls", text)
    found: list[str] = []
    seen: set[str] = set()
    try:
        for m in _URL_RE.finditer(text):
            if m.group(1):
                url = _trim_trailing(m.group(1))
                try:
                    host(url)
                except EvalError:
                    continue
            else:
                rest = m.group(3) or ""
                if not _bare_domain_ok(text, m.start(), m.end(2), m.group(2), rest):
                    continue
                url = _trim_trailing(m.group(2) + rest)
            if url not in seen:
                seen.add(url)
                found.append(url)
    except UnicodeEncodeError:
        raise EvalError("urls: the text is not valid Unicode (lone surrogate)") from None
    return found


def host(url: str) -> str:
    """Lower-cased host name of a link, without scheme, credentials or port.

    Accepts scheme-less input ("www.x.com/a" -> "www.x.com") because links in
    prose often have none; an IPv6 literal is returned without brackets.
    """
    _want_str("host", url)
    rest = url.strip()
    m = _SCHEME_RE.match(rest)
    if m:
        rest = rest[m.end() :]
    elif rest.startswith("//"):
        rest = rest[2:]
    authority = re.split(r"[/?#\\]", rest, maxsplit=1)[0].rpartition("@")[2]
    if authority.startswith("["):
        name = authority[1 : authority.find("]")] if "]" in authority else ""
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            raise EvalError(f"no valid host in {_quote(url)}") from None
    name = authority.split(":", 1)[0].rstrip(".").lower()
    if not name or not _HOST_RE.fullmatch(name) or ".." in name or name.startswith("."):
        raise EvalError(f"no host in {_quote(url)}")
    return name


def _suffix_list() -> Any:
    global _psl
    if _psl is None:
        try:
            from publicsuffixlist import PublicSuffixList
        except ImportError:
            _psl = False
        else:
            _psl = PublicSuffixList()
    return _psl


def _fallback_domain(name: str) -> str:
    labels = name.split(".")
    if len(labels) >= 3 and ".".join(labels[-2:]) in _FALLBACK_SUFFIXES:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def domain(url: str) -> str:
    """The registrable domain (eTLD+1): ``https://a.b.example.co.uk/x`` -> ``example.co.uk``.

    Policies allow-list organisations, not every subdomain, and comparing the
    last two labels is wrong for ``co.uk``-style suffixes; private suffixes such
    as ``github.io`` count too, so ``alice.github.io`` is not ``bob.github.io``.
    An IP address, or a host that is itself a public suffix, is returned as is.
    """
    name = host(url)
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    psl = _suffix_list()
    if psl:
        try:
            found = psl.privatesuffix(name)
        except Exception:  # malformed IDN labels
            found = None
        return str(found) if found else name
    return _fallback_domain(name)


def emails(text: str) -> list[str]:
    """E-mail addresses in text, domain part lower-cased, in order, each once."""
    _want_str("emails", text)
    found: list[str] = []
    seen: set[str] = set()
    try:
        matches = list(_EMAIL_RE.finditer(text))
    except UnicodeEncodeError:
        raise EvalError("emails: the text is not valid Unicode (lone surrogate)") from None
    for m in matches:
        local = m.group(1).strip(".")
        if not local or ".." in local:
            continue
        address = f"{local}@{m.group(2).lower()}"
        if address not in seen:
            seen.add(address)
            found.append(address)
    return found


def regex_escape(s: str) -> str:
    """Escape s so that ``matches(x, regex_escape(s))`` means "x contains s" under RE2."""
    _want_str("regex_escape", s)
    try:
        return str(re2.escape(s))
    except UnicodeEncodeError:
        raise EvalError("regex_escape: the text is not valid Unicode (lone surrogate)") from None
