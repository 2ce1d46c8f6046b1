"""What each platform offers against duplicates, and the lookups around it."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from scheduler_daemon.errors import (
    AuthError,
    ContentRejectedError,
    NotCreatedError,
    OutcomeUnknownError,
    RateLimitedError,
    TransientError,
)
from scheduler_daemon.platforms.bluesky import record_key
from scheduler_daemon.platforms.linkedin import SENT, commentary, escape
from scheduler_daemon.platforms.telegram import TelegramAdapter
from support.platforms.cases import CASES, adapter, connection, post, settings
from support.platforms.context import FakeContext, Store, next_attempt
from support.platforms.fakes import AFTER_COMMIT, InstagramFake, ThreadsFake, body

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
    result = await platform.publish(the_post, conn, ctx)
    sent = [r for r in fake.requests if r.url.path == "/api/v1/statuses"]
    assert [r.headers["idempotency-key"] for r in sent] == [f"scheduler-{the_post.id}"] * 2
    assert result.platform_post_id == "103704874086360371" and len(fake.posts) == 1


async def test_bluesky_after_a_lost_answer_finds_the_record_by_its_key_and_writes_nothing_more() -> None:
    case, fake, platform, conn, ctx = setup("bluesky")
    fake.fail = ["unknown"]
    first = post(case, "see https://example.com/ünï")
    with pytest.raises(OutcomeUnknownError):  # the engine repeats it: Bluesky is declared idempotent
        await platform.publish(first, conn, ctx)
    rkey = record_key(first.id, first.scheduled_at)
    assert ctx.state["rkey"] == rkey and ctx.state["created_at"] == fake.records[rkey]["createdAt"]
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
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
    with pytest.raises(OutcomeUnknownError):
        await platform.publish(first, conn, ctx)
    sent_first = ctx.state["created_at"]
    await platform.publish(next_attempt(first, ctx), conn, ctx)
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
    await platform.publish(post(case, "one", n=1), conn, ctx)
    await platform.publish(post(case, "two", n=2), conn, ctx)  # the stale row again
    assert fake.refresh_calls == 1 and len(fake.posts) == 2


@pytest.mark.parametrize("name", ["instagram", "threads"])
async def test_container_published_before_a_lost_answer_is_not_published_again(name: str) -> None:
    case, fake, platform, conn, ctx = setup(name)
    assert isinstance(fake, (InstagramFake, ThreadsFake))
    fake.fail = ["unknown"]
    first = post(case, "Caption", with_image=True)
    with pytest.raises(OutcomeUnknownError):
        await platform.publish(first, conn, ctx)
    assert ctx.state == {"container_id": "c1"}
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == ("m1", "https://posts.test/m1")
    assert fake.publish_calls == 1 and len(fake.posts) == 1 and len(fake.containers) == 1


@pytest.mark.parametrize("name", ["instagram", "threads"])
async def test_ready_container_is_reused_after_a_failed_publish(name: str) -> None:
    case, fake, platform, conn, ctx = setup(name)
    assert isinstance(fake, (InstagramFake, ThreadsFake))
    fake.fail = ["transient"]  # a 5xx to media_publish: unknown, the repeat checks the container
    first = post(case, "Caption", with_image=True)
    with pytest.raises(OutcomeUnknownError):
        await platform.publish(first, conn, ctx)
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id == "m1" and len(fake.containers) == 1 and len(fake.posts) == 1


LAST_WEEK = "urn:li:share:6999"


async def test_linkedin_deliberate_repeat_is_rejected_with_linkedin_s_message() -> None:
    """Last week's "Happy Friday" again: LinkedIn refuses it, and it is not recorded as
    published with a link to last week's post."""
    case, fake, platform, conn, ctx = setup("linkedin")
    fake.commentaries[commentary("Happy Friday (again) #news")] = LAST_WEEK
    with pytest.raises(ContentRejectedError, match=f"duplicate of {LAST_WEEK}") as caught:
        await platform.publish(post(case, "Happy Friday (again) #news"), conn, ctx)
    assert "BadRequestResponseException" not in str(caught.value)
    assert fake.posts == [] and fake.publish_calls == 1


