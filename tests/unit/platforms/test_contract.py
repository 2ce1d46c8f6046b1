"""One contract, ten platforms: each adapter against a local fake of its API."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest

from scheduler_daemon.engine import classify
from scheduler_daemon.errors import (
    AuthError,
    ContentRejectedError,
    OutcomeUnknownError,
    PlatformConfigError,
    RateLimitedError,
    TransientError,
)
from scheduler_daemon.models import Outcome, OutcomeKind
from scheduler_daemon.platforms.registry import Registry
from support.platforms.cases import (
    CASES,
    REFRESH_ON_FAILURE,
    REFRESHABLE,
    Case,
    adapter,
    connection,
    expected,
    post,
    settings,
)
from support.platforms.context import FakeContext, Store, next_attempt
from support.platforms.fakes import AFTER_COMMIT

every = pytest.mark.parametrize("case", CASES, ids=str)


def setup(case: Case, conn_overrides: dict[str, object] | None = None, env: dict[str, str | None] | None = None):  # type: ignore[no-untyped-def]
    fake = case.fake()
    store = Store()
    conn = store.add(connection(case, fake, conn_overrides))
    return fake, adapter(case, fake, env), conn, store, FakeContext(store)


@every
async def test_text_post_is_published_with_id_and_url(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case)
    the_post = post(case)
    result = await platform.publish(the_post, conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == expected(case, case.text, the_post)
    assert [p.text for p in fake.posts] == ["Hello from the scheduler"]


@every
async def test_image_post_uploads_then_publishes(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case)
    the_post = post(case, "A cat", with_image=True)
    result = await platform.publish(the_post, conn, ctx)
    assert (result.platform_post_id, result.platform_post_url) == expected(case, case.image, the_post)
    assert fake.media_refs == [case.media_ref]
    assert len(fake.posts) == 1 and fake.posts[0].text == "A cat" and len(fake.posts[0].media) == 1


@every
async def test_content_over_the_limit_is_rejected_before_any_call(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case)
    too_long = post(case, case.too_long)
    with pytest.raises(ContentRejectedError, match="allows"):
        platform.validate(too_long)
    with pytest.raises(ContentRejectedError):
        await platform.publish(too_long, conn, ctx)
    assert fake.requests == []


AUTH_REASONS = {
    "facebook": "Error validating access token", "instagram": "Error validating access token",
    "threads": "Error validating access token", "linkedin": "has been revoked by the user",
    "x": "Unauthorized", "bluesky": "Token has been revoked", "mastodon": "The access token is invalid",
    "telegram": "Unauthorized", "discord": "Unknown Webhook", "slack": "invalid_auth",
}


@every
async def test_auth_failure_asks_to_reconnect_once_with_the_platform_s_reason(case: Case) -> None:
    fake, platform, conn, store, ctx = setup(case)
    fake.revoked = True
    with pytest.raises(AuthError) as caught:
        await platform.publish(post(case), conn, ctx)
    now = dt.datetime.now(dt.timezone.utc)
    outcome = classify.classify(
        caught.value, post_id=uuid.uuid4(), platform=case.name, attempt=1, started_at=now, finished_at=now,
        max_attempts=5, retry_base=1.0, retry_max=60.0,
    )
    message = outcome.error_message or ""
    assert message.count(f"reconnect {case.name}") == 1, message
    assert AUTH_REASONS[case.name] in message, message
    assert conn.access_token and conn.access_token not in message
    assert store.refresher_calls <= 1 and fake.posts == []


async def test_a_refused_refresh_says_why() -> None:
    case = next(c for c in CASES if c.name == "x")
    fake, platform, conn, _store, ctx = setup(case, case.refresh_connection)
    fake.revoked = True
    with pytest.raises(AuthError, match="Value passed for the token was invalid") as caught:
        await platform.publish(post(case), conn, ctx)
    assert str(caught.value).count("reconnect x") == 1


@every
async def test_rate_limit_honours_the_wait_then_the_retry_succeeds(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case)
    fake.fail = ["rate"]
    first = post(case)
    with pytest.raises(RateLimitedError) as caught:
        await platform.publish(first, conn, ctx)
    if case.rate_wait is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(case.rate_wait, abs=5)
    assert fake.posts == []
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id and len(fake.posts) == 1


def outcome_of(case: Case, exc: BaseException) -> Outcome:
    """What the engine makes of ``exc``, with the platform's declared facts."""
    now = dt.datetime.now(dt.timezone.utc)
    return classify.classify(
        exc, post_id=uuid.uuid4(), platform=case.name, attempt=1, started_at=now, finished_at=now,
        max_attempts=5, retry_base=1.0, retry_max=60.0, idempotent=case.adapter.facts.idempotent,
    )


