"""The rules a post is checked by before any call, and the text counting they use; every
function is linear in the text.

* ``check_length`` / ``check_media``: what ``Adapter.validate`` applies from the declared
  limits (``PlatformFacts``), and what adapters with rules of their own call.

* ``graphemes`` / ``grapheme_clusters``: Unicode extended grapheme clusters (UAX #29,
  the ``regex`` module's ``\\X``), which is what Bluesky's server (``Intl.Segmenter``)
  and Mastodon count: ``क्ष`` is one, ``a`` + ZWJ + ``😀`` is two.
* ``find_urls``: links as a reader sees them, as character spans: ``http(s)://…`` up to
  the next space, or a bare ``domain.tld`` whose TLD is a real one (``tlds.ALL``).
  A link starts at the start of the text, after a space or after an opening bracket or
  quote; trailing punctuation is not part of it, and a closing bracket is kept only when
  it closes one opened inside the link (``…/Python_(programming_language)`` stays whole).
  Bluesky link facets, Threads' link limit and LinkedIn's little text use it.
* ``is_emoji``: whether a cluster is an emoji (X and Threads count those apart).
* ``threads_length`` (code points, an emoji counting its UTF-8 bytes), ``utf16_length``
  (Telegram). X's count is in ``twitter_text``; Mastodon's in ``mastodon``.
* ``utf8_offset``: Bluesky facets index UTF-8 bytes.

Why linear: a post can hold ``SCHEDULER_MAX_CONTENT_CHARS`` (100,000) characters, and
validation runs on the event loop. Every regular expression here is applied at positions
that cannot overlap and cannot backtrack past its own token, so no input costs more than
a few passes over the text.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from ..errors import ContentRejectedError
from ..models import Post
from .tlds import ALL as TLDS

URL_LENGTH = 23  # X and Mastodon count every URL as 23 characters

_CLUSTER = regex.compile(r"\X")
# A link may start here: the start of the text, or after a space, an opening bracket or a quote.
_START = regex.compile(r"(?:^|(?<=[\s(\[{<\"'“‘«]))(?=[A-Za-z0-9])")
_SCHEME = regex.compile(r"https?://(?=\w)", regex.IGNORECASE)
_TOKEN = regex.compile(r"\S*")
_BARE_HOST = regex.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_AFTER_HOST = frozenset("/?#:")
_TRAILING = frozenset(".,;:!?'\"…”’»")
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}
EMOJI_CHAR = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")


@dataclass(frozen=True, slots=True)
class UrlSpan:
    start: int  # character offsets into the text
    end: int
    url: str  # as written

    @property
    def uri(self) -> str:
        """The URL with a scheme (bare domains get ``https://``)."""
        return self.url if self.url.lower().startswith(("http://", "https://")) else f"https://{self.url}"


def grapheme_clusters(text: str) -> list[str]:
    clusters: list[str] = _CLUSTER.findall(text)
    return clusters


def graphemes(text: str) -> int:
    return len(_CLUSTER.findall(text))


def find_urls(text: str) -> list[UrlSpan]:
    spans: list[UrlSpan] = []
    position = 0
    while (start := _START.search(text, position)) is not None:
        begin = start.start()
        end = _link_end(text, begin)
        if end is None:
            position = begin + 1
            continue
        spans.append(UrlSpan(begin, end, text[begin:end]))
        position = end
    return spans


def _link_end(text: str, begin: int) -> int | None:
    """Where the link starting at ``begin`` ends, or None if there is none."""
    scheme = _SCHEME.match(text, begin)
    if scheme is not None:
        host_start = scheme.end()
        end = _token_end(text, host_start)
    else:
        host = _BARE_HOST.match(text, begin)
        if host is None or not _known_domain(host.group()):
            return None
        host_start, end = begin, host.end()
        if end < len(text) and text[end] == "@":  # an e-mail address
            return None
        if end < len(text) and text[end] in _AFTER_HOST:
            end = _token_end(text, end)
    end = _without_trailing(text, host_start, end)
    host_end = host_start
    while host_end < end and text[host_end] not in "/?#":
        host_end += 1
    return end if "." in text[host_start:host_end].strip(".") else None


def _token_end(text: str, position: int) -> int:
    """The end of the run of non-space characters at ``position``."""
    token = _TOKEN.match(text, position)
    return token.end() if token is not None else position


def _known_domain(host: str) -> bool:
    labels = host.split(".")
    if any(not label or label[0] == "-" or label[-1] == "-" for label in labels):
        return False
    return labels[-1].lower() in TLDS


def _without_trailing(text: str, begin: int, end: int) -> int:
    """``end`` moved back over trailing punctuation and unbalanced closing brackets."""
    piece = text[begin:end]
    surplus = {close: piece.count(close) - piece.count(open_) for close, open_ in _PAIRS.items()}
    while end > begin:
        last = text[end - 1]
        if last in _TRAILING:
            end -= 1
        elif last in _PAIRS and surplus[last] > 0:
            surplus[last] -= 1
            end -= 1
        else:
            break
    return end


def is_emoji(cluster: str) -> bool:
    """An emoji: a pictograph (outside Latin-1, or with VS16 / ZWJ), a flag or a keycap."""
    if "\u20e3" in cluster or any(0x1F1E6 <= ord(c) <= 0x1F1FF for c in cluster):
        return True
    pictographs: list[str] = EMOJI_CHAR.findall(cluster)
    return bool(pictographs) and (
        any(ord(c) > 0xFF for c in pictographs) or "\ufe0f" in cluster or "\u200d" in cluster
    )


def threads_length(text: str) -> int:
    return sum(len(c.encode()) if is_emoji(c) else len(c) for c in grapheme_clusters(text))


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def utf8_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of character ``index`` (Bluesky facets count bytes)."""
    return len(text[:index].encode())


# -- the checks every adapter's validate() runs, before any call --------------------------


def check_length(display: str, count: int, limit: int, unit: str = "characters") -> None:
    """At most ``limit`` ``unit`` (``count`` as the platform counts them) for ``display``."""
    if count > limit:
        raise ContentRejectedError(f"{display} allows {limit} {unit}; this post has {count}")


def check_media(display: str, post: Post, *, max_items: int, min_items: int = 0, images_only: bool = True) -> None:
    """The post's media items for ``display``: how many, each with a source, images only."""
    count = len(post.media)
    if count > max_items:
        plural = "s" if max_items != 1 else ""
        raise ContentRejectedError(f"{display} takes at most {max_items} image{plural} per post; this one has {count}")
    if count < min_items:
        plural = "s" if min_items != 1 else ""
        raise ContentRejectedError(f"{display} needs at least {min_items} image{plural} per post")
    for item in post.media:
        if not item.url and not item.storage_path:
            raise ContentRejectedError(f"{display}: a media item has neither url nor storage_path")
        if images_only and item.mime and not item.mime.startswith("image/"):
            raise ContentRejectedError(f"{display}: only images are supported here, not {item.mime[:50]}")
