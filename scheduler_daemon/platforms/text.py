"""Text-length rules of the platforms, without new dependencies.

* ``graphemes``: user-perceived characters (Bluesky 300, Mastodon per instance), a
  simplified form of Unicode extended grapheme clusters (UAX #29) built on
  ``unicodedata``: combining marks, ZWJ emoji sequences, skin-tone modifiers, variation
  selectors, tag sequences, flag pairs, Hangul jamo and CR LF stay one cluster.
* ``x_weighted_length``: X's weighted count (twitter-text v3): Latin-range code points
  weigh 1, others 2, an emoji sequence 2, a URL 23 whatever its length.
* ``threads_length``: code points, an emoji counting as its UTF-8 byte length.
* ``mastodon_length``: graphemes with every URL counted as 23 and ``@user@domain``
  mentions counted as ``@user``.
* ``utf16_length``: Telegram counts UTF-16 code units.
* ``find_urls``: URLs (with or without scheme) as character spans, shared by the counts
  above and by Bluesky link facets.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

URL_LENGTH = 23  # X and Mastodon count every URL as 23 characters

_TLDS = (
    "com|org|net|io|co|dev|app|ly|me|gl|info|edu|gov|uk|de|fr|es|it|nl|eu|ca|us|tv|ai|gg|xyz|social|jp|br|au"
)
_URL = re.compile(
    r"(?:https?://[^\s<>\"]+)"
    r"|(?:www\.[^\s<>\"]+)"
    rf"|(?:(?<![\w@.])[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.(?:{_TLDS})\b(?:/[^\s<>\"]*)?)",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\")]}"
_MENTION = re.compile(r"(?<![\w@])(@[a-z0-9_]+)@[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)

_LATIN_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x21AA), (0x231A, 0x23FF), (0x24C2, 0x24C2), (0x25AA, 0x25FE),
    (0x2600, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3299), (0x1F000, 0x1F1E5), (0x1F200, 0x1F3FA), (0x1F400, 0x1FAFF), (0x1FC00, 0x1FFFD),
)
_ZWJ = 0x200D


@dataclass(frozen=True, slots=True)
class UrlSpan:
    start: int  # character offsets into the text
    end: int
    url: str  # as written

    @property
    def uri(self) -> str:
        """The URL with a scheme (bare domains get ``https://``)."""
        return self.url if self.url.lower().startswith(("http://", "https://")) else f"https://{self.url}"


def find_urls(text: str) -> list[UrlSpan]:
    spans = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        if url.count("(") < url.count(")"):  # keep a balanced closing parenthesis only
            url = url.rstrip(")")
        if "." in url:
            spans.append(UrlSpan(match.start(), match.start() + len(url), url))
    return spans


def _in(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= cp <= high for low, high in ranges)


def _is_regional(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _is_extend(ch: str) -> bool:
    cp = ord(ch)
    return (
        unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or cp == _ZWJ
        or 0xFE00 <= cp <= 0xFE0F
        or 0xE0100 <= cp <= 0xE01EF
        or 0x1F3FB <= cp <= 0x1F3FF
        or 0xE0020 <= cp <= 0xE007F
        or 0x1160 <= cp <= 0x11FF
        or 0xFF9E <= cp <= 0xFF9F
    )


def _joins(cluster: str, ch: str) -> bool:
    """Whether ``ch`` continues the cluster that ends with ``cluster[-1]``."""
    last = cluster[-1]
    if last == "\r":
        return ch == "\n"
    if unicodedata.category(last) == "Cc" or unicodedata.category(ch) == "Cc":
        return False
    if _is_extend(ch):
        return True
    cp = ord(ch)
    if ord(last) == _ZWJ and len(cluster) > 1:
        return _in(cp, _PICTOGRAPHIC)
    if _is_regional(cp):
        return sum(_is_regional(ord(c)) for c in cluster) % 2 == 1 and _is_regional(ord(last))
    return False


def grapheme_clusters(text: str) -> list[str]:
    clusters: list[str] = []
    for ch in text:
        if clusters and _joins(clusters[-1], ch):
            clusters[-1] += ch
        else:
            clusters.append(ch)
    return clusters


def graphemes(text: str) -> int:
    return len(grapheme_clusters(text))


def _is_emoji(cluster: str) -> bool:
    cps = [ord(c) for c in cluster]
    if any(_is_regional(cp) for cp in cps):
        return True
    if not any(_in(cp, _PICTOGRAPHIC) for cp in cps):
        return False
    return any(cp > 0x10FF for cp in cps if _in(cp, _PICTOGRAPHIC)) or 0xFE0F in cps or _ZWJ in cps


def _replace_urls(text: str, placeholder_length: int) -> tuple[str, int]:
    """The text without its URLs, and the count the URLs add."""
    spans = find_urls(text)
    parts, last = [], 0
    for span in spans:
        parts.append(text[last : span.start])
        last = span.end
    parts.append(text[last:])
    return "".join(parts), placeholder_length * len(spans)


def x_weighted_length(text: str) -> int:
    """X's character count (compare with 280): weights in hundredths, rounded up."""
    rest, units = _replace_urls(unicodedata.normalize("NFC", text), URL_LENGTH * 100)
    for cluster in grapheme_clusters(rest):
        if _is_emoji(cluster):
            units += 200
        else:
            units += sum(100 if _in(ord(c), _LATIN_RANGES) else 200 for c in cluster)
    return -(-units // 100)


def threads_length(text: str) -> int:
    return sum(len(c.encode()) if _is_emoji(c) else len(c) for c in grapheme_clusters(text))


def mastodon_length(text: str) -> int:
    rest, count = _replace_urls(text, URL_LENGTH)
    rest = _MENTION.sub(r"\1", rest)
    return count + graphemes(rest)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf8_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of character ``index`` (Bluesky facets count bytes)."""
    return len(text[:index].encode())
