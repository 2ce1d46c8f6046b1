"""Bluesky's rich text, link cards, createdAt and auth messages, against the PDS fake
(the same behaviours are checked on the reference PDS in tests/pds)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from scheduler_daemon.errors import AuthError, TransientError
from scheduler_daemon.platforms import bluesky_richtext as richtext
from scheduler_daemon.platforms.bluesky_card import page_card
from support.platforms.cases import CASES, adapter, connection, post
from support.platforms.context import IMAGE, FakeContext, Store
from support.platforms.fakes import BlueskyFake, body

CASE = next(c for c in CASES if c.name == "bluesky")
PAGE = "https://news.example.com/story"
HTML = b"""<!doctype html><html><head><meta charset="utf-8">
<title>Fallback title</title>
<meta property="og:title" content="Rain &amp; shine">
<meta property="og:description" content="  A   story
 about weather. ">
<meta property="og:image" content="/img/cover.png">
</head><body><meta property="og:title" content="not this one"></body></html>"""


def serve(ctx: FakeContext, url: str, content: bytes, mime: str) -> None:
    ctx.payloads[url], ctx.types[url] = content, mime


def setup():  # type: ignore[no-untyped-def]
    fake = BlueskyFake()
    store = Store()
    conn = store.add(connection(CASE, fake))
    return fake, adapter(CASE, fake), conn, FakeContext(store)


def record(fake: BlueskyFake) -> dict:  # type: ignore[type-arg]
    [put] = [body(r) for r in fake.requests if r.url.path.endswith("putRecord")]
    return put["record"]  # type: ignore[no-any-return]


def facet(text: str, part: str, feature: dict[str, str]) -> dict:  # type: ignore[type-arg]
    start = text.index(part)
    return {
        "index": {"byteStart": len(text[:start].encode()), "byteEnd": len(text[: start + len(part)].encode())},
        "features": [feature],
    }


async def test_mentions_resolve_on_the_pds_and_unknown_handles_stay_plain_text() -> None:
    fake, platform, conn, ctx = setup()
    text = "ünï (@Bob.test) and @nobody.test, cc @alice.test."
    await platform.publish(post(CASE, text), conn, ctx)
    assert record(fake)["facets"] == [
        facet(text, "@Bob.test", {"$type": richtext.MENTION, "did": "did:plc:bob"}),
        facet(text, "@alice.test", {"$type": richtext.MENTION, "did": "did:plc:alice"}),
    ]
    lookups = sorted(r.url.params["handle"] for r in fake.requests if r.url.path.endswith("resolveHandle"))
    assert lookups == ["alice.test", "bob.test", "nobody.test"]


def test_tags_and_cashtags_follow_the_official_rules() -> None:
    text = "#one, ＃二 #2026 #a1! x#no #️⃣ $TSLA. ($aapl) $TOOLONG #end"
    found = [(s.kind, s.value, text[s.start : s.end]) for s in richtext.spans(text)]
    assert found == [
        (richtext.TAG, "one", "#one"),
        (richtext.TAG, "二", "＃二"),
        (richtext.TAG, "a1", "#a1"),
        (richtext.TAG, "$TSLA", "$TSLA"),
        (richtext.TAG, "$AAPL", "$aapl"),
        (richtext.TAG, "end", "#end"),
    ]
    assert richtext.spans("#" + "a" * 65) == [] and len(richtext.spans("#" + "a" * 64)) == 1


def test_facet_ranges_count_utf8_bytes_and_never_overlap() -> None:
    text = "日本 https://example.com/ü #tag"
    link, tag = richtext.facets(text, richtext.spans(text), {})
    assert link == facet(text, "https://example.com/ü", {"$type": richtext.LINK, "uri": "https://example.com/ü"})
    assert tag == facet(text, "#tag", {"$type": richtext.TAG, "tag": "tag"})
    spans = richtext.spans("see #https://example.com/x")
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_open_graph_tags_make_the_card() -> None:
    card = page_card(HTML, PAGE)
    assert card is not None
    assert (card.title, card.description, card.image) == (
        "Rain & shine", "A story about weather.", "https://news.example.com/img/cover.png")
    assert page_card(b"<html><head><title> Only  a title </title></head></html>", PAGE) == \
        dataclasses.replace(card, title="Only a title", description="", image=None)
    assert page_card(b"<html><body>nothing</body></html>", PAGE) is None
    assert page_card(b'<head><meta property="og:title" content="t"><meta property="og:image" content="data:x"></head>',
                     PAGE).image is None  # type: ignore[union-attr]


async def test_first_link_gets_a_card_with_its_picture_uploaded() -> None:
    fake, platform, conn, ctx = setup()
    serve(ctx, PAGE, HTML, "text/html")
    serve(ctx, "https://news.example.com/img/cover.png", IMAGE, "image/png")
    await platform.publish(post(CASE, f"Read {PAGE} and https://other.example.com"), conn, ctx)
    external = record(fake)["embed"]["external"]
    assert record(fake)["embed"]["$type"] == "app.bsky.embed.external"
    found = (external["uri"], external["title"], external["description"])
    assert found == (PAGE, "Rain & shine", "A story about weather.")
    assert fake.blobs[external["thumb"]["ref"]["$link"]] == IMAGE
    assert ctx.fetched == [PAGE, "https://news.example.com/img/cover.png"]


@pytest.mark.parametrize("page", [None, (b"%PDF-1.7", "application/pdf"), (b"x" * 1_000_001, "text/html")],
                         ids=["unreachable", "not-html", "too-big"])
async def test_a_card_that_cannot_be_made_never_fails_the_post(page: tuple[bytes, str] | None) -> None:
    fake, platform, conn, ctx = setup()
    if page is not None:
        serve(ctx, PAGE, *page)
    else:
        async def unreachable(item, max_bytes):  # type: ignore[no-untyped-def]
            raise TransientError("media could not be downloaded (ConnectError)")
        ctx.media_bytes = unreachable  # type: ignore[method-assign]
    result = await platform.publish(post(CASE, f"Read {PAGE}"), conn, ctx)
    assert result.platform_post_id and "embed" not in record(fake)
    assert record(fake)["facets"][0]["features"][0]["uri"] == PAGE


async def test_card_without_its_picture_when_the_picture_fails() -> None:
    fake, platform, conn, ctx = setup()
    serve(ctx, PAGE, HTML, "text/html")
    serve(ctx, "https://news.example.com/img/cover.png", b"<html>", "text/html")
    await platform.publish(post(CASE, f"Read {PAGE}"), conn, ctx)
    assert record(fake)["embed"]["external"]["title"] == "Rain & shine"
    assert "thumb" not in record(fake)["embed"]["external"]


async def test_a_post_with_images_gets_no_card() -> None:
    fake, platform, conn, ctx = setup()
    serve(ctx, PAGE, HTML, "text/html")
    await platform.publish(post(CASE, f"Read {PAGE}", with_image=True), conn, ctx)
    assert record(fake)["embed"]["$type"] == "app.bsky.embed.images" and PAGE not in ctx.fetched
    assert record(fake)["embed"]["images"][0]["alt"] == "a cat"


async def test_created_at_of_a_late_post_is_its_send_time() -> None:
    fake, platform, conn, ctx = setup()
    late = dataclasses.replace(post(CASE), scheduled_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20))
    before = dt.datetime.now(dt.timezone.utc)
    await platform.publish(late, conn, ctx)
    sent = dt.datetime.fromisoformat(record(fake)["createdAt"])
    assert before - dt.timedelta(milliseconds=1) <= sent <= dt.datetime.now(dt.timezone.utc)


async def test_revoked_session_gives_one_reconnect_message_with_the_servers_reason() -> None:
    fake, platform, conn, ctx = setup()
    fake.revoked = True
    with pytest.raises(AuthError) as caught:
        await platform.publish(post(CASE), conn, ctx)
    assert str(caught.value) == (
        "reconnect bluesky: Bluesky refused the credentials: the refresh token was refused (Token has been revoked)"
    )


async def test_refused_access_token_names_the_servers_reason() -> None:
    fake, platform, conn, ctx = setup()
    fake.token_error = lambda token: fake.error("auth")  # type: ignore[method-assign]
    with pytest.raises(AuthError) as caught:
        await platform.publish(post(CASE), conn, ctx)
    assert str(caught.value) == "reconnect bluesky: Bluesky refused the credentials: Token could not be verified"
