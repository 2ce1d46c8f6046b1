"""X's published counting rules (twitter-text v3), in linear time.

``weighted_length(text)`` is what X compares with the post limit (280, or the account's
long-post limit):

* the text is NFC-normalised;
* every URL counts 23, whatever its length (``extract_urls``);
* every emoji (a grapheme cluster with a pictograph, a flag or a keycap) counts 2;
* any other code point counts 1 in U+0000–U+10FF, U+2000–U+200D, U+2010–U+201F and
  U+2032–U+2037, and 2 everywhere else (CJK, most symbols).

``extract_urls`` follows twitter-text's URL grammar: an optional ``http(s)://``, labels
of "domain characters" (anything but spaces, punctuation and direction marks; ``_`` only
in subdomains, no label starting or ending with ``-``/``_``), a TLD from twitter-text's
own list (``tlds.py``; it may end mid-label when a non-ASCII letter follows, so
``example.comだよ`` links ``example.com``) or a punycode label, an optional port, a path
of URL characters that ends on a letter, digit or ``/+-=_#`` or on a parenthesised group
(one nested level), and a query that ends on ``[a-z0-9-_&=#/]``. Without a scheme only
ASCII domains count, and not right after ``-_./@#$`` or a letter or digit (so e-mail
addresses and ``$TICKER.CA`` are no links). Labels longer than 63 characters (punycode)
or URLs longer than 4,096 make it no URL. ``t.co`` slugs over 40 characters are no URL.

twitter-text does this with one large regular expression, which is exponential on some
inputs; here each run of domain characters is split into labels once, the candidate
starts are looked up in tables built right to left, and the path and query are scanned
once, so the cost is linear in the text. The conformance cases of twitter-text
(``tests/unit/platforms/data/twitter_text_conformance.json``) are the tests.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import regex

from ._rules import EMOJI_CHAR, URL_LENGTH, UrlSpan, grapheme_clusters, is_emoji
from .tlds import ALL as TLDS

__all__ = ["extract_urls", "weighted_length"]

_SPACES = "\t-\r \x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_INVALID = "\ufffe\ufeff\uffff"
_DIRECTIONAL = "\u202a-\u202e\u061c\u200e\u200f\u2066-\u2069"
_PUNCT_NOT_IN_DOMAINS = r"!'#%&()*+,/:;<=>?@\[\]^{|}~$\\"  # punctuation without . - _
# A run of domain characters, dots, hyphens and underscores (the material of a domain).
_RUN = regex.compile(f"[^{_PUNCT_NOT_IN_DOMAINS}{_SPACES}{_INVALID}{_DIRECTIONAL}]+")
_DOMAIN_PUNCT = frozenset(".-_")
_LATIN_ACCENTS = (
    "\xc0-\xd6\xd8-\xf6\xf8-\xff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263\u0268\u026f\u0272"
    "\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_ASCII_LABEL_CHAR = regex.compile(f"[-a-z0-9{_LATIN_ACCENTS}]", regex.IGNORECASE)
_NOT_AFTER_TLD = regex.compile(r"[0-9a-zA-Z@+-]")
_PUNYCODE = regex.compile(r"xn--[-0-9a-z]+", regex.IGNORECASE)
_BAD_BEFORE = regex.compile(f"[A-Za-z0-9@\uff20$#\uff03{_INVALID}]")
_BAD_BEFORE_BARE = frozenset("-_./")
_PORT = regex.compile(r":[0-9]+")
_PATH_CHAR = regex.compile(
    f"[a-z\u0400-\u04ff0-9!*';:=+,.$/%#\\[\\]\\-\u2013_~@|&{_LATIN_ACCENTS}]", regex.IGNORECASE
)
_PATH_END_CHAR = regex.compile(f"[+\\-a-z\u0400-\u04ff0-9=_#/{_LATIN_ACCENTS}]", regex.IGNORECASE)
_PATH_RUN = regex.compile(
    f"[a-z\u0400-\u04ff0-9!*';:=+,.$/%#\\[\\]\\-\u2013_~@|&{_LATIN_ACCENTS}]*", regex.IGNORECASE
)
_QUERY_RUN = regex.compile(r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*", regex.IGNORECASE)
_QUERY_END_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_&=#/")
_TCO = regex.compile(r"https?://t\.co/([a-z0-9]+)(?:\?[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]*[a-z0-9\-_&=#/])?",
                     regex.IGNORECASE)
_MAX_TLD = max(len(t) for t in TLDS)
_MAX_URL = 4096
_MAX_LABEL = 63
_MAX_TCO_SLUG = 40
_HEAVY = regex.compile(r"[^\u0000-\u10ff\u2000-\u200d\u2010-\u201f\u2032-\u2037]")  # weight 2


def weighted_length(text: str) -> int:
    """X's count of ``text`` (twitter-text v3, scale 100, URLs 23, emoji 2)."""
    text = unicodedata.normalize("NFC", text)
    units, last = 0, 0
    for span in extract_urls(text):
        units += _plain_units(text[last : span.start]) + URL_LENGTH * 100
        last = span.end
    units += _plain_units(text[last:])
    return units // 100


