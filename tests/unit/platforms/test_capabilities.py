"""The README's capability table is what the adapters declare, and what validate checks."""

from __future__ import annotations

import re
from pathlib import Path

from scheduler_daemon.platforms.base import MediaLimit, Option, PlatformFacts, TextLimit, VideoLimit
from scheduler_daemon.platforms.capabilities import table
from scheduler_daemon.platforms.registry import FACTORIES

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_table_is_the_declared_facts() -> None:
    found = re.search(r"<!-- capabilities:start -->\n(.*?)<!-- capabilities:end -->", README.read_text(), re.S)
    assert found, "the README has no capability table"
    assert found.group(1) == table(), "README.md's capability table is stale: paste platforms.capabilities.table()"
    assert len(found.group(1).splitlines()) == 2 + len(FACTORIES)


def test_a_row_shows_every_declared_capability() -> None:
    facts = PlatformFacts(
        "demo", "Demo",
        media=MediaLimit(10, video=VideoLimit(("mp4", "mov"), ("h264", "hevc"), max_bytes=300_000_000,
                                              min_seconds=3, max_seconds=900, per_day=30), mixed=True,
                         alt_text=True,
                         alt_text_max=1_000),
        thread=25, first_comment=TextLimit(2_200), options=(Option("share_to_feed", "boolean"),
                                                            Option("audience", "string", ("all", "friends"))),
    )
    assert table([facts]).splitlines()[-1] == (
        "| `demo` | MP4, MOV; H264 or HEVC; up to 300 MB; 3–900 s; 30 per 24 h | 10 images or videos, mixed"
        " | yes, up to 1,000 | up to 25 posts | up to 2,200 characters"
        " | `share_to_feed` (boolean), `audience` (all/friends) |"
    )