@every
@pytest.mark.parametrize("kind", AFTER_COMMIT)
async def test_a_create_committed_then_lost_is_an_unknown_outcome_and_never_repeated(case: Case, kind: str) -> None:
    """The failure that hurts most: the platform created the post, then the answer was a
    5xx, a timeout or a reset. Only a platform that deduplicates may repeat it."""
    fake, platform, conn, _, ctx = setup(case)
    fake.fail = [kind] * case.unknown_fails
    with pytest.raises(OutcomeUnknownError) as caught:
        await platform.publish(post(case), conn, ctx)
    assert len(fake.posts) == 1  # the platform did publish: only the answer was lost
    # no second create (Mastodon re-sends once at once, with its Idempotency-Key)
    assert fake.publish_calls == case.unknown_fails
    outcome = outcome_of(case, caught.value)
    if case.adapter.facts.idempotent:
        assert outcome.kind is OutcomeKind.RETRY, outcome.error_message
    else:
        assert outcome.kind is OutcomeKind.UNKNOWN
        message = outcome.error_message or ""
        assert message.startswith("outcome unknown") and message.endswith(f"check {case.name} before rescheduling")


@every
async def test_a_server_error_on_the_create_call_proves_nothing(case: Case) -> None:
    """A 5xx from the request that creates the post is unknown even when the platform did
    not commit: the daemon cannot tell the two apart."""
    fake, platform, conn, _, ctx = setup(case)
    fake.fail = ["transient"] * case.unknown_fails
    with pytest.raises(OutcomeUnknownError, match="in answer to the request that creates the post"):
        await platform.publish(post(case), conn, ctx)
    assert fake.posts == []


@every
async def test_a_create_refused_before_sending_is_retried(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case)
    fake.fail = ["refused"]
    first = post(case)
    with pytest.raises(TransientError) as caught:
        await platform.publish(first, conn, ctx)
    assert fake.posts == [] and fake.publish_calls == 0
    assert outcome_of(case, caught.value).kind is OutcomeKind.RETRY
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id and len(fake.posts) == 1


@pytest.mark.parametrize("case", [c for c in CASES if c.upload_path], ids=str)
@pytest.mark.parametrize("kind", ["transient", "timeout"])
async def test_a_failed_upload_or_container_is_retried_freely(case: Case, kind: str) -> None:
    fake, platform, conn, _, ctx = setup(case)
    assert case.upload_path is not None
    fake.fail_at = {case.upload_path: [kind]}
    first = post(case, "A cat", with_image=True)
    with pytest.raises(TransientError) as caught:
        await platform.publish(first, conn, ctx)
    assert fake.posts == [] and fake.publish_calls == 0
    assert outcome_of(case, caught.value).kind is OutcomeKind.RETRY
    result = await platform.publish(next_attempt(first, ctx), conn, ctx)
    assert result.platform_post_id and len(fake.posts) == 1


@every
async def test_content_rejection_carries_the_platform_message(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case)
    fake.fail = ["content"]
    with pytest.raises(ContentRejectedError, match=case.content_message):
        await platform.publish(post(case), conn, ctx)


@every
async def test_configuration_error_names_the_setting(case: Case) -> None:
    fake, platform, conn, _, ctx = setup(case, case.config_connection, case.config_env)
    if case.config_connection is None:
        fake.fail = ["config"]
    with pytest.raises(PlatformConfigError, match=case.config_names.replace(".", r"\.")):
        await platform.publish(post(case), conn, ctx)
    assert fake.posts == []


@every
async def test_registry_builds_every_adapter(case: Case) -> None:
    async with httpx.AsyncClient() as client:
        registry = Registry.build(settings(), client)
    assert registry.get(case.name).name == case.name


@pytest.mark.parametrize("case", REFRESHABLE, ids=str)
async def test_concurrent_publishes_refresh_an_expiring_token_once(case: Case) -> None:
    fake, platform, conn, store, _ctx = setup(case, case.refresh_connection)
    old_token = conn.access_token
    results = await asyncio.gather(
        platform.publish(post(case, "first", n=1), conn, FakeContext(store)),
        platform.publish(post(case, "second", n=2), conn, FakeContext(store)),
    )
    assert all(r.platform_post_id for r in results)
    assert store.refresher_calls == 1 and fake.refresh_calls == 1
    assert store.rows[conn.id].access_token == fake.valid_token != old_token
    assert sorted(p.text for p in fake.posts) == ["first", "second"]


@pytest.mark.parametrize("case", REFRESH_ON_FAILURE, ids=str)
async def test_first_auth_failure_refreshes_and_resends(case: Case) -> None:
    fake, platform, conn, store, ctx = setup(case, {**(case.refresh_connection or {}), "token_expires_at": None})
    fake.valid_token = "rotated-elsewhere"  # the stored access token has expired
    result = await platform.publish(post(case), conn, ctx)
    assert result.platform_post_id
    assert store.refresher_calls == 1 and fake.refresh_calls == 1
    assert store.rows[conn.id].refresh_token != conn.refresh_token  # the rotated refresh token was stored