def _plain_units(piece: str) -> int:
    if EMOJI_CHAR.search(piece) is None:  # the common case, without a per-cluster loop
        return 100 * len(piece) + 100 * len(_HEAVY.findall(piece))
    units = 0
    for cluster in grapheme_clusters(piece):
        if is_emoji(cluster):
            units += 200
        else:
            units += 100 * len(cluster) + 100 * len(_HEAVY.findall(cluster))
    return units


def extract_urls(text: str, *, without_protocol: bool = True) -> list[UrlSpan]:
    """The URLs X (or, ``without_protocol=False``, Mastodon) sees in ``text``."""
    urls: list[UrlSpan] = []
    position = floor = 0  # floor: the end of the previous match, whose last character cannot precede the next
    while (run := _RUN.search(text, position)) is not None:
        match = _first_match(text, run.start(), run.end(), floor)
        if match is None:
            position = run.end()
            continue
        begin, domain_end, protocol = match
        urls.extend(_accept(text, begin, domain_end, protocol, without_protocol))
        position = floor = _url_end(text, domain_end)[0]
    return urls


class _Labels:
    """The labels of a run (``text[start:end]`` split at dots), with what each allows."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.starts: list[int] = [start]
        self.ends: list[int] = []
        for index in range(start, end):
            if text[index] == ".":
                self.ends.append(index)
                self.starts.append(index + 1)
        self.ends.append(end)
        count = len(self.starts)
        self.tld_end = [self._tld_end(i) for i in range(count)]
        # best[i]: the last label m ≥ i that can end a domain (a name label followed by a
        # TLD) reachable from label i through valid subdomain labels; -1 if none.
        self.best = [-1] * count
        for i in range(count - 2, -1, -1):
            if self._name_ok(i, self.starts[i]) and self.tld_end[i + 1] >= 0:
                self.best[i] = i
            if self._sub_ok(i, self.starts[i]) and self.best[i + 1] >= 0:
                self.best[i] = self.best[i + 1]

    def _edges_ok(self, first: int, last: int) -> bool:
        return first < last and self.text[first] not in _DOMAIN_PUNCT and self.text[last - 1] not in _DOMAIN_PUNCT

    def _sub_ok(self, i: int, first: int) -> bool:
        return self._edges_ok(first, self.ends[i])

    def _name_ok(self, i: int, first: int) -> bool:
        return self._edges_ok(first, self.ends[i]) and "_" not in self.text[first : self.ends[i]]

    def _tld_end(self, i: int) -> int:
        """Where a TLD (or punycode label) at the start of label ``i`` ends; -1 if none."""
        first, last = self.starts[i], self.ends[i]
        punycode = _PUNYCODE.match(self.text, first, last)
        if punycode is not None:
            return punycode.end()
        label = self.text[first : min(last, first + _MAX_TLD)].lower()
        for length in range(len(label), 0, -1):
            after = first + length
            if label[:length] in TLDS and (
                after >= len(self.text) or _NOT_AFTER_TLD.match(self.text[after]) is None
            ):
                return after
        return -1

    def domain_from(self, begin: int, i: int) -> int | None:
        """The end of the longest domain starting at ``begin`` (inside label ``i``)."""
        if begin == self.starts[i]:
            m = self.best[i]
        else:  # a partial first label: its own validity, then the table
            m = -1
            if i + 1 < len(self.starts):
                if self._name_ok(i, begin) and self.tld_end[i + 1] >= 0:
                    m = i
                if self._sub_ok(i, begin) and self.best[i + 1] >= 0:
                    m = self.best[i + 1]
        return self.tld_end[m + 1] if m >= 0 else None


def _first_match(text: str, start: int, end: int, floor: int) -> tuple[int, int, str | None] | None:
    """The leftmost domain in the run ``text[start:end]``: (begin, domain end, protocol).
    The character before a match belongs to it, so it must be at or after ``floor``."""
    labels = _Labels(text, start, end)
    protocol = _protocol_before(text, start, floor)
    label = 0
    for begin in range(start, end):
        while labels.ends[label] < begin:
            label += 1
        char = text[begin]
        if char in _DOMAIN_PUNCT or not _may_follow(text, begin, floor):
            continue
        domain_end = labels.domain_from(begin, label)
        if domain_end is not None:
            return begin, domain_end, protocol if begin == start else None
    return None


def _may_follow(text: str, begin: int, floor: int) -> bool:
    """twitter-text's "valid URL preceding character" rule."""
    return begin == 0 or (begin > floor and _BAD_BEFORE.match(text[begin - 1]) is None)


def _protocol_before(text: str, start: int, floor: int) -> str | None:
    for protocol in ("https://", "http://"):
        first = start - len(protocol)
        if first >= 0 and text[first:start].lower() == protocol and _may_follow(text, first, floor):
            return text[first:start]
    return None


