"""The ten platforms as contract-test cases: adapter, fake, connection and expectations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from scheduler_daemon.config.platforms import PlatformSettings
from scheduler_daemon.models import Connection, MediaItem, Post
from scheduler_daemon.platforms.base import PlatformAdapter
from scheduler_daemon.platforms.bluesky import BlueskyAdapter, record_key
from scheduler_daemon.platforms.discord import DiscordAdapter
from scheduler_daemon.platforms.facebook import FacebookAdapter
from scheduler_daemon.platforms.instagram import InstagramAdapter
from scheduler_daemon.platforms.linkedin import LinkedInAdapter
from scheduler_daemon.platforms.mastodon import MastodonAdapter
from scheduler_daemon.platforms.slack import SlackAdapter
from scheduler_daemon.platforms.telegram import TelegramAdapter
from scheduler_daemon.platforms.threads import ThreadsAdapter
from scheduler_daemon.platforms.x import XAdapter

from .context import IMAGE, IMAGE_URL
from .fakes import (
    BlueskyFake,
    DiscordFake,
    FacebookFake,
    Fake,
    InstagramFake,
    LinkedInFake,
    MastodonFake,
    SlackFake,
    TelegramFake,
    ThreadsFake,
    XFake,
)

ENV = {
    "SCHEDULER_FACEBOOK_API_BASE": "https://fb.test",
    "SCHEDULER_INSTAGRAM_API_BASE": "https://ig.test",
    "SCHEDULER_INSTAGRAM_LOGIN_API_BASE": "https://iglogin.test",
    "SCHEDULER_THREADS_API_BASE": "https://threads.test",
    "SCHEDULER_LINKEDIN_API_BASE": "https://li.test/rest",
    "SCHEDULER_LINKEDIN_OAUTH_API_BASE": "https://li.test/oauth/v2",
    "SCHEDULER_X_API_BASE": "https://x.test/2",
    "SCHEDULER_BLUESKY_API_BASE": "https://pds.test",
    "SCHEDULER_TELEGRAM_API_BASE": "https://tg.test",
    "SCHEDULER_DISCORD_API_BASE": "https://discord.test/api/v10",
    "SCHEDULER_SLACK_API_BASE": "https://slack.test/api",
    "SCHEDULER_X_CLIENT_ID": "x-client",
    "SCHEDULER_X_CLIENT_SECRET": "x-secret",
    "SCHEDULER_LINKEDIN_CLIENT_ID": "li-client",
    "SCHEDULER_LINKEDIN_CLIENT_SECRET": "li-secret",
    "SCHEDULER_SLACK_CLIENT_ID": "slack-client",
    "SCHEDULER_SLACK_CLIENT_SECRET": "slack-secret",
    "SCHEDULER_MEDIA_POLL_INTERVAL_SECONDS": "0",
    "SCHEDULER_MEDIA_POLL_TIMEOUT_SECONDS": "5",
}
SOON = "soon"  # token_expires_at placeholder: within the refresh margin
TOKEN = "TOKEN"  # access_token placeholder: the fake's valid token


@dataclass
class Case:
    name: str
    adapter: type[Any]
    fake: type[Fake]
    connection: dict[str, Any]
    text: tuple[str, str | None]  # expected (id, url) of a text post ({rkey} is filled in)
    image: tuple[str, str | None]
    too_long: str
    media_ref: Any
    rate_wait: float | None
    content_message: str
    config_names: str
    config_connection: dict[str, Any] | None = None
    config_env: dict[str, str | None] | None = None
    refresh_connection: dict[str, Any] | None = None  # a connection that must be refreshed first
    refresh_on_failure: bool = False
    unknown_fails: int = 1  # create calls one lost answer takes (Mastodon re-sends once with its key)
    upload_path: str | None = None  # a preparing request of an image post (upload, container)
    text_needs_image: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("facebook", FacebookAdapter, FacebookFake, {"account_id": "1234"},
         ("1234_999", "https://www.facebook.com/1234/posts/999"), ("1234_777", "https://www.facebook.com/1234_777"),
         "a" * 63_207, IMAGE_URL, 420.0, "Duplicate status message", "account_id"),
    Case("instagram", InstagramAdapter, InstagramFake, {"account_id": "17841"},
         ("m1", "https://posts.test/m1"), ("m1", "https://posts.test/m1"),
         "a" * 2_201, IMAGE_URL, 420.0, "aspect ratio", "account_id",
         refresh_connection={"metadata": {"login": "instagram"}, "token_expires_at": SOON},
         upload_path="/17841/media", text_needs_image=True),
    Case("threads", ThreadsAdapter, ThreadsFake, {"account_id": "42"},
         ("m1", "https://posts.test/m1"), ("m1", "https://posts.test/m1"),
         "🙂" * 126, IMAGE_URL, 420.0, "restricted activity", "account_id",
         refresh_connection={"token_expires_at": SOON}, upload_path="/42/threads"),
    Case("linkedin", LinkedInAdapter, LinkedInFake, {"account_id": "abc"},
         ("urn:li:share:7001", "https://www.linkedin.com/feed/update/urn:li:share:7001"),
         ("urn:li:share:7001", "https://www.linkedin.com/feed/update/urn:li:share:7001"),
         "a" * 3_001, IMAGE, None, "moderation", "SCHEDULER_LINKEDIN_VERSION",
         refresh_connection={"refresh_token": "li-refresh-1", "token_expires_at": SOON}, refresh_on_failure=True,
         upload_path="/rest/images"),
    Case("x", XAdapter, XFake, {"account_id": "99", "metadata": {"username": "alice"}},
         ("1445880548472328192", "https://x.com/alice/status/1445880548472328192"),
         ("1445880548472328192", "https://x.com/alice/status/1445880548472328192"),
         "a" * 24_990 + " https://example.com/" + "x" * 100, IMAGE, 900.0, "duplicate content", "SCHEDULER_X_CLIENT_ID",
         config_connection={"refresh_token": "x-refresh-1", "token_expires_at": SOON},
         config_env={"SCHEDULER_X_CLIENT_ID": None},
         refresh_connection={"refresh_token": "x-refresh-1", "token_expires_at": SOON}, refresh_on_failure=True,
         upload_path="/2/media/upload"),
    Case("bluesky", BlueskyAdapter, BlueskyFake,
         {"account_id": "did:plc:alice", "refresh_token": "refresh-jwt-1", "metadata": {"handle": "alice.test"}},
         ("at://did:plc:alice/app.bsky.feed.post/{rkey}", "https://bsky.app/profile/alice.test/post/{rkey}"),
         ("at://did:plc:alice/app.bsky.feed.post/{rkey}", "https://bsky.app/profile/alice.test/post/{rkey}"),
         "a" * 301, IMAGE, 300.0, "grapheme too big", "metadata.did",
         config_connection={"account_id": None},
         refresh_connection={"token_expires_at": SOON}, refresh_on_failure=True,
         upload_path="com.atproto.repo.uploadBlob"),
    Case("mastodon", MastodonAdapter, MastodonFake, {"metadata": {"instance_url": "https://mastodon.test"}},
         ("103704874086360371", "https://mastodon.test/@alice/103704874086360371"),
         ("103704874086360371", "https://mastodon.test/@alice/103704874086360371"),
         "a" * 501, IMAGE, 300.0, "character limit", "metadata.instance_url", unknown_fails=2,
         upload_path="/api/v2/media"),
    Case("telegram", TelegramAdapter, TelegramFake, {"account_id": "@mychannel"},
         ("42", "https://t.me/mychannel/42"), ("42", "https://t.me/mychannel/42"),
         "a" * 4_097, IMAGE_URL, 17.0, "can't parse entities", "account_id"),
    Case("discord", DiscordAdapter, DiscordFake, {"account_id": "111", "metadata": {"guild_id": "999"}},
         ("1200", "https://discord.com/channels/999/555/1200"), ("1200", "https://discord.com/channels/999/555/1200"),
         "a" * 2_001, IMAGE, 1.5, "Invalid Form Body", "webhook_url", config_connection={"account_id": None}),
    Case("slack", SlackAdapter, SlackFake, {"metadata": {"channel": "C123"}},
         ("1503435956.000247", "https://acme.slack.com/archives/C123/p1503435956000247"),
         ("1503435957.000100", "https://acme.slack.com/archives/C123/p1503435957000100"),
         "a" * 40_001, IMAGE, 30.0, "msg_too_long", "metadata.channel",
         refresh_connection={"refresh_token": "xoxe-1-refresh-1", "token_expires_at": SOON}, refresh_on_failure=True,
         upload_path="files.getUploadURLExternal"),
]
REFRESHABLE = [case for case in CASES if case.refresh_connection is not None]
REFRESH_ON_FAILURE = [case for case in CASES if case.refresh_on_failure]


def settings(overrides: dict[str, str | None] | None = None) -> PlatformSettings:
    env = dict(ENV)
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return PlatformSettings.from_env({k: v for k, v in env.items() if v is not None})


def adapter(case: Case, fake: Fake, env: dict[str, str | None] | None = None) -> PlatformAdapter:
    client = httpx.AsyncClient(transport=fake.transport())
    built: PlatformAdapter = case.adapter(settings(env), client)
    return built


def connection(case: Case, fake: Fake, overrides: dict[str, Any] | None = None) -> Connection:
    values: dict[str, Any] = {
        "id": uuid.uuid5(uuid.NAMESPACE_URL, case.name),
        "user_id": uuid.UUID(int=1),
        "platform": case.name,
        "account_id": None,
        "access_token": TOKEN,
        "refresh_token": None,
        "token_expires_at": None,
        "metadata": {},
    }
    values.update(case.connection)
    values.update(overrides or {})
    if values["access_token"] == TOKEN:
        values["access_token"] = fake.valid_token
    if values["token_expires_at"] == SOON:
        values["token_expires_at"] = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=10)
    return Connection(**values)


def image() -> MediaItem:
    return MediaItem(url=IMAGE_URL, storage_path=None, alt="a cat", mime="image/png")


def post(case: Case, content: str = "Hello from the scheduler", *, with_image: bool = False, n: int = 1) -> Post:
    media = (image(),) if with_image or case.text_needs_image else ()
    return Post(
        id=uuid.UUID(int=n),
        platform=case.name,
        content=content,
        media=media,
        campaign_id=None,
        user_id=uuid.UUID(int=1),
        scheduled_at=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
        attempt=1,
        publish_state={},
    )


def expected(case: Case, which: tuple[str, str | None], for_post: Post) -> tuple[str, str | None]:
    rkey = record_key(for_post.id, for_post.scheduled_at)
    post_id, url = which
    return post_id.format(rkey=rkey), url.format(rkey=rkey) if url else None


def replace(c: Connection, **changes: Any) -> Connection:
    return dataclasses.replace(c, **changes)
