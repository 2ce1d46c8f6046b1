"""What each platform offers against duplicates, and the lookups around it."""

from __future__ import annotations

import httpx
import pytest

from scheduler_daemon.errors import AuthError, OutcomeUnknownError, TransientError
from scheduler_daemon.platforms.bluesky import record_key
from scheduler_daemon.platforms.delivery import deliver
from scheduler_daemon.platforms.linkedin import commentary, escape
from scheduler_daemon.platforms.telegram import TelegramAdapter
from support.platforms.cases import CASES, adapter, connection, post, settings
from support.platforms.context import FakeContext, Store, next_attempt
from support.platforms.fakes.base import body
from support.platforms.fakes.instagram import InstagramFake
from support.platforms.fakes.threads import ThreadsFake

BY_NAME = {case.name: case for case in CASES}


def setup(name: str, **overrides: object):  # type: ignore[no-untyped-def]
    case = BY_NAME[name]
    fake = case.fake()
    store = Store()
    conn = store.add(connection(case, fake, overrides))
    return case, fake, adapter(case, fake), conn, FakeContext(store)


async def test_mastodon_resends_a_lost_status_with_the_same_idempotency_key() -> None:
    case, fake, platform, conn, ctx = setup("mastodon")
    fake.fail = ["unknown"]
    the_post = post(case)
    result = await deliver(platform, the_post, conn, ctx)
    sent = [r for r in fake.requests if r.url.path == "/api/v1/statuses"]
    assert [r.headers["idempotency-key"] for r in sent] == [f"scheduler-{the_post.id}"] * 2
    assert result.platform_post_id == "103704874086360371" and len(fake.posts) == 1


async def test_bluesky_after_a_lost_answer_finds_the_record_by_its_key_and_writes_nothing_more() -> None:
    case, fake, platform, conn, ctx = setup("bluesky")
    fake.fail = ["unknown"]
    first = post(case, "see https://example.com/ünï")
    with pytest.raises(TransientError):
        await deliver(platform, first, conn, ctx)
    rkey = record_key(first.id, first.scheduled_at)
    assert ctx.state["rkey"] == rkey and ctx.state["created_at"] == fake.records[rkey]["createdAt"]
    result = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    puts = [body(r) for r in fake.requests if r.url.path.endswith("putRecord")]
    gets = [r for r in fake.requests if r.url.path.endswith("getRecord")]
    assert [p["rkey"] for p in puts] == [rkey] and len(gets) == 1
    assert result.platform_post_id == f"at://did:plc:alice/app.bsky.feed.post/{rkey}" and len(fake.posts) == 1
    facet = puts[0]["record"]["facets"][0]
    assert facet["index"] == {"byteStart": 4, "byteEnd": 4 + len("https://example.com/ünï".encode())}
    assert facet["features"][0]["uri"] == "https://example.com/ünï"


async def test_bluesky_retry_that_finds_no_record_writes_it_with_its_own_send_time() -> None:
    """A checkpoint without a record (the write never landed): written now, same key."""
    case, fake, platform, conn, ctx = setup("bluesky")
    fake.fail = ["transient"]
    first = post(case, "hello")
    with pytest.raises(TransientError):
        await deliver(platform, first, conn, ctx)
    sent_first = ctx.state["created_at"]
    await deliver(platform, next_attempt(first, ctx), conn, ctx)
    puts = [body(r)["record"]["createdAt"] for r in fake.requests if r.url.path.endswith("putRecord")]
    assert len(puts) == 2 and puts[0] == sent_first and puts[1] >= sent_first and len(fake.posts) == 1


def test_bluesky_record_keys_are_tids_fixed_per_post() -> None:
    case = BY_NAME["bluesky"]
    a, b = post(case, n=1), post(case, n=2)
    key = record_key(a.id, a.scheduled_at)
    assert key == record_key(a.id, a.scheduled_at) != record_key(b.id, b.scheduled_at)
    assert len(key) == 13 and set(key) <= set("234567abcdefghijklmnopqrstuvwxyz") and key[0] in "234567abcdefghij"


