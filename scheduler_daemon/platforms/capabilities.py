"""What each platform takes, as its adapter declares it (``PlatformFacts``): the README's
capability table is this module's ``table()`` (a test keeps the two equal), so the table
says what ``validate`` checks and nothing else."""

from __future__ import annotations

from collections.abc import Iterable

from .base import PlatformFacts, TextLimit, VideoLimit
from .registry import FACTORIES

__all__ = ["table"]

COLUMNS = ("Platform", "Video", "Media per post", "Alt text", "Threads", "First comment", "Options")


def table(facts: Iterable[PlatformFacts] | None = None) -> str:
    """The capability table in Markdown, one row per platform (every adapter's by default)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for f in facts if facts is not None else (factory.facts for factory in FACTORIES):
        cells = (f"`{f.name}`", _video(f), _media(f), _alt(f), _thread(f), _comment(f.first_comment), _options(f))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _video(f: PlatformFacts) -> str:
    if f.media is None:
        return "—"
    if f.media.video is not None:
        return _video_limit(f.media.video)
    return "as a file" if not f.media.images_only else "—"


def _video_limit(v: VideoLimit) -> str:
    parts = [", ".join(c.upper() for c in v.containers), " or ".join(c.upper() for c in v.video_codecs)]
    if v.max_bytes:
        least = f"{v.min_bytes / 1e3:,.0f} kB – " if v.min_bytes else "up to "
        parts.append(f"{least}{v.max_bytes / 1e6:,.0f} MB")
    if v.max_seconds:
        parts.append(f"{v.min_seconds or 0:g}–{v.max_seconds:g} s")
    if v.per_day:
        parts.append(f"{v.per_day} per 24 h")
    return "; ".join(parts)


def _media(f: PlatformFacts) -> str:
    if f.media is None:
        return "—"
    kind = "files" if not f.media.images_only else "images or videos" if f.media.video else "images"
    mixed = ", mixed" if f.media.mixed else ""
    return f"{f.media.max_items} {kind}{mixed}"


def _alt(f: PlatformFacts) -> str:
    if f.media is None or not f.media.alt_text:
        return "—"
    return f"yes, up to {f.media.alt_text_max:,}" if f.media.alt_text_max else "yes"


def _thread(f: PlatformFacts) -> str:
    return f"up to {f.thread} posts" if f.thread > 1 else "—"


def _comment(rule: TextLimit | None) -> str:
    return "—" if rule is None else f"up to {rule.limit:,} {rule.unit}"


def _options(f: PlatformFacts) -> str:
    if not f.options:
        return "—"
    return ", ".join(f"`{o.key}` ({'/'.join(o.choices) if o.choices else o.kind})" for o in f.options)
