"""Text functions for catching prompt-injected content in what agents send.

Takes free text (an e-mail body, a chat message, a tool argument) and gives the
pieces a policy wants to test: the links in it (:func:`urls`), a link's host and
registrable domain (:func:`host`, :func:`domain`), the e-mail addresses in it
(:func:`emails`), :func:`regex_escape` to build literal RE2 patterns, and
:func:`normpath`, the canonical spelling of a file path.

Every failure raises :class:`policylang.errors.EvalError`; no raw Python
exception escapes a public function. All scanning uses RE2, so a hostile
message cannot make extraction take more than linear time.

Hosts are read the way a browser reads them, not with a hand-written pattern:
the link goes through the WHATWG URL parser ``ada-url`` (percent-decoding,
IDNA/UTS-46 mapping, lower case, unicode dots, IPv4 in any radix), and every
``xn--`` label must be valid IDNA 2008 according to the ``idna`` package. A
link whose host cannot be read that way is not dropped: its host and domain are
:data:`UNPARSABLE_HOST`, a marker that no real host can equal, so it is never in
an allow-list ("cannot read it" never becomes "no link").

What counts as a link (documented in docs/language.md, §14):

* ``scheme://...`` or ``scheme:\\\\...`` for any scheme (``https``, ``ws``,
  ``file``, ``sftp``, ``git+ssh`` ...), any letter case;
* ``http:``, ``https:``, ``ws:``, ``wss:``, ``ftp:`` followed directly by a
  host (browsers read ``https:evil.com`` as ``https://evil.com``);
* ``javascript:`` and ``vbscript:`` URLs (they have no host: untrusted);
* protocol-relative ``//host/...`` (the HTML-mail beacon ``src=//evil.com/p``)
  when the host has a dot, a port, credentials or brackets, or is a number;
* an IPv4 address followed by a port or a path (``10.0.0.1:8080``);
* a bare domain whose top-level domain is a real one (any ICANN TLD in the
  Public Suffix List, ``xn--`` forms included): with a path, query, fragment or
  port always (``evil.com/pay``, ``bit.ly/x``); without one when it starts with
  ``www.``, is a known shortener, or its TLD is not also a common file
  extension (so ``evil.zip`` is a link, ``setup.py`` is not).

Dots may be any of ``.`` U+3002 U+FF0E U+FF61, and labels may carry invisible
format characters (zero-width space, bidi controls): they do not hide a link.
E-mail addresses are not links, unless a path follows (``x@evil.com/p``).
Trailing punctuation (``.,;:!?'"``) and unbalanced closing brackets are trimmed,
as people write links in prose.

The registrable domain uses the Public Suffix List bundled with the
``publicsuffixlist`` package (no network access at run time). Without that
package a small built-in suffix set is used: correct for common domains, wrong
for rare multi-label suffixes.
"""

from __future__ import annotations

import html
import ipaddress
import re
import unicodedata
from functools import lru_cache
from typing import Any

import ada_url
import idna
import re2

from policylang.errors import EvalError

__all__ = ["UNPARSABLE_HOST", "domain", "emails", "host", "normpath", "regex_escape", "urls"]

UNPARSABLE_HOST = "<unparsable-host>"
"""Host and domain of a link that no browser could resolve: never equal to a real host.

The angle brackets cannot occur in a WHATWG host, so no allow-list of domains
can contain it by accident, and ``domain(u) in data.trusted_domains`` is false.
"""

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
# The Unicode classes make a large DFA; with RE2's default 8 MB budget it keeps
# flushing its state cache and slows to a crawl on long texts.
_OPTIONS.max_mem = 64 << 20

