"""Bluesky rich text: the facets of a post, the way the official client finds them.

The reference is ``RichText.detectFacets`` of ``@atproto/api`` (the PDS contract test
compares both on the same texts):

* **mentions**: ``@handle`` at the start, after a space or after ``(``; the handle is
  ASCII letters, digits, ``.`` and ``-`` up to a word boundary. Its DID comes from
  ``com.atproto.identity.resolveHandle``; a handle that does not resolve stays plain text
  (where the official client would send an empty DID);
* **links**: ``_rules.find_urls`` (shared with the other platforms' counts): balanced
  parentheses stay in the URL, trailing punctuation does not, bare domains get
  ``https://``;
* **tags**: ``#`` or ``＃`` at the start or after a space, then everything up to the next
  space or zero-width character, without trailing punctuation; it must hold something
  other than digits and punctuation, and at most 64 graphemes;
* **cashtags**: ``$`` and 1–5 ASCII letters and digits (a letter first) become the tag
  ``$TICKER`` in upper case.

Ranges are UTF-8 byte offsets (``index.byteStart`` inclusive, ``byteEnd`` exclusive).
Facets never overlap: of two overlapping spans the one that starts first is kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._rules import find_urls, graphemes, utf8_offset

MENTION = "app.bsky.richtext.facet#mention"
LINK = "app.bsky.richtext.facet#link"
TAG = "app.bsky.richtext.facet#tag"
MAX_TAG_GRAPHEMES = 64

# ``\b`` of the official (non-Unicode) regex: ASCII word characters only.
_MENTION = re.compile(r"@([A-Za-z0-9.-]+)\b", re.ASCII)
_HANDLE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
_CASHTAG = re.compile(r"\$([A-Za-z][A-Za-z0-9]{0,4})(?=\s|\Z|[.,;:!?)\"'\u2019])")
_TAG_START = re.compile("[#\uff03]")
_ZERO_WIDTH = frozenset("\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2")


@dataclass(frozen=True, slots=True)
class Span:
    start: int  # character offsets into the text
    end: int
    kind: str  # MENTION, LINK or TAG
    value: str  # the handle (lower case), the URI or the tag


def _space(ch: str) -> bool:
    return ch.isspace() or ch == "\ufeff"  # JavaScript's \s


def _opens(text: str, index: int, *, paren: bool) -> bool:
    """Whether an entity may start at ``index``: the start, a space or (for some) ``(``."""
    if index == 0:
        return True
    before = text[index - 1]
    return _space(before) or (paren and before == "(")


def _punctuation(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def _mentions(text: str) -> list[Span]:
    spans = []
    for match in _MENTION.finditer(text):
        handle = match.group(1).lower()
        if _opens(text, match.start(), paren=True) and len(handle) <= 253 and _HANDLE.fullmatch(handle):
            spans.append(Span(match.start(), match.end(), MENTION, handle))
    return spans


def _tags(text: str) -> list[Span]:
    spans = []
    for match in _TAG_START.finditer(text):
        hash_at = match.start()
        if not _opens(text, hash_at, paren=False):
            continue
        end = hash_at + 1
        while end < len(text) and not _space(text[end]) and text[end] not in _ZERO_WIDTH:
            end += 1
        run = text[hash_at + 1 : end]
        if not run or run[0] == "\ufe0f" or all(c in "0123456789" or _punctuation(c) for c in run):
            continue
        tag = run
        while _punctuation(tag[-1]):  # the run holds a non-punctuation character
            tag = tag[:-1]
        if graphemes(tag) <= MAX_TAG_GRAPHEMES:
            spans.append(Span(hash_at, hash_at + 1 + len(tag), TAG, tag))
    return spans


def _cashtags(text: str) -> list[Span]:
    return [
        Span(m.start(), m.end(), TAG, "$" + m.group(1).upper())
        for m in _CASHTAG.finditer(text)
        if _opens(text, m.start(), paren=True)
    ]


def spans(text: str) -> list[Span]:
    """Every entity of ``text`` in order, without overlaps (mentions not yet resolved)."""
    found = [
        *_mentions(text),
        *(Span(u.start, u.end, LINK, u.uri) for u in find_urls(text)),
        *_tags(text),
        *_cashtags(text),
    ]
    kept: list[Span] = []
    for span in sorted(found, key=lambda s: (s.start, -s.end)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def handles(found: list[Span]) -> list[str]:
    """The distinct handles mentioned (lower case), to resolve."""
    return list(dict.fromkeys(s.value for s in found if s.kind == MENTION))


def facets(text: str, found: list[Span], dids: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``facets`` of a post record from its ``spans``; ``dids`` maps the handles that
    resolved to their DIDs (the others stay plain text)."""
    out = []
    for span in found:
        if span.kind == MENTION:
            if span.value not in dids:
                continue
            feature = {"$type": MENTION, "did": dids[span.value]}
        elif span.kind == LINK:
            feature = {"$type": LINK, "uri": span.value}
        else:
            feature = {"$type": TAG, "tag": span.value}
        index = {"byteStart": utf8_offset(text, span.start), "byteEnd": utf8_offset(text, span.end)}
        out.append({"index": index, "features": [feature]})
    return out


def first_link(found: list[Span]) -> str | None:
    return next((s.value for s in found if s.kind == LINK), None)
