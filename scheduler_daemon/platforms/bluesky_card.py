"""Link cards: what a page's Open Graph tags say about it, for ``app.bsky.embed.external``.

``page_card`` reads the ``<head>`` of an HTML page: ``og:title`` (else ``<title>``),
``og:description`` (else ``<meta name="description">``) and ``og:image`` made absolute
against the page's URL. Parsing stops at ``<body>``; texts are whitespace-collapsed and
capped. Fetching is the adapter's job (through the daemon's media path, so the outbound
rules and size caps apply); nothing here touches the network.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser

MAX_TITLE = 300
MAX_DESCRIPTION = 1_000


@dataclass(frozen=True, slots=True)
class PageCard:
    title: str
    description: str
    image: str | None  # absolute http(s) URL of og:image


class _Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title: list[str] = []
        self._in_title = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.done = True
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = {k: v or "" for k, v in attrs}
            key = (values.get("property") or values.get("name") or "").strip().lower()
            if key and "content" in values:
                self.meta.setdefault(key, values["content"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)


def _clean(value: str, limit: int) -> str:
    return " ".join(value.split())[:limit]


def page_card(html: bytes, page_url: str) -> PageCard | None:
    """The card of a page, or None when it names neither a title nor a description."""
    parser = _Head()
    text = html.decode("utf-8", errors="replace")
    for start in range(0, len(text), 8192):  # stop feeding once the head is over
        parser.feed(text[start : start + 8192])
        if parser.done:
            break
    meta = parser.meta
    title = _clean(meta.get("og:title") or "".join(parser.title), MAX_TITLE)
    description = _clean(meta.get("og:description") or meta.get("description") or "", MAX_DESCRIPTION)
    if not title and not description:
        return None
    image = meta.get("og:image") or meta.get("og:image:url") or meta.get("og:image:secure_url")
    image_url = urllib.parse.urljoin(page_url, image.strip()) if image and image.strip() else None
    if image_url and urllib.parse.urlsplit(image_url).scheme not in ("http", "https"):
        image_url = None
    return PageCard(title, description, image_url)