async def test_bluesky_session_is_cached_across_posts() -> None:
    case, fake, platform, conn, ctx = setup("bluesky", token_expires_at="soon")
    await deliver(platform, post(case, "one", n=1), conn, ctx)
    await deliver(platform, post(case, "two", n=2), conn, ctx)  # the stale row again
    assert fake.refresh_calls == 1 and len(fake.posts) == 2


@pytest.mark.parametrize("name", ["instagram", "threads"])
async def test_container_published_before_a_lost_answer_is_not_published_again(name: str) -> None:
    case, fake, platform, conn, ctx = setup(name)
    assert isinstance(fake, (InstagramFake, ThreadsFake))
    fake.fail = ["unknown"]
    first = post(case, "Caption", with_image=True)
    with pytest.raises(OutcomeUnknownError):
        await deliver(platform, first, conn, ctx)
    assert ctx.state == {"container_id": "c1"}
    result = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == ("m1", "https://posts.test/m1")
    assert fake.publish_calls == 1 and len(fake.posts) == 1 and len(fake.containers) == 1


@pytest.mark.parametrize("name", ["instagram", "threads"])
async def test_ready_container_is_reused_after_a_failed_publish(name: str) -> None:
    case, fake, platform, conn, ctx = setup(name)
    assert isinstance(fake, (InstagramFake, ThreadsFake))
    fake.fail = ["transient"]
    first = post(case, "Caption", with_image=True)
    with pytest.raises(TransientError):
        await deliver(platform, first, conn, ctx)
    result = await deliver(platform, next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id == "m1" and len(fake.containers) == 1 and len(fake.posts) == 1


async def test_linkedin_duplicate_answer_is_the_existing_post() -> None:
    case, fake, platform, conn, ctx = setup("linkedin")
    fake.commentaries[commentary("Hello (again) #news")] = "urn:li:share:6999"
    result = await deliver(platform, post(case, "Hello (again) #news"), conn, ctx)
    assert result.platform_post_id == "urn:li:share:6999"
    assert result.platform_post_url == "https://www.linkedin.com/feed/update/urn:li:share:6999"
    assert fake.posts == []


def test_linkedin_escapes_little_text() -> None:
    assert escape("a_b (c) #d @e") == r"a\_b \(c\) \#d \@e"


async def test_telegram_follows_a_group_migrated_to_a_supergroup() -> None:
    case, fake, platform, conn, ctx = setup("telegram", account_id="-100old")
    result = await deliver(platform, post(case), conn, ctx)
    assert [body(r)["chat_id"] for r in fake.requests] == ["-100old", "-100777"]
    assert result.platform_post_id == "42"


async def test_telegram_messages_never_contain_the_bot_token() -> None:
    case, _fake, _, conn, ctx = setup("telegram")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    platform = TelegramAdapter(settings(), httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with pytest.raises(TransientError) as caught:
        await deliver(platform, post(case), conn, ctx)
    assert conn.access_token and conn.access_token not in str(caught.value)
    assert "tg.test" not in str(caught.value)


async def test_slack_internal_error_after_posting_is_an_unknown_outcome() -> None:
    case, fake, platform, conn, ctx = setup("slack")

    original = fake.error
    fake.error = lambda kind: (
        httpx.Response(200, json={"ok": False, "error": "internal_error"}) if kind == "content" else original(kind)
    )  # type: ignore[method-assign]
    fake.fail = ["content"]
    with pytest.raises(OutcomeUnknownError, match="check the channel"):
        await deliver(platform, post(case), conn, ctx)


async def test_x_without_refresh_token_reports_an_expired_token_as_reconnect() -> None:
    case, fake, platform, conn, ctx = setup("x")
    fake.valid_token = "someone-else"
    with pytest.raises(AuthError, match="reconnect x"):
        await deliver(platform, post(case), conn, ctx)