async def test_linkedin_records_the_send_before_the_create_call() -> None:
    case, fake, platform, conn, ctx = setup("linkedin")
    state_when_sent: list[object] = []
    route = fake.route

    async def watch(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/rest/posts":
            state_when_sent.append(ctx.state.get(SENT))
        return await route(request)

    fake.route = watch  # type: ignore[method-assign]
    await platform.publish(post(case, "A cat", with_image=True), conn, ctx)
    assert len(state_when_sent) == 1 and isinstance(state_when_sent[0], str)
    assert [list(c) for c in ctx.checkpoints] == [[SENT]]  # uploads come first and record nothing


@pytest.mark.parametrize("kind", AFTER_COMMIT)
async def test_linkedin_duplicate_after_an_unknown_attempt_is_this_post_s_success(kind: str) -> None:
    """Attempt 1 was created but its answer lost; a repeat of it (a crashed run's post
    attempted again with its checkpoint) is answered DUPLICATE_POST naming attempt 1's post."""
    case, fake, platform, conn, ctx = setup("linkedin")
    fake.fail = [kind]
    first = post(case, "Hello (again) #news")
    with pytest.raises(OutcomeUnknownError):
        await platform.publish(first, conn, ctx)
    assert ctx.state[SENT]
    [created] = fake.commentaries.values()
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == (
        created, f"https://www.linkedin.com/feed/update/{created}"
    )
    assert len(fake.posts) == 1 and fake.publish_calls == 2
    assert len(ctx.checkpoints) == 1  # the repeat found the send recorded and kept it


async def test_linkedin_duplicate_after_a_rate_limited_attempt_is_still_a_rejection() -> None:
    """A 429 proves nothing was created: the record of the send is removed, so the next
    attempt is a first send again and last week's duplicate stays a rejection."""
    case, fake, platform, conn, ctx = setup("linkedin")
    fake.commentaries[commentary("Happy Friday")] = LAST_WEEK
    fake.fail = ["rate"]
    first = post(case, "Happy Friday")
    with pytest.raises(RateLimitedError):
        await platform.publish(first, conn, ctx)
    assert ctx.state[SENT] is None
    with pytest.raises(ContentRejectedError, match=LAST_WEEK):
        await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert fake.posts == []


async def test_linkedin_duplicate_naming_no_post_after_an_unknown_attempt_stays_unknown() -> None:
    case, fake, platform, conn, ctx = setup("linkedin")
    repeat = dataclasses.replace(post(case, "Hello"), publish_state={SENT: "2030-01-02T03:04:05+00:00"})

    def nameless(request: httpx.Request, body: dict[str, object]) -> httpx.Response:
        return httpx.Response(422, json={"status": 422, "message": "Duplicate post is detected",
                                         "errorDetails": {"inputErrors": [{"code": "DUPLICATE_POST"}]}})

    fake.publish = nameless  # type: ignore[method-assign]
    with pytest.raises(OutcomeUnknownError, match="named no post"):
        await platform.publish(repeat, conn, ctx)
    assert ctx.checkpoints == []  # the earlier attempt's record stands


def test_linkedin_escapes_little_text() -> None:
    assert escape("a_b (c) #d @e") == r"a\_b \(c\) \#d \@e"


async def test_telegram_follows_a_group_migrated_to_a_supergroup() -> None:
    case, fake, platform, conn, ctx = setup("telegram", account_id="-100old")
    result = await platform.publish(post(case), conn, ctx)
    assert [body(r)["chat_id"] for r in fake.requests] == ["-100old", "-100777"]
    assert result.platform_post_id == "42"


async def test_telegram_messages_never_contain_the_bot_token() -> None:
    case, _fake, _, conn, ctx = setup("telegram")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    platform = TelegramAdapter(settings(), httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with pytest.raises(TransientError) as caught:
        await platform.publish(post(case), conn, ctx)
    assert conn.access_token and conn.access_token not in str(caught.value)
    assert "tg.test" not in str(caught.value)


async def test_slack_request_timeout_proves_nothing_was_posted_and_is_retried() -> None:
    """``request_timeout``: "the POST data was either missing or truncated"."""
    case, fake, platform, conn, ctx = setup("slack")
    original = fake.error
    fake.error = lambda kind: (  # type: ignore[method-assign]
        httpx.Response(200, json={"ok": False, "error": "request_timeout"}) if kind == "content" else original(kind)
    )
    fake.fail = ["content"]
    first = post(case)
    with pytest.raises(NotCreatedError):
        await platform.publish(first, conn, ctx)
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id and len(fake.posts) == 1


async def test_slack_internal_error_after_posting_is_an_unknown_outcome() -> None:
    case, fake, platform, conn, ctx = setup("slack")

    original = fake.error
    fake.error = lambda kind: (
        httpx.Response(200, json={"ok": False, "error": "internal_error"}) if kind == "content" else original(kind)
    )  # type: ignore[method-assign]
    fake.fail = ["content"]
    with pytest.raises(OutcomeUnknownError, match="check the channel"):
        await platform.publish(post(case), conn, ctx)


async def test_x_without_refresh_token_reports_an_expired_token_as_reconnect() -> None:
    case, fake, platform, conn, ctx = setup("x")
    fake.valid_token = "someone-else"
    with pytest.raises(AuthError, match="reconnect x"):
        await platform.publish(post(case), conn, ctx)