def _url_end(text: str, domain_end: int) -> tuple[int, bool]:
    """Where the URL whose domain ends at ``domain_end`` ends, and whether it has a path."""
    end = domain_end
    port = _PORT.match(text, end)
    if port is not None:
        end = port.end()
    has_path = end < len(text) and text[end] == "/"
    if has_path:
        end = _path_end(text, end + 1)
    if end < len(text) and text[end] == "?":
        run = _QUERY_RUN.match(text, end + 1)
        stop = run.end() if run is not None else end + 1
        while stop > end + 1 and text[stop - 1] not in _QUERY_END_CHAR:
            stop -= 1
        if stop > end + 1:
            end = stop
    return end, has_path


def _path_end(text: str, position: int) -> int:
    """The end of the path after a ``/`` at ``position - 1``: the last ending character or
    parenthesised group of the longest run of path characters and groups."""
    end = position  # the "/" itself is an ending character
    while position < len(text):
        char = text[position]
        if char == "(":
            group_end = _group_end(text, position)
            if group_end is None:
                break
            position = end = group_end
            continue
        run = _PATH_RUN.match(text, position)
        stop = run.end() if run is not None else position
        if stop == position:
            break
        for index in range(stop - 1, position - 1, -1):
            if _PATH_END_CHAR.match(text[index]) is not None:
                end = index + 1
                break
        position = stop
    return end


def _group_end(text: str, position: int) -> int | None:
    """The end of ``( chars )`` or ``( chars ( chars ) chars )`` at ``position``."""
    inner = _run_end(text, position + 1)
    if inner < len(text) and text[inner] == ")" and inner > position + 1:
        return inner + 1
    if inner < len(text) and text[inner] == "(":
        nested = _run_end(text, inner + 1)
        if nested > inner + 1 and nested < len(text) and text[nested] == ")":
            close = _run_end(text, nested + 1)
            if close < len(text) and text[close] == ")":
                return close + 1
    return None


def _run_end(text: str, position: int) -> int:
    run = _PATH_RUN.match(text, position)
    return run.end() if run is not None else position


def _accept(
    text: str, begin: int, domain_end: int, protocol: str | None, without_protocol: bool
) -> Sequence[UrlSpan]:
    """The URL(s) a domain match gives, after twitter-text's checks."""
    end, has_path = _url_end(text, domain_end)
    domain = text[begin:domain_end]
    if not _valid_domain(domain) or len(protocol or "https://") + (end - begin) + _puny_growth(domain) > _MAX_URL:
        return ()
    if protocol is not None:
        first = begin - len(protocol)
        url = text[first:end]
        tco = _TCO.match(url)
        if tco is not None:
            if len(tco.group(1)) > _MAX_TCO_SLUG:
                return ()
            end = first + tco.end()
        return (UrlSpan(first, end, text[first:end]),)
    if not without_protocol or (begin > 0 and text[begin - 1] in _BAD_BEFORE_BARE):
        return ()
    spans = _ascii_domains(text, begin, domain_end)
    if spans and has_path:
        last = spans[-1]
        spans[-1] = UrlSpan(last.start, end, text[last.start : end])
    return spans


def _ascii_domains(text: str, begin: int, end: int) -> list[UrlSpan]:
    """The ASCII domains inside the domain ``text[begin:end]`` (links without a scheme)."""
    labels = _Labels(text, begin, end)
    ascii_label = [
        all(_ASCII_LABEL_CHAR.match(c) for c in text[s:e]) for s, e in zip(labels.starts, labels.ends, strict=True)
    ]
    count = len(labels.starts)
    best = [-1] * count  # the last label m ≥ i whose next label starts with a TLD, via ASCII labels
    for i in range(count - 2, -1, -1):
        if labels.tld_end[i + 1] >= 0 and labels.tld_end[i + 1] <= end:
            best[i] = i
        if ascii_label[i + 1] and best[i + 1] >= 0:
            best[i] = best[i + 1]
    spans: list[UrlSpan] = []
    i, offset = 0, begin
    while i < count - 1:
        first = labels.ends[i]
        while first > offset and _ASCII_LABEL_CHAR.match(text[first - 1]):
            first -= 1
        if first == labels.ends[i] or best[i] < 0:
            i, offset = i + 1, labels.starts[i + 1]
            continue
        stop = labels.tld_end[best[i] + 1]
        spans.append(UrlSpan(first, stop, text[first:stop]))
        i, offset = best[i] + 1, stop
    return spans


def _valid_domain(domain: str) -> bool:
    """twitter-text's IDNA check: punycode labels are ASCII, every label 1–63 long encoded."""
    if domain[:4].lower() == "xn--" and not domain.isascii():
        return False
    return all(1 <= len(_encoded(label)) <= _MAX_LABEL for label in domain.split("."))


def _encoded(label: str) -> str:
    if label.isascii():
        return label
    try:
        return "xn--" + label.encode("punycode").decode("ascii")
    except UnicodeError:
        return ""


def _puny_growth(domain: str) -> int:
    return sum(len(_encoded(label)) - len(label) for label in domain.split("."))