# Characters that end a link in text. RE2's \s is ASCII white space only, so the
# Unicode spaces (\p{Z}: no-break space, ideographic space ...) are added: no host
# can contain one (UTS-46 maps them to a space), so ending there hides nothing.
_STOP = r"\s\p{Z}<>\"`"
_DOT = r"[.\x{3002}\x{FF0E}\x{FF61}]"
# Browsers delete tabs and line breaks inside a URL (an href split over lines),
# so "https://example.com<LF>.evil.com" goes to example.com.evil.com. A link
# therefore runs on across them when the next line starts with a character that
# would change the host (a dot, @, :, /, %, ?, #); prose lines rarely do.
_MORE = r"(?:[^" + _STOP + r"]|[\t\n\r]+[.@:/\\%?#\x{3002}\x{FF0E}\x{FF61}])"
_LABEL_CH = r"[\p{L}\p{N}\p{M}\p{Cf}_-]"
_LABEL = r"[\p{L}\p{N}\p{Cf}]" + _LABEL_CH + "*"
_SPECIAL = "https?|wss?|ftp"
_URL_RE = re2.compile(
    # 1: any scheme followed by two slashes or backslashes and something more
    r"(?i)([a-z][a-z0-9+.\-]{0,31}:[/\\]{2}[/\\]*[^" + _STOP + r"/\\]" + _MORE + "*)"
    # 2: a special scheme followed directly by a host (https:evil.com, https:/evil.com)
    r"|(\b(?:" + _SPECIAL + r"):[/\\]?[^" + _STOP + r"/\\]" + _MORE + "*)"
    # 3: script URLs, which have no host at all
    r"|(\b(?:javascript|vbscript):[^" + _STOP + r"]+)"
    # 4: protocol-relative //host/...
    r"|([/\\]{2}[^" + _STOP + r"/\\?#]+" + _MORE + "*)"
    # 5, 6: an IPv4 address with a port or a path
    r"|(\b[0-9]{1,3}(?:\.[0-9]{1,3}){3})((?::[0-9]{1,5})?[/?#][^" + _STOP + r"]*|:[0-9]{1,5}\b)"
    # 7, 8: a bare domain and what follows it
    r"|((?:" + _LABEL + _DOT + r")+(?:[\p{L}\p{M}\p{Cf}]{2,63}|xn--[a-z0-9-]{1,59}))"
    r"((?::[0-9]{1,5})?[/?#][^" + _STOP + r"]*)?",
    _OPTIONS,
)  # compiled from str; scanned over UTF-8 bytes by _scan (see there)
_EMAIL_RE = re2.compile(
    r"([A-Za-z0-9._%+-]{1,64})@((?:[\p{L}\p{N}\p{Cf}](?:[\p{L}\p{N}\p{M}\p{Cf}-]*[\p{L}\p{N}\p{M}\p{Cf}])?"
    + _DOT
    + r")+[\p{L}\p{M}\p{Cf}]{2,63})",
    _OPTIONS,
)
_URL_BYTES_RE = re2.compile(_URL_RE.pattern.encode("utf-8"), _OPTIONS)
_EMAIL_BYTES_RE = re2.compile(_EMAIL_RE.pattern.encode("utf-8"), _OPTIONS)
# A scheme at the start of host()'s input; "example.com:8080/x" is a host and port, not one.
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?![0-9]+(?:[/?#]|$))")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_FORMAT_CHARS = re.compile(
    r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)
_UNICODE_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Used only when the publicsuffixlist package is missing: common generic TLDs
# and country codes.
_COMMON_TLDS = _words("""
com net org edu gov mil int info biz name pro mobi asia xyz online site top shop store tech
cloud app dev page link live news blog club space website email click win bid loan work today
world life support services agency digital network systems solutions company global zip mov
icu vip fun host press cam art ly io co ai me tv us uk de fr ru cn jp br it nl es au ca ch se
eu in ir kr tr ua za mx ar be at dk fi gr hu cz ro pt nz sg hk tw id vn th my ph pk ng ke gg
""")
# Real TLDs that are far more often a file extension: a bare "setup.py" is a
# file; with a path ("evil.py/x") or a scheme it is a link all the same.
_FILE_EXTENSION_TLDS = _words("py md sh pl rs so ps cc ml mk pm ts cs")
_SHORTENERS = _words("""
t.co bit.ly goo.gl tinyurl.com ow.ly is.gd buff.ly rebrand.ly cutt.ly t.ly shorturl.at
rb.gy tiny.cc bl.ink lnkd.in s.id v.gd qr.ae adf.ly bitly.com short.io
""")
_TRAILING = ".,;:!?'\"\t\n\r"
_CLOSERS = {")": "(", "]": "[", "}": "{"}

# Used only when the publicsuffixlist package is missing: common multi-label suffixes.
_FALLBACK_SUFFIXES = _words("""
co.uk org.uk ac.uk gov.uk me.uk ltd.uk plc.uk net.uk com.au net.au org.au edu.au gov.au
co.nz org.nz co.jp ne.jp or.jp ac.jp co.kr or.kr com.br net.br org.br com.cn net.cn org.cn
gov.cn com.mx com.ar com.tr com.tw com.hk com.sg com.my co.in net.in org.in co.za org.za
co.il ac.il com.ua com.pl com.es com.co github.io blogspot.com herokuapp.com appspot.com
""")

_psl: Any = None
_tlds: Any = None


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


def _icann_tlds() -> Any:
    """A PublicSuffixList that knows only real (ICANN) suffixes, or False without the package."""
    global _tlds
    if _tlds is None:
        try:
            from publicsuffixlist import PublicSuffixList
        except ImportError:
            _tlds = False
        else:
            _tlds = PublicSuffixList(accept_unknown=False, only_icann=True)
    return _tlds


@lru_cache(maxsize=4096)
def _is_tld(label: str) -> bool:
    """Whether a (normalised, lower-case) label is a top-level domain that exists."""
    psl = _icann_tlds()
    if not psl:
        return label in _COMMON_TLDS or label.startswith("xn--")
    try:
        return psl.publicsuffix("x." + label) is not None
    except Exception:  # noqa: BLE001 - a label the list cannot even encode is no TLD
        return False


def _plain(name: str) -> str:
    """A host as written in text, with format characters gone and dots and width folded."""
    return (
        unicodedata.normalize("NFKC", _FORMAT_CHARS.sub("", name)).translate(_UNICODE_DOTS).lower()
    )


def _scan(pattern: Any, fn: str, text: str) -> tuple[bytes, list[Any]]:
    """Every match of ``pattern`` in ``text``, found in its UTF-8 bytes.

    The re2 module maps byte offsets back to characters on every match of a
    str by walking the text, which makes a text with many matches quadratic;
    on bytes each match costs only its own length. Groups are bytes, offsets
    byte offsets: :func:`_char_before` and :func:`_char_at` read around them.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise EvalError(f"{fn}: the text is not valid Unicode (lone surrogate)") from None
    return data, list(pattern.finditer(data))


def _char_before(data: bytes, i: int) -> str:
    """The character that ends just before byte ``i`` (a space at the start)."""
    start = i - 1
    while start > 0 and data[start] & 0xC0 == 0x80:
        start -= 1
    return data[start:i].decode("utf-8") if i > 0 else " "


def _char_at(data: bytes, i: int) -> str:
    """The character that starts at byte ``i`` (a space at the end)."""
    end = i + 1
    while end < len(data) and data[end] & 0xC0 == 0x80:
        end += 1
    return data[i:end].decode("utf-8") if i < len(data) else " "


def _bare_domain_ok(data: bytes, start: int, end: int, hostname: str, rest: str) -> bool:
    """Whether a scheme-less domain match is a link rather than prose, a file or an e-mail."""
    before = _char_before(data, start)
    after = _char_at(data, end)
    path = _trim_trailing(rest)
    if before == "@":  # an e-mail domain, unless a path follows: x@evil.com/p is userinfo
        return bool(path)
    # After "/" or "\\" it is a path segment ("docs/evil.com"); after a dot, dash or
    # underscore (which no label starts with) it still is a link: "wait...evil.com/x".
    if before in "/\\" or before.isalnum() or after == "@":
        return False
    name = _plain(hostname)
    tld = name.rsplit(".", 1)[-1]
    if not _is_tld(tld):
        return False
    if path or name.startswith("www.") or name in _SHORTENERS:
        return True
    return tld not in _FILE_EXTENSION_TLDS


def _protocol_relative_ok(data: bytes, start: int, link: str) -> bool:
    """``//host/p`` is a link when it follows a separator and its host looks like one."""
    before = _char_before(data, start)
    if before.isalnum() or before in ":/\\.-_%+":
        return False
    authority = re.split(r"[/\\?#]", link[2:], maxsplit=1)[0]
    return (
        any(c in authority for c in ".:@[%\u3002\uff0e\uff61")
        or re.fullmatch(r"(?i)0x[0-9a-f]+|[0-9]+", authority) is not None
    )


def urls(text: str) -> list[str]:
    """Every link in free text, in order of appearance, each once, as written.

    A link is kept even when its host cannot be read (``host`` then gives
    :data:`UNPARSABLE_HOST`): dropping it would let an unreadable link pass an
    ``all(...)`` allow-list test as if the text had no link.
    """
    _want_str("urls", text)
    found: list[str] = []
    seen: set[str] = set()
    data, matches = _scan(_URL_BYTES_RE, "urls", text)
    for m in matches:
        # Spans straight from the match: re2's group() re-checks the group count
        # on every call, which dominated the cost of a text with many links.
        spans = getattr(m, "_spans", None) or [m.span(i) for i in range(9)]
        start, end = spans[0]
        if spans[1][0] >= 0 or spans[2][0] >= 0 or spans[3][0] >= 0:
            url = _trim_trailing(data[start:end].decode("utf-8"))
        elif spans[4][0] >= 0:
            url = _trim_trailing(data[start:end].decode("utf-8"))
            if not _protocol_relative_ok(data, start, url):
                continue
        elif spans[5][0] >= 0:
            url = _trim_trailing(data[start:end].decode("utf-8"))
        else:
            host_end = spans[7][1]
            name = data[start:host_end].decode("utf-8")
            if not _bare_domain_ok(data, start, host_end, name, data[host_end:end].decode("utf-8")):
                continue
            url = _trim_trailing(data[start:end].decode("utf-8"))
        if url and url not in seen:
            seen.add(url)
            found.append(url)
    return found


def host(url: str) -> str:
    """The host of a link as a browser would contact it, in ASCII lower case.

    Read with the WHATWG URL rules: credentials, port, path and a trailing
    dot are dropped, percent-escapes decoded, IDN labels turned into their
    ``xn--`` form, IPv4 written in dotted decimal, an IPv6 literal returned
    without brackets. Scheme-less input ("www.x.com/a", "//cdn.x.net/p") is
    read as http, the way a browser's address bar does. Text with a host a
    browser cannot resolve gives :data:`UNPARSABLE_HOST`; empty text is an error.
    """
    _want_str("host", url)
    text = url.strip()
    if not text:
        raise EvalError(f"no host in {_quote(url)}")
    try:
        # Only short links are cached, so a flood of long ones cannot grow memory.
        return _cached_host(text) if len(text) <= _CACHED_LENGTH else _host(text)
    except UnicodeEncodeError:
        raise EvalError("host: the text is not valid Unicode (lone surrogate)") from None


_CACHED_LENGTH = 512


def _host(text: str) -> str:
    """The host of ``text``; the marker when it depends on whether the text is read as HTML.

    In an HTML body ``https://evil.com&sol;@example.com`` is a link to evil.com
    (``&sol;`` is "/"), in plain text one to example.com. Policies do not know
    which the recipient's client does, so a link whose host changes when its
    character references are decoded is unreadable, hence untrusted.
    """
    name = _plain_host(text)
    if "&" in text:
        decoded = html.unescape(text)
        if decoded != text and _plain_host(decoded) != name:
            return UNPARSABLE_HOST
    return name


def _plain_host(text: str) -> str:
    m = _SCHEME_RE.match(text)
    if m is None:
        link = "http:" + text if text[:2] in ("//", "\\\\", "/\\", "\\/") else "http://" + text
    elif m.group(1).lower() in _SPECIAL_SCHEMES:
        link = text
    elif text[m.end() : m.end() + 2] in ("//", "\\\\", "/\\", "\\/"):
        # Other schemes (ws-like sftp, git+ssh) keep an opaque, un-normalised host in
        # WHATWG terms; read their authority with the http rules to normalise it.
        link = "http:" + text[m.end() :]
    else:
        return UNPARSABLE_HOST  # mailto:, javascript:, data: ... have no host to trust
    try:
        name = ada_url.parse_url(link, attributes=("hostname",))["hostname"]
    except ValueError:
        return UNPARSABLE_HOST
    if name.startswith("["):
        return str(ipaddress.IPv6Address(name[1:-1]))
    if name.endswith("."):
        name = name[:-1]
    return name if _valid_dns_name(name) else UNPARSABLE_HOST


_cached_host = lru_cache(maxsize=8192)(_host)


def _valid_dns_name(name: str) -> bool:
    """Labels non-empty and at most 63 long, the name at most 253, every xn-- label valid IDNA."""
    if not name or len(name) > 253:
        return False
    for label in name.split("."):
        if not label or len(label) > 63:
            return False
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError, ValueError):
                return False
    return True


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
    An IP address, or a host that is itself a public suffix, is returned as is,
    and so is :data:`UNPARSABLE_HOST`. The result is ASCII (``xn--`` for IDNs).
    """
    name = host(url)
    return _domain(name)


@lru_cache(maxsize=8192)
def _domain(name: str) -> str:
    if name == UNPARSABLE_HOST:
        return name
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    psl = _suffix_list()
    if psl:
        try:
            found = psl.privatesuffix(name)
        except Exception:  # noqa: BLE001 - malformed IDN labels
            found = None
        return str(found) if found else name
    return _fallback_domain(name)


def emails(text: str) -> list[str]:
    """E-mail addresses in text, in order, each once, the domain part in one spelling.

    The domain is lower-cased with fullwidth letters, the dots U+3002, U+FF0E,
    U+FF61 and invisible format characters folded (``bob@Evil\uff0ecom`` is
    ``bob@evil.com``), so a look-alike spelling cannot hide an address from a
    rule that checks every address against a contact list.
    """
    _want_str("emails", text)
    found: list[str] = []
    seen: set[str] = set()
    for m in _scan(_EMAIL_BYTES_RE, "emails", text)[1]:
        local = m.group(1).decode("ascii").strip(".")
        if not local or ".." in local:
            continue
        address = f"{local}@{_plain(m.group(2).decode('utf-8'))}"
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


_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _normpath(path: str) -> str:
    absolute = path.startswith("/")
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not absolute:
                parts.append("..")  # a relative path may climb; "/.." is "/"
            continue
        parts.append(segment)
    joined = "/".join(parts)
    return "/" + joined if absolute else joined or "."


_cached_normpath = lru_cache(maxsize=8192)(_normpath)


def normpath(path: str) -> str:
    """The canonical spelling of a file path, computed without touching any file system.

    Repeated slashes become one (a leading ``//`` too, unlike ``os.path``), ``.``
    segments go, ``..`` removes the segment before it (``/..`` is ``/``), and a
    trailing slash is dropped, so ``//etc/./x/../passwd/`` is ``/etc/passwd``.
    Everything else is kept as written: ``~`` is not expanded (``~/x`` stays a
    relative path) and letter case is kept. Spellings whose meaning depends on
    who reads them are errors, which fail closed: a NUL byte (C truncates the
    path there), a backslash (a separator on Windows, a plain character on
    POSIX) and a percent-escape ``%XX`` (decoded by some tools, not by others).
    """
    _want_str("normpath", path)
    if "\x00" in path:
        raise EvalError(f"normpath: the path {_quote(path)} contains a NUL byte")
    if "\\" in path:
        raise EvalError(
            f"normpath: the path {_quote(path)} contains a backslash; write paths with '/'"
        )
    if _PERCENT_ESCAPE.search(path):
        raise EvalError(
            f"normpath: the path {_quote(path)} contains a percent-escape (%XX); "
            "paths are checked as written, not URL-decoded"
        )
    return _cached_normpath(path) if len(path) <= _CACHED_LENGTH else _normpath(path)
