"""The delivery driver on a platform with threads, a first comment and options (``chain``,
faked at the transport): each item exactly once, resumed after the last one that is out; a
partial failure that says which items are out; a first comment that never undoes a post;
options refused by key and type; prepared artifacts reused, and made anew when stale or
made for another post."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.errors import (
    ContentRejectedError,
    InvalidPostError,
    OutcomeUnknownError,
    RetryablePublishError,
    TransientError,
)
from scheduler_daemon.models import Connection, MediaItem, Outcome, OutcomeKind, Post, PostItem
from scheduler_daemon.platforms.base import Adapter, PlatformFacts, TextLimit
from scheduler_daemon.platforms.delivery import deliver, incomplete
from support.platforms.chain import ChainAdapter, ChainFake
from support.platforms.context import IMAGE_URL, FakeContext, Store, next_attempt

CONNECTION = Connection(uuid.UUID(int=7), uuid.UUID(int=1), "chain", "me", None, None, None, {})
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def thread_post(*texts: str, first_comment: str | None = None, options: dict[str, Any] | None = None,
                media_on: tuple[int, ...] = ()) -> Post:
    items = [PostItem(t, (MediaItem(IMAGE_URL, None, f"alt {n}", "image/png"),) if n in media_on else ())
             for n, t in enumerate(texts)]
    return Post(
        id=uuid.UUID(int=42), platform="chain", content=items[0].content, media=items[0].media, campaign_id=None,
        user_id=uuid.UUID(int=1), scheduled_at=NOW, attempt=1, publish_state={}, thread=tuple(items[1:]),
        first_comment=first_comment, options=options or {},
    )


def setup() -> tuple[ChainFake, ChainAdapter, FakeContext]:
    fake = ChainFake()
    adapter = ChainAdapter(PlatformSettings(), httpx.AsyncClient(transport=fake.transport()))
    return fake, adapter, FakeContext(Store())


FOUR = ("1/4 a thread", "2/4 goes on", "3/4 fails the first time", "4/4 the end")


async def test_a_thread_goes_out_as_a_reply_chain_with_each_id_checkpointed_before_the_next() -> None:
    fake, adapter, ctx = setup()
    delivery = await deliver(adapter, thread_post(*FOUR, media_on=(1,)), CONNECTION, ctx)
    assert [p["text"] for p in fake.posts] == list(FOUR)
    assert [p.get("reply_to") for p in fake.posts] == [None, "p1", "p2", "p3"]
    assert [p.get("root") for p in fake.posts] == [None, "key-p1", "key-p1", "key-p1"]  # the ref travels
    assert fake.posts[1]["media_ids"] == ["media-1"] and fake.posts[0]["media_ids"] == []
    assert (delivery.platform_post_id, delivery.platform_post_url) == ("p1", "https://chain.test/@me/p1")
    items = [c["items"] for c in ctx.checkpoints if "items" in c]
    assert [len(i) for i in items] == [1, 2, 3]  # after each item but the last: nothing follows it
    assert items[-1][2] == {"id": "p3", "url": "https://chain.test/@me/p3", "ref": {"root_key": "key-p3"}}


@pytest.mark.parametrize("failure", ["transient", "rate"])
async def test_a_failure_at_item_3_leaves_items_1_and_2_out_and_the_retry_resumes_at_item_3(failure: str) -> None:
    fake, adapter, ctx = setup()
    fake.fail = {FOUR[2]: failure}
    first = thread_post(*FOUR, media_on=(0, 3))
    with pytest.raises(RetryablePublishError):
        await deliver(adapter, first, CONNECTION, ctx)
    assert [p["text"] for p in fake.posts] == list(FOUR[:2])
    assert [i["id"] for i in ctx.state["items"]] == ["p1", "p2"]
    uploads = len(fake.uploads)
    delivery = await deliver(adapter, next_attempt(first, ctx), CONNECTION, ctx)
    assert [p["text"] for p in fake.posts] == list(FOUR)  # each once
    assert fake.posts[2]["reply_to"] == "p2" and fake.posts[3]["reply_to"] == "p3"
    assert fake.posts[3]["media_ids"] == ["media-2"] and len(fake.uploads) == uploads == 2  # prepared, reused
    assert [r.platform_post_id for r in delivery.items] == ["p1", "p2", "p3", "p4"]


async def test_a_lost_answer_at_item_3_is_an_unknown_outcome_with_items_1_and_2_recorded() -> None:
    fake, adapter, ctx = setup()
    fake.fail = {FOUR[2]: "unknown"}
    with pytest.raises(OutcomeUnknownError):
        await deliver(adapter, thread_post(*FOUR), CONNECTION, ctx)
    assert len(fake.posts) == 3 and [i["id"] for i in ctx.state["items"]] == ["p1", "p2"]


def failed(kind: OutcomeKind, message: str) -> Outcome:
    return Outcome(uuid.UUID(int=42), "chain", 2, kind, NOW, NOW, None, message, NOW if kind is OutcomeKind.RETRY
                   else None, "content")


def test_a_partial_failure_says_which_items_are_out_and_names_the_first() -> None:
    post = thread_post(*FOUR)
    state = {"items": [{"id": "p1", "url": "https://chain.test/@me/p1"}, {"id": "p2", "url": None}]}
    draft = incomplete(failed(OutcomeKind.FAILED, "Chain rejected the post: nope"), post, state)
    assert draft.error_message == (
        "thread incomplete: items 1–2 are out of 4 (1: https://chain.test/@me/p1, 2: p2); "
        "item 3: Chain rejected the post: nope. Scheduling the post again resumes at item 3"
    )
    assert draft.kind is OutcomeKind.FAILED and draft.result is not None and draft.result.platform_post_id == "p1"
    retry = incomplete(failed(OutcomeKind.RETRY, "attempt 2 failed (x); retrying in 1 s"), post, state)
    assert retry.error_message == (
        "thread incomplete: items 1–2 are out of 4 (1: https://chain.test/@me/p1, 2: p2); "
        "item 3: attempt 2 failed (x); retrying in 1 s"
    )
    nothing_out = failed(OutcomeKind.FAILED, "nope")
    assert incomplete(nothing_out, post, {}) is nothing_out


def test_a_deadline_during_the_first_comment_still_publishes_the_post() -> None:
    post = thread_post("alone", first_comment="hi")
    unknown = failed(OutcomeKind.UNKNOWN, "outcome unknown: the attempt took too long")
    outcome = incomplete(unknown, post, {"items": [{"id": "p1", "url": "u1"}]})
    assert outcome.kind is OutcomeKind.PUBLISHED and outcome.result is not None
    assert outcome.error_message == (
        "published, but the first comment failed: outcome unknown: the attempt took too long"
    )


async def test_the_first_comment_goes_out_once_right_after_the_post() -> None:
    fake, adapter, ctx = setup()
    first = thread_post("a post", "its reply", first_comment="first!")
    delivery = await deliver(adapter, first, CONNECTION, ctx)
    assert fake.comments == [{"text": "first!", "on": "p1", "id": "c1"}] and delivery.notice is None
    assert delivery.comment is not None
    assert ctx.state["first_comment"] == {"id": "c1", "url": "https://chain.test/@me/p1#c1"}
    await deliver(adapter, next_attempt(first, ctx), CONNECTION, ctx)  # a repeat (recovery) posts nothing more
    assert len(fake.comments) == 1 and len(fake.posts) == 2


@pytest.mark.parametrize("failure", ["content", "transient", "unknown"])
async def test_a_failed_first_comment_leaves_the_post_published_with_a_notice(failure: str) -> None:
    fake, adapter, ctx = setup()
    fake.fail = {"first!": failure}
    delivery = await deliver(adapter, thread_post("a post", first_comment="first!"), CONNECTION, ctx)
    assert delivery.platform_post_id == "p1" and delivery.comment is None
    assert delivery.notice and delivery.notice.startswith("published, but the first comment failed: Chain")
    assert ctx.state["first_comment"]["error"] and len(fake.posts) == 1


async def test_unknown_or_mistyped_options_are_refused_before_any_call() -> None:
    fake, adapter, ctx = setup()
    with pytest.raises(InvalidPostError) as caught:
        await deliver(adapter, thread_post("hi", options={"notify": True, "colour": "red", "pin": 1}), CONNECTION, ctx)
    assert str(caught.value) == "platform_options: Chain has no options 'colour', 'pin'; it takes audience, notify"
    with pytest.raises(InvalidPostError, match=r'^platform_options\.notify must be true or false, not "yes"$'):
        await deliver(adapter, thread_post("hi", options={"notify": "yes"}), CONNECTION, ctx)
    with pytest.raises(InvalidPostError, match=r"audience must be one of everyone, followers; not \"all\""):
        await deliver(adapter, thread_post("hi", options={"audience": "all"}), CONNECTION, ctx)
    assert fake.requests == []
    await deliver(adapter, thread_post("hi", options={"notify": False, "audience": "followers"}), CONNECTION, ctx)
    assert fake.posts[0]["notify"] is False


class Bare(Adapter):
    """A platform that declares no options, threads or first comment."""

    facts = PlatformFacts("bare", "Bare", text=(TextLimit(280),))


async def test_a_platform_without_options_threads_or_comments_says_so() -> None:
    bare = Bare(PlatformSettings(), httpx.AsyncClient())
    base = dataclasses.replace(thread_post("hi"), platform="bare")
    with pytest.raises(InvalidPostError, match="Bare has no option 'reply_settings'; it takes none"):
        bare.validate(dataclasses.replace(base, options={"reply_settings": "following"}))
    with pytest.raises(ContentRejectedError, match="Bare takes no threads here: this post has 1 replies"):
        bare.validate(dataclasses.replace(base, thread=(PostItem("more"),)))
    with pytest.raises(ContentRejectedError, match="Bare takes no first comment here"):
        bare.validate(dataclasses.replace(base, first_comment="hi"))


async def test_each_item_is_checked_against_the_limits_with_its_number() -> None:
    _, adapter, _ = setup()
    with pytest.raises(ContentRejectedError, match=r"^Chain allows 280 characters; item 3 of 3 has 281$"):
        adapter.validate(thread_post("a", "b", "c" * 281))
    with pytest.raises(ContentRejectedError, match=r"^Chain allows 200 characters; the first comment has 201$"):
        adapter.validate(thread_post("a", first_comment="c" * 201))
    long_alt = dataclasses.replace(thread_post("a"), media=(MediaItem(IMAGE_URL, None, "a" * 101, None),))
    with pytest.raises(ContentRejectedError, match="alt text of at most 100 characters; image 1 of this post has 101"):
        adapter.validate(long_alt)
    with pytest.raises(ContentRejectedError, match="threads of at most 10 posts; this one has 11"):
        adapter.validate(thread_post(*[f"{n}" for n in range(11)]))


async def test_a_stale_prepared_artifact_is_prepared_anew_once() -> None:
    fake, adapter, ctx = setup()
    fake.fail = {"with a picture": "stale"}
    delivery = await deliver(adapter, thread_post("with a picture", media_on=(0,)), CONNECTION, ctx)
    assert delivery.platform_post_id == "p1" and len(fake.uploads) == 2 and fake.posts[0]["media_ids"] == ["media-2"]


async def test_prepared_artifacts_are_reused_only_for_the_post_they_were_made_for() -> None:
    fake, adapter, ctx = setup()
    fake.fail = {"v1": "transient"}
    first = thread_post("v1", media_on=(0,))
    with pytest.raises(TransientError):
        await deliver(adapter, first, CONNECTION, ctx)
    edited = dataclasses.replace(next_attempt(first, ctx), content="v2")  # the user edited it before the retry
    await deliver(adapter, edited, CONNECTION, ctx)
    assert len(fake.uploads) == 2 and [p["text"] for p in fake.posts] == ["v2"]
