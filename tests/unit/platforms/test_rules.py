"""Each platform's own rules, against its fake: counts, limits, escaping, mentions."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from scheduler_daemon.engine import classify
from scheduler_daemon.errors import ContentRejectedError, PlatformConfigError
from scheduler_daemon.models import Outcome, OutcomeKind
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import FakeContext, Store
from support.platforms.fakes import body

BY_NAME = {case.name: case for case in CASES}


def setup(name: str, env: dict[str, str | None] | None = None, **overrides: Any):  # type: ignore[no-untyped-def]
    case = BY_NAME[name]
    fake = case.fake()
    store = Store()
    conn = store.add(connection(case, fake, overrides))
    return case, fake, adapter(case, fake, env), conn, FakeContext(store)


def ended(exc: BaseException, platform: str) -> Outcome:
    now = dt.datetime.now(dt.timezone.utc)
    return classify.classify(exc, post_id=uuid.uuid4(), platform=platform, attempt=1, started_at=now,
                             finished_at=now, max_attempts=5, retry_base=1.0, retry_max=60.0)


# -- X ------------------------------------------------------------------------------------


async def test_x_usage_capped_ends_as_a_draft_without_retrying() -> None:
    case, fake, platform, conn, ctx = setup("x")
    fake.fail = ["usage-capped"]
    with pytest.raises(PlatformConfigError) as caught:
        await platform.publish(post(case), conn, ctx)
    outcome = ended(caught.value, "x")
    assert outcome.kind is OutcomeKind.FAILED and outcome.retry_at is None
    assert "the X API plan or credits are exhausted" in (outcome.error_message or "")
    assert fake.posts == []


async def test_x_long_posts_are_allowed_per_connection() -> None:
    long_text = "word " * 100  # 500 weighted characters
    case, fake, platform, conn, ctx = setup("x")
    platform.validate(post(case, long_text))  # some account may post it
    with pytest.raises(ContentRejectedError, match="allows 280"):
        await platform.publish(post(case, long_text), conn, ctx)
    assert fake.requests == []

    case, fake, platform, conn, ctx = setup("x", metadata={"username": "alice", "max_chars": 25_000})
    fake.max_chars = 25_000
    result = await platform.publish(post(case, long_text), conn, ctx)
    assert result.platform_post_id and [p.text for p in fake.posts] == [long_text]


async def test_x_counts_a_url_as_23_like_the_platform() -> None:
    text = "a" * 257 + " https://example.com/" + "x" * 500  # 257 + 1 + 23 = 281
    case, _fake, platform, conn, ctx = setup("x")
    with pytest.raises(ContentRejectedError, match="281"):
        await platform.publish(post(case, text), conn, ctx)
    fits = "a" * 256 + " https://example.com/" + "x" * 500
    assert (await platform.publish(post(case, fits), conn, ctx)).platform_post_id


# -- Threads ------------------------------------------------------------------------------


async def test_threads_refuses_more_than_five_links_before_any_call() -> None:
    links = " ".join(f"https://example.com/{i}" for i in range(6))
    case, fake, platform, conn, ctx = setup("threads")
    with pytest.raises(ContentRejectedError, match="at most 5 links"):
        await platform.publish(post(case, links), conn, ctx)
    assert fake.requests == []
    five = " ".join(f"example.com/{i}" for i in range(5)) + " and 3.14 file.txt"
    assert (await platform.publish(post(case, five), conn, ctx)).platform_post_id


# -- Telegram -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["MarkdownV2", "HTML", "Markdown", None])
async def test_telegram_text_is_escaped_for_the_parse_mode_and_shown_as_written(mode: str | None) -> None:
    text = "Launch at 9.30! (finally) a_b *c* [d] x<y & z>w #news {1+1=2} ~`|"
    case, fake, platform, conn, ctx = setup("telegram", metadata={"parse_mode": mode} if mode else {})
    result = await platform.publish(post(case, text), conn, ctx)
    assert result.platform_post_id and [p.text for p in fake.posts] == [text]
    sent = body(fake.requests[0])
    assert sent.get("parse_mode") == mode


def test_telegram_fake_refuses_unescaped_markdown_v2_like_telegram() -> None:
    from support.platforms.fakes import parse_entities

    assert parse_entities("Hello.", "MarkdownV2") is None  # "can't parse entities"
    assert parse_entities("Hello\\.", "MarkdownV2") == "Hello."
    assert parse_entities("a < b", "HTML") is None and parse_entities("a &lt; b", "HTML") == "a < b"


async def test_telegram_counts_the_text_after_entity_parsing() -> None:
    case, _fake, platform, conn, ctx = setup("telegram", metadata={"parse_mode": "MarkdownV2"})
    dots = "." * 4096  # 8,192 characters once escaped, 4,096 shown
    assert (await platform.publish(post(case, dots), conn, ctx)).platform_post_id
    with pytest.raises(ContentRejectedError, match="4096"):
        platform.validate(post(case, dots + "."))


async def test_telegram_uploads_photos_over_5_mb_and_passes_smaller_ones_by_url() -> None:
    case, fake, platform, conn, ctx = setup("telegram")
    big = b"\x89PNG" + b"0" * (6 * 1024 * 1024)
    ctx.payloads["https://cdn.test/pics/cat.png"] = big
    fake.url_sizes["https://cdn.test/pics/cat.png"] = len(big)  # Telegram would refuse the URL
    result = await platform.publish(post(case, "Big cat", with_image=True), conn, ctx)
    assert result.platform_post_id and fake.media_refs == [big] and fake.posts[0].text == "Big cat"

    case, fake, platform, conn, ctx = setup("telegram")
    await platform.publish(post(case, "Small cat", with_image=True), conn, ctx)
    assert fake.media_refs == ["https://cdn.test/pics/cat.png"]


# -- Discord ------------------------------------------------------------------------------


async def test_discord_pings_nobody_unless_the_connection_opts_in() -> None:
    text = "@everyone @here <@123> <@&456> new release"
    case, fake, platform, conn, ctx = setup("discord")
    await platform.publish(post(case, text), conn, ctx)
    assert body(fake.requests[0])["allowed_mentions"] == {"parse": []}
    assert fake.pinged == [] and fake.posts[0].text == text

    case, fake, platform, conn, ctx = setup("discord", metadata={"guild_id": "999", "allow_mentions": True})
    await platform.publish(post(case, text), conn, ctx)
    assert fake.pinged == ["@everyone", "@here", "<@123>", "<@&456>"]

    case, fake, platform, conn, ctx = setup("discord", metadata={"guild_id": "999", "allow_mentions": ["users"]})
    await platform.publish(post(case, text), conn, ctx)
    assert fake.pinged == ["<@123>"]


def test_discord_fake_pings_everyone_without_allowed_mentions() -> None:
    from support.platforms.fakes import discord_pings

    assert discord_pings("@everyone look", None) == ["@everyone"]


# -- Slack --------------------------------------------------------------------------------


async def test_slack_escapes_its_control_characters_so_the_text_shows_as_written() -> None:
    text = "Q&A: 1 < 2 > 0 <!channel> <https://evil.test|click>"
    case, fake, platform, conn, ctx = setup("slack")
    await platform.publish(post(case, text), conn, ctx)
    assert [p.text for p in fake.posts] == [text] and fake.markup == []

    case, fake, platform, conn, ctx = setup("slack")
    await platform.publish(post(case, text, with_image=True), conn, ctx)
    assert [p.text for p in fake.posts] == [text] and fake.markup == []


async def test_slack_sends_alt_text_as_alt_text_not_as_the_title() -> None:
    case, fake, platform, conn, ctx = setup("slack")
    await platform.publish(post(case, "A cat", with_image=True), conn, ctx)
    assert fake.alt_texts == ["a cat"] and fake.titles == ["cat.png"]


# -- LinkedIn -----------------------------------------------------------------------------


async def test_linkedin_keeps_urls_and_hashtags_and_escapes_the_rest() -> None:
    wiki = "https://en.wikipedia.org/wiki/Python_(programming_language)"
    text = f"Big news (really) #launch #open_source: read {wiki} or example.com/a_b#top *now* @team ~ [x] <y>"
    case, fake, platform, conn, ctx = setup("linkedin")
    await platform.publish(post(case, text), conn, ctx)
    assert [p.text for p in fake.posts] == [text]  # nothing cut, nothing escaped visibly
    assert fake.hashtags == [["launch", "open_source"]]
    assert fake.links == [[wiki, "example.com/a_b#top"]]


def test_linkedin_fake_cuts_at_a_bare_reserved_character_and_ignores_escaped_hashtags() -> None:
    from support.platforms.fakes import little_text

    assert little_text("a (b) c") == ("a ", [], [])
    assert little_text("\\#news https://x.test/a\\_b") == ("#news https://x.test/a_b", [], [])


# -- Mastodon -----------------------------------------------------------------------------


async def test_mastodon_idempotency_holds_for_an_hour_only() -> None:
    """Why the adapter re-sends a lost status at once and never later: the instance
    forgets the key after an hour, and a later repeat is a second status."""
    case, fake, platform, conn, ctx = setup("mastodon")
    the_post = post(case)
    first = await platform.publish(the_post, conn, ctx)
    fake.clock += 3599
    again = await platform.publish(the_post, conn, ctx)
    assert again.platform_post_id == first.platform_post_id and len(fake.posts) == 1
    fake.clock += 2
    later = await platform.publish(the_post, conn, ctx)
    assert later.platform_post_id != first.platform_post_id and len(fake.posts) == 2


async def test_mastodon_waits_for_async_media_before_posting() -> None:
    case, fake, platform, conn, ctx = setup("mastodon")
    fake.processing_polls = 3
    result = await platform.publish(post(case, "A cat", with_image=True), conn, ctx)
    polls = [r for r in fake.requests if r.url.path.startswith("/api/v1/media/")]
    assert result.platform_post_id and len(polls) == 4 and len(fake.posts) == 1


async def test_mastodon_counts_bare_domains_as_typed() -> None:
    case, _fake, platform, conn, ctx = setup("mastodon")
    bare = "x" * 470 + " example.com/" + "a" * 20  # 503 as typed; 494 with the URL allowance
    with pytest.raises(ContentRejectedError, match="503"):
        await platform.publish(post(case, bare), conn, ctx)
    with_scheme = "x" * 470 + " https://example.com/" + "a" * 20  # 470 + 1 + 23
    assert (await platform.publish(post(case, with_scheme), conn, ctx)).platform_post_id
