"""How a person reads a tool name: skeletons, near misses and bounded suggestions.

Every name a policy can write (``tool payments.send``, ``deny payments.*``) is
plain ASCII (letters, digits, ``_``, ``-``, ``.``, ``*``), but a request may name
any string. ``Payments.send``, ``payments.send\\t``, ``payments/send``,
``pаyments.send`` (a Cyrillic ``а``) and ``pay\\u200bments.send`` all read as
``payments.send`` to a person, yet none of them *is* ``payments.send``: under
``default allow`` each would be an undeclared tool that skips every rule of the
real one. The engine therefore compares a name's *skeleton* with the skeletons
it computed at load time:

* the skeleton is NFKD (compatibility forms and accents split off), without invisible characters (controls, format and
  zero-width characters, combining marks, unassigned code points),
  with look-alike letters mapped to the Latin letter they imitate (Unicode's
  confusables table, via ``confusable_homoglyphs``), case folded, the digits
  ``0``/``1`` and the letter ``i`` folded to ``o``/``l``/``l``, and every run of
  other punctuation or whitespace read as one separator ``.`` (``/``, ``_``,
  ``-``, ``:``, a space...), none at either end;
* an undeclared name whose skeleton, with or without its separators, is the
  skeleton of a declared tool is a **near miss**;
* an undeclared name that a rule's pattern covers *as read* (skeleton against
  the pattern's skeleton) but not *as written* is a near miss too, so
  ``deny admin.*`` cannot be walked around with ``Admin.delete`` or
  ``admin/delete``.

Near misses are denied ``unknown_tool`` whatever the default. The index is
built once per loaded policy; a decision costs one skeleton (linear in the
name) and a dict look-up, plus one precompiled regex match when the policy has
patterns that undeclared names can match. Suggestions ("did you mean") for
other unknown names look at a bounded set of candidates, and the engine only
computes them when a decision's message is read.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from policylang.language.policy import Policy, tool_matches

# Categories a reader does not see: controls, format (zero-width, bidi), surrogates,
# private use, unassigned and combining marks. Spaces read as separators.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Mn", "Me"})
_SPACES = frozenset({"Zs", "Zl", "Zp"})
_SUGGEST_CANDIDATES = 32  # declared names one suggestion compares at most (difflib is ~13 µs each)


def _ascii_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for code in range(128):
        ch = chr(code)
        if ch.isalnum():
            table[code] = ch.lower()
        elif ch == "*":
            table[code] = "*"
        elif ch.isspace():
            table[code] = "."  # a space reads as a gap between words
        elif code < 32 or code == 127:
            table[code] = None  # other controls: invisible
        else:
            table[code] = "."  # any other punctuation separates words
    table.update({ord("0"): "o", ord("1"): "l", ord("i"): "l", ord("I"): "l"})
    return table


_ASCII = _ascii_table()
_SEPS = re.compile(r"\.{2,}")
_LOOKALIKE: dict[str, str] | None = None
# Latin letters that Unicode's table maps only to other non-ASCII letters, yet read as ASCII.
_LATIN_EXTRA = {
    "ĸ": "k",
    "ᴋ": "k",
    "ı": "l",
    "ȷ": "j",
    "ɑ": "a",
    "ɡ": "g",
    "ʟ": "l",
    "ɪ": "l",
    "ᴏ": "o",
    "ᴄ": "c",
    "ᴜ": "u",
    "ᴠ": "v",
    "ᴡ": "w",
    "ᴢ": "z",
    "ꜱ": "s",
}


def _lookalikes() -> dict[str, str]:
    """Non-ASCII character → the ASCII letters it imitates, from Unicode's confusables data.

    Read once per process (≈40 ms), when the first policy with tools or
    patterns loads, so that deciding never imports a module or opens a file.
    """
    global _LOOKALIKE
    if _LOOKALIKE is None:
        from confusable_homoglyphs.confusables import confusables_data

        def ascii_of(ch: str) -> str | None:
            glyphs = [str(g.get("c", "")) for g in confusables_data.get(ch, ())]
            for c in glyphs:
                if c and c.isascii() and c.isalnum() and len(c) <= 3:
                    return c
            for c in (ch, *glyphs):  # e.g. Greek kappa → Latin kra (not ASCII) → k
                if c in _LATIN_EXTRA:
                    return _LATIN_EXTRA[c]
            return None

        table: dict[str, str] = {}
        for ch in confusables_data:
            if len(ch) == 1 and not ch.isascii():
                found = ascii_of(ch)
                if found is not None:
                    table[ch] = found
        _LOOKALIKE = table
    return _LOOKALIKE


def skeleton(name: str, *, keep_stars: bool = False) -> str:
    """``name`` as a person reads it (see the module docstring); ``.`` is the one separator."""
    if not name.isascii():
        name = unicodedata.normalize("NFKD", name)  # "à" → "a" + a mark (dropped)
        if not name.isascii():
            look = _lookalikes()
            parts = []
            for ch in name:
                if ch.isascii():
                    parts.append(ch)
                elif (cat := unicodedata.category(ch)) in _INVISIBLE:
                    continue
                elif cat in _SPACES:
                    parts.append(" ")
                else:
                    mapped = look.get(ch)
                    parts.append(mapped if mapped is not None else ch.casefold())
            name = "".join(parts)
    s = name.translate(_ASCII)
    if not keep_stars:
        s = s.replace("*", ".")
    if ".." in s:
        s = _SEPS.sub(".", s)
    return s.strip(".") if not keep_stars else s


def shown(name: str) -> str:
    """``name`` for a message: invisible characters written as escapes, so a reader sees them."""
    if name.isascii() and name.isprintable():
        return name
    return "".join(
        ch
        if ch.isprintable() and unicodedata.category(ch) not in _INVISIBLE
        else ch.encode("unicode_escape").decode("ascii")
        for ch in name
    )


def _pattern_regex(pattern: str, loose: bool = False) -> str:
    """A regex over skeletons for what ``pattern`` covers as read (``*`` spans anything).

    ``loose``: over skeletons without separators, for names with invisible
    characters or spaces, where a person cannot tell where a word ends.
    """
    pieces = skeleton(pattern, keep_stars=True).split("*")
    pieces[0], pieces[-1] = pieces[0].lstrip("."), pieces[-1].rstrip(".")
    if loose:
        pieces = [p.replace(".", "") for p in pieces]
    return ".*".join(re.escape(p) for p in pieces)


def _either(regexes: Iterable[re.Pattern[str]]) -> re.Pattern[str] | None:
    """One regex that matches when any of ``regexes`` does: one match per call, not one per pattern."""
    joined = "|".join(f"(?:{rx.pattern})" for rx in regexes)
    return re.compile(joined, re.DOTALL) if joined else None


class NameIndex:
    """Near misses and suggestions for one policy, computed once when it loads."""

    def __init__(self, policy: Policy):
        self.names = tuple(policy.tools)
        self.exact: dict[str, str] = {}  # skeleton (with and without separators) → a declared name
        self.namespaces: dict[str, list[str]] = {}  # first segment → declared names (bounded lists)
        for name in self.names:
            sk = skeleton(name)
            self.exact.setdefault(sk, name)
            self.exact.setdefault(sk.replace(".", ""), name)
            for key in {sk.split(".", 1)[0], sk.rsplit(".", 1)[-1]}:
                bucket = self.namespaces.setdefault(key, [])
                if len(bucket) < _SUGGEST_CANDIDATES:
                    bucket.append(name)
        # Patterns an undeclared name can be covered by: globs, and exact names of undeclared tools.
        declared = set(self.names)
        seen: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}
        patterns = [tp for stmt in policy.rules for tp in stmt.tools]
        patterns += [tp for lim in policy.limits for tp in lim.tools]
        for tp in patterns:
            if tp.pattern.strip("*") == "":
                continue  # covers every name as written: nothing to walk around
            if tp.pattern not in seen and (tp.is_glob or tp.pattern not in declared):
                seen[tp.pattern] = (
                    re.compile(_pattern_regex(tp.pattern), re.DOTALL),
                    re.compile(_pattern_regex(tp.pattern, True), re.DOTALL),
                )
        self.patterns = tuple((p, strict) for p, (strict, _) in seen.items())
        self.loose = tuple((p, loose) for p, (_, loose) in seen.items())
        self.any_pattern = _either(rx for _, rx in self.patterns)
        self.any_loose = _either(rx for _, rx in self.loose)
        self.active = bool(self.exact or self.patterns)  # else no name can be a near miss
        if self.active:
            _lookalikes()  # read the table now: deciding never opens a file or imports

    def near_miss(self, tool: str) -> tuple[str, str] | None:
        """``(what it reads like, why)`` when an undeclared ``tool`` reads like something it is not."""
        sk = skeleton(tool)
        if not sk:
            return "", "no name at all (it has no visible characters)"
        hit = self.exact.get(sk)
        if hit is None and "." in sk:
            hit = self.exact.get(sk.replace(".", ""))
        if hit is not None:
            return hit, f"the declared tool '{hit}'"
        if self.any_pattern is not None:
            found = self._covered(tool, sk, self.any_pattern, self.patterns)
            if found is None and (" " in tool or not tool.isprintable()):
                found = self._covered(tool, sk.replace(".", ""), self.any_loose, self.loose)
            if found is not None:
                return found, f"a tool the pattern '{found}' covers"
        return None

    @staticmethod
    def _covered(
        tool: str,
        sk: str,
        anyone: re.Pattern[str] | None,
        patterns: tuple[tuple[str, re.Pattern[str]], ...],
    ) -> str | None:
        """A pattern that covers ``tool`` as read (``sk``) but not as written."""
        if anyone is None or anyone.fullmatch(sk) is None:
            return None
        for pattern, rx in patterns:
            if rx.fullmatch(sk) and not tool_matches(pattern, tool):
                return pattern
        return None

    def suggest(self, tool: str) -> str | None:
        """A declared name close to ``tool``, comparing at most a bounded set of candidates."""
        sk = skeleton(tool)
        hit = self.exact.get(sk) or self.exact.get(sk.replace(".", ""))
        if hit is not None:
            return hit
        candidates: list[str] = []
        for key in (sk.split(".", 1)[0], sk.rsplit(".", 1)[-1]):
            candidates.extend(self.namespaces.get(key, ()))
        if not candidates and len(self.names) <= _SUGGEST_CANDIDATES:
            candidates = list(self.names)
        close = difflib.get_close_matches(tool, _unique(candidates), n=1, cutoff=0.6)
        return close[0] if close else None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


class UnknownToolText:
    """The reasons, rules and message of an ``unknown_tool`` deny, composed when first read.

    A :class:`~policylang.runtime.decision.Decision` reads its reasons, rules
    and message from ``_out`` when it has none of its own; this object stands
    in for the fused path's shared tuple, so the "did you mean" search runs only
    when someone reads the decision, never on the decision path itself.
    """

    __slots__ = ("tool", "index", "_parts")

    def __init__(self, tool: str, index: NameIndex):
        self.tool, self.index = tool, index
        self._parts: tuple[tuple[str, ...], tuple[Any, ...], str] | None = None

    def __getitem__(self, i: int) -> Any:
        parts = self._parts
        if parts is None:
            close = self.index.suggest(self.tool)
            hint = f"; did you mean '{close}'?" if close is not None and close != self.tool else ""
            reason = f"'{shown(self.tool)}' is not a tool this policy declares{hint}"
            parts = self._parts = ((reason,), (), f" denied: {reason}")
        return parts[i]


__all__ = ["skeleton", "shown", "NameIndex", "UnknownToolText"]
