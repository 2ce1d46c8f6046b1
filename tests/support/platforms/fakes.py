"""Local fakes of the ten platform APIs at the httpx transport.

Each fake checks method, path, headers and body of what the adapter sends (an
``AssertionError`` inside the handler fails the test) and answers with the documented
success and error bodies. Shared behaviour:

* ``valid_token``: the token the platform accepts now. Another token gets the
  platform's "expired" answer (or its auth failure where nothing can be refreshed);
  ``revoked = True`` makes every call, refresh included, answer the auth failure.
* ``fail``: failure kinds consumed by the publishing call: ``rate``, ``transient``,
  ``content``, ``config`` answer the documented error and publish nothing. The kinds in
  ``AFTER_COMMIT`` publish and then fail the answer, the failure that hurts most:
  ``unknown`` raises ``httpx.ReadTimeout`` (the answer is lost), ``reset`` drops the
  connection (``httpx.RemoteProtocolError``), ``committed-5xx`` answers the platform's
  own 5xx (its ``transient`` answer), as a gateway does after the backend committed.
* ``fail_at``: path fragment → failure kinds played by the first requests whose path
  contains it, before they do anything (uploads, containers): ``transient`` answers the
  platform's 5xx, ``timeout`` raises ``httpx.ReadTimeout``.
* ``posts``: what the platform really published; ``media_refs``: what it received as
  media (bytes, or the URL it was told to fetch).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import re
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from scheduler_daemon.platforms._rules import find_urls
from scheduler_daemon.platforms.twitter_text import weighted_length

from .context import IMAGE, IMAGE_URL


@dataclass
class Published:
    text: str
    media: list[Any] = field(default_factory=list)


def form(request: httpx.Request) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(request.content.decode()))


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


def bearer(request: httpx.Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[len("Bearer ") :] if value.startswith("Bearer ") else None


def reply(status: int, data: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    if data is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=data, headers=headers)


_jti = iter(range(1, 1_000_000))


def jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part({'exp': int(exp), 'jti': next(_jti), 'scope': 'com.atproto.access'})}.c2ln"


AFTER_COMMIT = ("unknown", "reset", "committed-5xx")


class Fake:
    name = ""
    refreshable = False

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.fail: list[str] = []
        self.valid_token = "good-token"
        self.revoked = False
        self.refresh_calls = 0
        self.publish_calls = 0
        self.posts: list[Published] = []
        self.media_refs: list[Any] = []
        self.fail_at: dict[str, list[str]] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        for fragment, kinds in self.fail_at.items():
            if kinds and fragment in request.url.path:
                if kinds.pop(0) == "timeout":
                    raise httpx.ReadTimeout("timed out", request=request)
                return self.error("transient")
        return await self.route(request)

    async def route(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def error(self, kind: str) -> httpx.Response:
        raise NotImplementedError

    def token_error(self, token: str | None) -> httpx.Response | None:
        if self.revoked:
            return self.error("auth")
        if token != self.valid_token:
            return self.error("expired" if self.refreshable else "auth")
        return None

    def gate(self, request: httpx.Request) -> str | None:
        """At the publishing call: the failure to play, if any (``AFTER_COMMIT`` ones are
        played after publishing; ``refused`` fails to connect: the request never arrived)."""
        kind = self.fail.pop(0) if self.fail else None
        if kind == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        self.publish_calls += 1
        return kind

    def commit_then(self, kind: str | None, request: httpx.Request, answer: httpx.Response) -> httpx.Response:
        """The answer to a publish the platform has committed, as ``kind`` spoils it."""
        if kind == "unknown":
            raise httpx.ReadTimeout("timed out", request=request)
        if kind == "reset":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        if kind == "committed-5xx":
            return self.error("transient")
        return answer

    async def new_tokens(self) -> str:
        for _ in range(3):  # let a concurrent publish reach the row lock meanwhile
            await asyncio.sleep(0)
        self.refresh_calls += 1
        self.valid_token = f"fresh-{self.refresh_calls}"
        return self.valid_token


# --- Meta Graph ---------------------------------------------------------------------------


def graph_error(
    kind: str, content: tuple[int, int | None, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    if kind in ("auth", "expired"):
        return reply(400, {"error": {"message": "Error validating access token: Session has expired",
                                     "type": "OAuthException", "code": 190, "error_subcode": 463,
                                     "fbtrace_id": "A1"}})
    if kind == "rate":
        usage = {"1234": [{"type": "pages", "call_count": 100, "total_cputime": 10, "total_time": 10,
                           "estimated_time_to_regain_access": 7}]}
        return reply(400, {"error": {"message": "(#32) Page request limit reached", "type": "OAuthException",
                                     "code": 32, "fbtrace_id": "A2"}},
                     {"x-business-use-case-usage": json.dumps(usage)})
    if kind == "transient":
        return reply(500, {"error": {"message": "An unexpected error has occurred. Please retry your request later.",
                                     "type": "OAuthException", "code": 2, "is_transient": True}})
    if kind == "config":
        return reply(404, {"error": {"message": "(#803) Some of the aliases you requested do not exist: 1234",
                                     "type": "OAuthException", "code": 803}})
    code, subcode, message = content
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode:
        error["error_subcode"] = subcode
    return reply(400, {"error": error})


class FacebookFake(Fake):
    name = "facebook"
    base = "https://fb.test/v26.0"

    def error(self, kind: str) -> httpx.Response:
        return graph_error(kind, (506, None, "Duplicate status message"))

    async def route(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert request.method == "POST"
        if bad := self.token_error(fields.get("access_token")):
            return bad
        if request.url.path == "/v26.0/1234/photos":
            assert fields["url"] == IMAGE_URL
            self.media_refs.append(fields["url"])
            if fields["published"] == "false":
                return reply(200, {"id": f"ph{len(self.media_refs)}"})
            assert fields["published"] == "true"
            return self.publish(
                request, Published(fields["caption"], [fields["url"]]), {"id": "ph1", "post_id": "1234_777"}
            )
        assert request.url.path == "/v26.0/1234/feed", request.url.path
        assert request.url.params["fields"] == "id,permalink_url"
        media = [m["media_fbid"] for m in json.loads(fields.get("attached_media", "[]"))]
        return self.publish(request, Published(fields["message"], media),
                            {"id": "1234_999", "permalink_url": "https://www.facebook.com/1234/posts/999"})

    def publish(self, request: httpx.Request, post: Published, answer: dict[str, Any]) -> httpx.Response:
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(post)
        return self.commit_then(kind, request, reply(200, answer))


class ContainerFake(Fake):
    """Instagram and Threads: containers, status polls, *_publish, permalink, recent posts."""

    refreshable = True
    root = ""
    version = ""
    user = ""
    create_edge = publish_edge = status_field = caption_field = refresh_grant = ""
    content_error: tuple[int, int | None, str] = (100, None, "")

    def __init__(self) -> None:
        super().__init__()
        self.containers: dict[str, dict[str, Any]] = {}
        self.published: dict[str, str] = {}  # media id → caption
        self.refresh_token_ok = True

    def error(self, kind: str) -> httpx.Response:
        return graph_error(kind, self.content_error)

    async def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/refresh_access_token":
            return await self.refresh(request)
        token = (
            form(request).get("access_token") if request.method == "POST" else request.url.params.get("access_token")
        )
        if bad := self.token_error(token):
            return bad
        prefix = f"/{self.version}/"
        assert path.startswith(prefix), path
        tail = path[len(prefix):]
        if request.method == "POST" and tail == f"{self.user}/{self.create_edge}":
            return self.create(form(request))
        if request.method == "POST" and tail == f"{self.user}/{self.publish_edge}":
            return self.publish(request, form(request)["creation_id"])
        assert request.method == "GET"
        fields = request.url.params["fields"]
        if tail == f"{self.user}/{self.create_edge}":
            data = [{"id": mid, self.caption_field: caption, "permalink": f"https://posts.test/{mid}"}
                    for mid, caption in self.published.items()]
            return reply(200, {"data": data})
        if tail in self.containers:
            assert self.status_field in fields
            container = self.containers[tail]
            container["polls"] += 1
            if container["status"] == "IN_PROGRESS" and container["polls"] > 1:
                container["status"] = "FINISHED"
            return reply(200, {self.status_field: container["status"], "id": tail})
        assert fields == "permalink" and tail in self.published, (tail, fields)
        return reply(200, {"permalink": f"https://posts.test/{tail}", "id": tail})

    def create(self, fields: dict[str, str]) -> httpx.Response:
        cid = f"c{len(self.containers) + 1}"
        if "image_url" in fields:
            assert fields["image_url"] == IMAGE_URL
            self.media_refs.append(fields["image_url"])
        self.containers[cid] = {"status": "IN_PROGRESS", "polls": 0, "fields": fields}
        return reply(200, {"id": cid})

    def publish(self, request: httpx.Request, cid: str) -> httpx.Response:
        container = self.containers[cid]
        assert container["status"] == "FINISHED", f"publishing a {container['status']} container"
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        container["status"] = "PUBLISHED"
        media_id = f"m{len(self.published) + 1}"
        fields = container["fields"]
        self.published[media_id] = fields.get(self.caption_field, "")
        media = [fields["image_url"]] if "image_url" in fields else [
            self.containers[c]["fields"]["image_url"] for c in fields.get("children", "").split(",") if c
        ]
        self.posts.append(Published(fields.get(self.caption_field, ""), media))
        return self.commit_then(kind, request, reply(200, {"id": media_id}))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.params["grant_type"] == self.refresh_grant
        if self.revoked or request.url.params["access_token"] != self.valid_token:
            return self.error("auth")
        token = await self.new_tokens()
        return reply(200, {"access_token": token, "token_type": "bearer", "expires_in": 5_184_000})


class InstagramFake(ContainerFake):
    name = "instagram"
    version = "v26.0"
    user = "17841"
    create_edge, publish_edge, status_field, caption_field = "media", "media_publish", "status_code", "caption"
    refresh_grant = "ig_refresh_token"
    content_error = (36003, 2207009, "The submitted image with aspect ratio ('0.3/1') cannot be published.")


class ThreadsFake(ContainerFake):
    name = "threads"
    version = "v1.0"
    user = "42"
    create_edge, publish_edge, status_field, caption_field = "threads", "threads_publish", "status", "text"
    refresh_grant = "th_refresh_token"
    content_error = (100, 2207051, "This action was blocked: restricted activity")

    def create(self, fields: dict[str, str]) -> httpx.Response:
        assert fields["media_type"] in ("TEXT", "IMAGE", "CAROUSEL")
        if len(find_urls(fields.get("text", ""))) > 5:  # since 2025-12-22
            return reply(400, {"error": {"message": "The post has too many links.", "type": "THApiException",
                                         "code": 100, "error_subcode": 4279009,
                                         "error_user_msg": "THREADS_API__LINK_LIMIT_EXCEEDED"}})
        return super().create(fields)


# --- LinkedIn -----------------------------------------------------------------------------


LITTLE_TEXT_RESERVED = set("\\|{}@[]()<>#*_~")
_LINK = re.compile(r"(?:https?://|www\.)\S+|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?:[/?#:]\S*)?")
_HASHTAG_TEMPLATE = re.compile(r"\{hashtag\|\\#\|((?:[^\\{}|]|\\.)+)\}")


def little_text(commentary: str) -> tuple[str, list[str], list[str]]:
    """What LinkedIn shows of a commentary: (text, hashtags, auto-linked URLs).

    ``{hashtag|\\#|tag}`` is a hashtag; a backslash escapes the next character; a URL
    written out links (a backslash inside breaks it); a reserved character left bare
    cuts the text there, as LinkedIn's docs warn."""
    shown: list[str] = []
    hashtags: list[str] = []
    links: list[str] = []
    i = 0
    while i < len(commentary):
        at_word_start = i == 0 or commentary[i - 1].isspace() or commentary[i - 1] in "(["
        template = _HASHTAG_TEMPLATE.match(commentary, i)
        link = _LINK.match(commentary, i) if at_word_start else None
        char = commentary[i]
        if template:
            tag = re.sub(r"\\(.)", r"\1", template.group(1))
            hashtags.append(tag)
            shown.append("#" + tag)
            i = template.end()
        elif link and "\\" not in link.group():
            links.append(link.group())
            shown.append(link.group())
            i = link.end()
        elif char == "\\" and i + 1 < len(commentary):
            shown.append(commentary[i + 1])
            i += 2
        elif char in LITTLE_TEXT_RESERVED:
            break  # "unescaped reserved characters may truncate the text"
        else:
            shown.append(char)
            i += 1
    return "".join(shown), hashtags, links


class LinkedInFake(Fake):
    name = "linkedin"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "li-refresh-1"
        # The months LinkedIn serves in December 2026 (each lives about a year).
        self.active_versions = {"202601", "202602", "202603", "202604", "202605", "202606", "202607"}
        self.images: dict[str, str] = {}
        self.commentaries: dict[str, str] = {}
        self.hashtags: list[list[str]] = []  # per post, the hashtags LinkedIn made of it
        self.links: list[list[str]] = []  # per post, the URLs it auto-linked

    def error(self, kind: str) -> httpx.Response:
        bodies = {
            "auth": (401, {"status": 401, "serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN",
                           "message": "The token used in the request has been revoked by the user"}),
            "expired": (401, {"status": 401, "serviceErrorCode": 65602, "code": "EXPIRED_ACCESS_TOKEN",
                              "message": "The token used in the request has expired"}),
            "rate": (429, {"status": 429, "message": "Resource level throttle APPLICATION DAY limit reached"}),
            "transient": (503, {"status": 503, "message": "Service Unavailable"}),
            "content": (422, {"status": 422, "serviceErrorCode": 100, "code": "UNPROCESSABLE_ENTITY",
                              "message": "ERROR :: /commentary :: Text is not allowed by moderation"}),
            "config": (426, {"status": 426, "code": "NONEXISTENT_VERSION",
                             "message": "Requested version 20200615 is not active"}),
        }
        status, data = bodies[kind]
        return reply(status, data)

    async def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "li-upload.test":
            assert request.method == "PUT" and bearer(request) == self.valid_token
            self.media_refs.append(request.content)
            return reply(201)
        if request.url.path == "/oauth/v2/accessToken":
            return await self.refresh(request)
        version = request.headers["linkedin-version"]
        if version not in self.active_versions:  # a sunset (or never released) version
            return reply(426, {"status": 426, "code": "NONEXISTENT_VERSION",
                               "message": f"Requested version {version} is not active"})
        assert request.headers["x-restli-protocol-version"] == "2.0.0"
        if bad := self.token_error(bearer(request)):
            return bad
        if request.url.path == "/rest/images" and request.method == "POST":
            assert request.url.params["action"] == "initializeUpload"
            assert body(request) == {"initializeUploadRequest": {"owner": "urn:li:person:abc"}}
            urn = f"urn:li:image:I{len(self.images) + 1}"
            self.images[urn] = "PROCESSING"
            return reply(200, {"value": {"uploadUrl": f"https://li-upload.test/up/{urn[-2:]}", "image": urn,
                                         "uploadUrlExpiresAt": 1_700_000_000_000}})
        if request.url.path.startswith("/rest/images/"):
            urn = urllib.parse.unquote(request.url.raw_path.decode().rsplit("/", 1)[-1])
            assert request.method == "GET" and urn in self.images, request.url.raw_path
            status, self.images[urn] = self.images[urn], "AVAILABLE"
            return reply(200, {"id": urn, "status": status})
        assert request.method == "POST" and request.url.path == "/rest/posts"
        return self.publish(request, body(request))

    def publish(self, request: httpx.Request, post: dict[str, Any]) -> httpx.Response:
        assert post["author"] == "urn:li:person:abc"
        assert post["lifecycleState"] == "PUBLISHED" and post["visibility"] == "PUBLIC"
        assert post["distribution"]["feedDistribution"] == "MAIN_FEED"
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        commentary = post["commentary"]
        if commentary in self.commentaries:
            urn = self.commentaries[commentary]
            return reply(422, {  # as LinkedIn answers it
                "errorDetailType": "com.linkedin.common.error.BadRequest",
                "message": "com.linkedin.content.common.exception.BadRequestResponseException: "
                           f"Content is a duplicate of {urn}",
                "errorDetails": {"inputErrors": [
                    {"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}
                ]},
                "status": 422,
            })
        media = post.get("content", {}).get("media")
        if media:
            assert media["id"] in self.images and self.images[media["id"]] == "AVAILABLE"
        urn = f"urn:li:share:{7000 + len(self.commentaries) + 1}"
        self.commentaries[commentary] = urn
        shown, hashtags, links = little_text(commentary)
        self.hashtags.append(hashtags)
        self.links.append(links)
        self.posts.append(Published(shown, [media["id"]] if media else []))
        return self.commit_then(kind, request, reply(201, None, {"x-restli-id": urn}))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert fields["grant_type"] == "refresh_token"
        assert (fields["client_id"], fields["client_secret"]) == ("li-client", "li-secret")
        if self.revoked or fields["refresh_token"] != self.refresh_token:
            return reply(
                400, {"error": "invalid_grant", "error_description": "The provided authorization grant is invalid"}
            )
        token = await self.new_tokens()
        self.refresh_token = f"li-refresh-{self.refresh_calls + 1}"
        return reply(200, {"access_token": token, "expires_in": 5_184_000, "refresh_token": self.refresh_token,
                           "refresh_token_expires_in": 31_536_000})


# --- X ------------------------------------------------------------------------------------


class XFake(Fake):
    name = "x"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "x-refresh-1"
        self.media_ids: list[str] = []
        self.max_chars = 280  # the account's limit (25,000 with X Premium)

    def error(self, kind: str) -> httpx.Response:
        if kind in ("auth", "expired"):
            return reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})
        if kind == "rate":
            reset = str(int(time.time()) + 900)
            return reply(429, {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
                               "status": 429},
                         {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})
        if kind == "transient":
            return reply(503, {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank",
                               "status": 503})
        if kind == "usage-capped":  # the plan's monthly cap or the credits are used up
            return reply(429, {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
                               "type": "https://api.twitter.com/2/problems/usage-capped", "period": "Monthly",
                               "scope": "Product", "status": 429})
        return reply(403, {"detail": "You are not allowed to create a Tweet with duplicate content.",
                           "type": "about:blank", "title": "Forbidden", "status": 403})

    async def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/2/oauth2/token":
            return await self.refresh(request)
        if bad := self.token_error(bearer(request)):
            return bad
        if path == "/2/media/upload":
            assert request.method == "POST"
            assert request.headers["content-type"].startswith("multipart/form-data")
            assert b'name="media_category"' in request.content and b"tweet_image" in request.content
            assert IMAGE in request.content
            self.media_refs.append(IMAGE)
            media_id = f"7105113633453547{len(self.media_ids) + 10}"
            self.media_ids.append(media_id)
            return reply(200, {"data": {"id": media_id, "media_key": f"3_{media_id}", "size": len(IMAGE)}})
        assert request.method == "POST" and path == "/2/tweets", path
        tweet = body(request)
        if weighted_length(tweet["text"]) > self.max_chars:  # X counts with twitter-text v3
            return reply(400, {"errors": [{"message": "Your Tweet text is too long."}], "title": "Invalid Request",
                               "detail": "One or more parameters to your request was invalid.",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        media = tweet.get("media", {}).get("media_ids", [])
        assert all(m in self.media_ids for m in media)
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(Published(tweet["text"], media))
        answer = {"data": {"id": "1445880548472328192", "text": tweet["text"]}}
        return self.commit_then(kind, request, reply(201, answer))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert fields["grant_type"] == "refresh_token" and fields["client_id"] == "x-client"
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"x-client:x-secret").decode()
        if self.revoked or fields["refresh_token"] != self.refresh_token:
            return reply(
                400, {"error": "invalid_request", "error_description": "Value passed for the token was invalid."}
            )
        token = await self.new_tokens()
        self.refresh_token = f"x-refresh-{self.refresh_calls + 1}"  # rotating: the old one is dead now
        return reply(
            200,
            {
                "token_type": "bearer",
                "expires_in": 7200,
                "access_token": token,
                "scope": "tweet.write users.read tweet.read offline.access",
                "refresh_token": self.refresh_token,
            },
        )


# --- Bluesky ------------------------------------------------------------------------------


class BlueskyFake(Fake):
    """A PDS as documented and as the reference PDS behaves: XRPC errors ``{"error",
    "message"}``; an expired access JWT answers 400 ``ExpiredToken``; ``refreshSession``
    rotates the pair and refuses a used or revoked refresh JWT with 400 ``ExpiredToken``
    "Token has been revoked" (``revoked``: the session was revoked, its access JWT has
    expired); ``putRecord`` of an identical record is a no-op answered without
    ``commit``; ``getRecord`` answers 400 ``RecordNotFound``; ``resolveHandle`` knows
    ``handles``."""

    name = "bluesky"
    refreshable = True
    did = "did:plc:alice"

    def __init__(self) -> None:
        super().__init__()
        self.valid_token = jwt(time.time() + 7200)
        self.refresh_token = "refresh-jwt-1"
        self.records: dict[str, dict[str, Any]] = {}
        self.handles = {"alice.test": self.did, "bob.test": "did:plc:bob"}
        self.blobs: dict[str, bytes] = {}

    def error(self, kind: str) -> httpx.Response:
        bodies = {
            "auth": (400, {"error": "InvalidToken", "message": "Token could not be verified"}),
            "expired": (400, {"error": "ExpiredToken", "message": "Token has expired"}),
            "rate": (429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}),
            "transient": (502, {"error": "UpstreamFailure", "message": "Upstream Failure"}),
            "content": (
                400,
                {
                    "error": "InvalidRequest",
                    "message": "Invalid app.bsky.feed.post record: grapheme too big (maximum 300, got 301)"
                    " at $.record.text",
                },
            ),
        }
        status, data = bodies[kind]
        headers = {"ratelimit-limit": "5000", "ratelimit-remaining": "0",
                   "ratelimit-reset": str(int(time.time()) + 300)} if kind == "rate" else None
        return reply(status, data, headers)

    def token_error(self, token: str | None) -> httpx.Response | None:
        return self.error("expired") if self.revoked else super().token_error(token)

    @staticmethod
    def cid(value: Any) -> str:
        return "bafyrei" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:40]

    async def route(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.removeprefix("/xrpc/")
        if request.method == "GET":
            return self.query(method, dict(request.url.params))
        assert request.method == "POST"
        if method == "com.atproto.server.refreshSession":
            return await self.refresh(request)
        if bad := self.token_error(bearer(request)):
            return bad
        if method == "com.atproto.repo.uploadBlob":
            assert request.headers["content-type"].startswith("image/") and request.content
            self.media_refs.append(request.content)
            link = self.cid(base64.b64encode(request.content).decode())
            self.blobs[link] = request.content
            return reply(200, {"blob": {"$type": "blob", "ref": {"$link": link},
                                        "mimeType": request.headers["content-type"], "size": len(request.content)}})
        assert method == "com.atproto.repo.putRecord", method
        data = body(request)
        assert data["repo"] == self.did and data["collection"] == "app.bsky.feed.post" and len(data["rkey"]) == 13
        record = data["record"]
        assert record["$type"] == "app.bsky.feed.post" and record["createdAt"].endswith("Z")
        dt.datetime.fromisoformat(record["createdAt"])
        for facet in record.get("facets", []):
            assert 0 <= facet["index"]["byteStart"] < facet["index"]["byteEnd"] <= len(record["text"].encode())
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        uri = f"at://{self.did}/app.bsky.feed.post/{data['rkey']}"
        answer: dict[str, Any] = {"uri": uri, "cid": self.cid(record), "validationStatus": "valid"}
        if self.records.get(data["rkey"]) != record:  # an identical rewrite is a no-op
            if data["rkey"] not in self.records:
                embed = record.get("embed", {})
                refs = [i["image"]["ref"]["$link"] for i in embed.get("images", [])]
                self.posts.append(Published(record["text"], refs))
            self.records[data["rkey"]] = record
            answer["commit"] = {"cid": "bafyreicommit", "rev": f"3l{len(self.records):011d}"}
        return self.commit_then(kind, request, reply(200, answer))

    def query(self, method: str, params: dict[str, str]) -> httpx.Response:
        if method == "com.atproto.identity.resolveHandle":
            if did := self.handles.get(params["handle"]):
                return reply(200, {"did": did})
            error = "HandleNotFound" if params["handle"].endswith(".test") else "InvalidRequest"
            return reply(400, {"error": error, "message": "Unable to resolve handle"})
        assert method == "com.atproto.repo.getRecord", method
        assert params["repo"] == self.did and params["collection"] == "app.bsky.feed.post"
        uri = f"at://{self.did}/app.bsky.feed.post/{params['rkey']}"
        if (record := self.records.get(params["rkey"])) is None:
            return reply(400, {"error": "RecordNotFound", "message": f"Could not locate record: {uri}"})
        return reply(200, {"uri": uri, "cid": self.cid(record), "value": record})

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        if self.revoked or bearer(request) != self.refresh_token:
            return reply(400, {"error": "ExpiredToken", "message": "Token has been revoked"})
        await self.new_tokens()
        self.valid_token = jwt(time.time() + 7200)
        self.refresh_token = f"refresh-jwt-{self.refresh_calls + 1}"
        return reply(200, {"accessJwt": self.valid_token, "refreshJwt": self.refresh_token, "did": self.did,
                           "handle": "alice.test"})


# --- Mastodon -----------------------------------------------------------------------------


class MastodonFake(Fake):
    """Mastodon: ``Idempotency-Key`` remembered for one hour (``PostStatusService``
    stores it with a 3,600 s expiry), async media (202, then 206 until processed),
    422 for a status with unprocessed media. ``clock`` is the instance's time."""

    name = "mastodon"
    IDEMPOTENCY_SECONDS = 3600

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, tuple[float, dict[str, Any]]] = {}  # key → (stored at, status)
        self.media: dict[str, int] = {}
        self.clock = 0.0
        self.processing_polls = 1  # GET /api/v1/media/{id} answers 206 this many times

    def error(self, kind: str) -> httpx.Response:
        reset = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=300)).isoformat(timespec="microseconds")
        bodies = {
            "auth": (401, {"error": "The access token is invalid"}, None),
            "rate": (
                429,
                {"error": "Too many requests"},
                {
                    "x-ratelimit-limit": "300",
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": reset.replace("+00:00", "Z"),
                },
            ),
            "transient": (503, {"error": "Remote data could not be fetched"}, None),
            "content": (422, {"error": "Validation failed: Text character limit of 500 exceeded"}, None),
            "config": (404, {"error": "Record not found"}, None),
        }
        status, data, headers = bodies[kind]
        return reply(status, data, headers)

    async def route(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == "mastodon.test"
        if bad := self.token_error(bearer(request)):
            return bad
        path = request.url.path
        if path == "/api/v2/media":
            assert request.method == "POST" and IMAGE in request.content and b'name="file"' in request.content
            assert b'name="description"' in request.content and b"a cat" in request.content
            self.media_refs.append(IMAGE)
            media_id = f"2234864{len(self.media) + 1}"
            self.media[media_id] = 0
            return reply(202, {"id": media_id, "type": "image", "url": None})
        if path.startswith("/api/v1/media/"):
            media_id = path.rsplit("/", 1)[-1]
            self.media[media_id] += 1
            if self.media[media_id] <= self.processing_polls:
                return reply(206, {"id": media_id, "url": None})
            return reply(200, {"id": media_id, "url": "https://files.test/x.png"})
        assert request.method == "POST" and path == "/api/v1/statuses"
        key = request.headers["idempotency-key"]
        data = body(request)
        assert data["visibility"] == "public"
        if any(self.media[m] <= self.processing_polls for m in data.get("media_ids", [])):
            refusal = "Cannot attach files that have not finished processing. Try again in a moment!"
            return reply(422, {"error": refusal})
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        stored = self.keys.get(key)
        if stored is None or self.clock - stored[0] >= self.IDEMPOTENCY_SECONDS:
            # A new key, or one the instance has forgotten after an hour: a new status.
            status_id = f"10370487408636037{len(self.posts) + 1}"
            stored = (self.clock, {"id": status_id, "url": f"https://mastodon.test/@alice/{status_id}"})
            self.keys[key] = stored
            self.posts.append(Published(data["status"], data.get("media_ids", [])))
        return self.commit_then(kind, request, reply(200, stored[1]))


# --- Telegram -----------------------------------------------------------------------------


def telegram_fields(request: httpx.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The fields of a JSON or multipart Bot API call, and the uploaded files' bytes."""
    if not request.headers["content-type"].startswith("multipart/form-data"):
        return body(request), {}
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, Any] = {}
    uploads: dict[str, bytes] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        if b"filename=" in head:
            uploads[name] = value
        else:
            fields[name] = value.decode()
    return fields, uploads


RESERVED = {"MarkdownV2": set("_*[]()~`>#+-=|{}.!\\"), "Markdown": set("_*`[")}


def parse_entities(text: str, parse_mode: str | None) -> str | None:
    """The text Telegram shows, or None where it answers "can't parse entities". Only
    escapes are modelled: any unescaped reserved character fails, as formatting does
    not occur in the tests."""
    if parse_mode in RESERVED:
        reserved, shown, escaped = RESERVED[parse_mode], [], False
        for char in text:
            if escaped:
                if char not in reserved and parse_mode == "Markdown":
                    shown.append("\\")  # legacy Markdown keeps a backslash before other characters
                shown.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char in reserved:
                return None
            else:
                shown.append(char)
        return None if escaped else "".join(shown)
    if parse_mode == "HTML":
        if "<" in text or ">" in text or re.search(r"&(?!(?:amp|lt|gt|quot);)", text):
            return None
        return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    return text


class TelegramFake(Fake):
    name = "telegram"

    def __init__(self) -> None:
        super().__init__()
        self.url_sizes: dict[str, int] = {}  # the size Telegram finds at a photo URL

    def error(self, kind: str) -> httpx.Response:
        bodies = {
            "auth": (401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
            "rate": (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 17",
                           "parameters": {"retry_after": 17}}),
            "transient": (502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
            "content": (400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse entities"}),
            "config": (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
        }
        status, data = bodies[kind]
        return reply(status, data)

    async def route(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and "authorization" not in request.headers
        _, bot, method = request.url.path.split("/")
        if bad := self.token_error(bot.removeprefix("bot")):
            return bad
        data, uploads = telegram_fields(request)
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        if str(data["chat_id"]) == "-100old":
            return reply(400, {"ok": False, "error_code": 400,
                               "description": "Bad Request: group chat was upgraded to a supergroup chat",
                               "parameters": {"migrate_to_chat_id": -100777}})
        if method == "sendPhoto":
            photo = uploads["photo"] if "photo" in uploads else data["photo"]
            if isinstance(photo, str):
                assert photo.startswith("https://")
                if self.url_sizes.get(photo, 0) > 5 * 1024 * 1024:  # Telegram fetches at most 5 MB
                    return reply(400, {"ok": False, "error_code": 400,
                                       "description": "Bad Request: wrong file identifier/HTTP URL specified"})
            self.media_refs.append(photo)
            text, limit = data.get("caption", ""), 1024
        else:
            assert method == "sendMessage", method
            text, limit = data["text"], 4096
        parsed = parse_entities(text, data.get("parse_mode"))
        if parsed is None:
            return reply(400, {"ok": False, "error_code": 400,
                               "description": "Bad Request: can't parse entities: Character '.' is reserved "
                                              "and must be escaped with the preceding '\\'"})
        if len(parsed.encode("utf-16-le")) // 2 > limit:  # counted after entity parsing
            return reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        self.posts.append(Published(parsed, [self.media_refs[-1]] if method == "sendPhoto" else []))
        message = {"message_id": 41 + len(self.posts), "date": 1_700_000_000,
                   "chat": {"id": -1001234, "type": "channel", "title": "My channel", "username": "mychannel"}}
        return self.commit_then(kind, request, reply(200, {"ok": True, "result": message}))


# --- Discord ------------------------------------------------------------------------------


def discord_pings(content: str, allowed: dict[str, Any] | None) -> list[str]:
    """Who a message notifies: without ``allowed_mentions`` everything in the content
    (``@everyone``/``@here``, ``<@user>``, ``<@&role>``); with it only the listed kinds."""
    kinds = {"everyone", "users", "roles"} if allowed is None else set(allowed.get("parse", []))
    pings = []
    if "everyone" in kinds:
        pings += re.findall(r"@(?:everyone|here)\b", content)
    if "users" in kinds:
        pings += re.findall(r"<@!?\d+>", content)
    if "roles" in kinds:
        pings += re.findall(r"<@&\d+>", content)
    return pings


class DiscordFake(Fake):
    name = "discord"

    def __init__(self) -> None:
        super().__init__()
        self.pinged: list[str] = []

    def error(self, kind: str) -> httpx.Response:
        bodies = {
            "auth": (404, {"message": "Unknown Webhook", "code": 10015}, None),
            "rate": (
                429,
                {"message": "You are being rate limited.", "retry_after": 1.5, "global": False},
                {"retry-after": "2", "x-ratelimit-scope": "shared"},
            ),
            "transient": (502, {"message": "502: Bad Gateway", "code": 0}, None),
            "content": (
                400,
                {
                    "code": 50035,
                    "message": "Invalid Form Body",
                    "errors": {
                        "content": {
                            "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
                        }
                    },
                },
                None,
            ),
        }
        status, data, headers = bodies[kind]
        return reply(status, data, headers)

    async def route(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        _, _, _, hook, webhook_id, token = request.url.path.split("/")
        assert (hook, webhook_id) == ("webhooks", "111")
        if bad := self.token_error(token):
            return bad
        assert request.url.params["wait"] == "true"
        if request.headers["content-type"].startswith("multipart/form-data"):
            assert IMAGE in request.content and b'name="files[0]"' in request.content
            start = request.content.index(b'name="payload_json"')
            payload = json.loads(request.content[start:].split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0])
            assert payload["attachments"][0]["id"] == 0
            self.media_refs.append(IMAGE)
            media = [payload["attachments"][0]["filename"]]
        else:
            payload, media = body(request), []
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(Published(payload["content"], media))
        self.pinged.extend(discord_pings(payload["content"], payload.get("allowed_mentions")))
        message = {"id": "1200", "channel_id": "555", "content": payload["content"], "webhook_id": "111"}
        return self.commit_then(kind, request, reply(200, message))


# --- Slack --------------------------------------------------------------------------------


class SlackFake(Fake):
    name = "slack"
    refreshable = True

    def __init__(self) -> None:
        super().__init__()
        self.refresh_token = "xoxe-1-refresh-1"
        self.markup: list[str] = []  # <…> Slack read as markup (a link, a mention, <!channel>)
        self.alt_texts: list[str | None] = []
        self.titles: list[str | None] = []

    def error(self, kind: str) -> httpx.Response:
        if kind == "rate":
            return reply(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "30"})
        if kind == "transient":
            return reply(503, None)
        error = {"auth": "invalid_auth", "expired": "token_expired", "content": "msg_too_long",
                 "config": "channel_not_found"}[kind]
        return reply(200, {"ok": False, "error": error})

    async def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "files.slack.test":
            assert request.method == "POST" and request.content == IMAGE
            self.media_refs.append(request.content)
            return httpx.Response(200, text="OK - 42")
        method = request.url.path.removeprefix("/api/")
        if method == "oauth.v2.access":
            return await self.refresh(request)
        assert request.method == "POST"
        if bad := self.token_error(bearer(request)):
            return bad
        if method == "chat.postMessage":
            assert request.headers["content-type"] == "application/json; charset=utf-8"
            data = body(request)
            assert data["channel"] == "C123"
            return self.publish(
                request,
                Published(self.shown(data["text"])),
                {"ok": True, "channel": "C123", "ts": "1503435956.000247", "message": {"text": data["text"]}},
            )
        fields = form(request)
        if method == "chat.getPermalink":
            return reply(
                200,
                {
                    "ok": True,
                    "channel": fields["channel"],
                    "permalink": f"https://acme.slack.com/archives/{fields['channel']}"
                    f"/p{fields['message_ts'].replace('.', '')}",
                },
            )
        if method == "files.getUploadURLExternal":
            assert int(fields["length"]) == len(IMAGE) and fields["filename"] == "cat.png"
            self.alt_texts.append(fields.get("alt_txt"))
            return reply(200, {"ok": True, "upload_url": "https://files.slack.test/upload/v1/abc", "file_id": "F123"})
        assert method == "files.completeUploadExternal", method
        files = json.loads(fields["files"])
        assert files[0]["id"] == "F123" and fields["channel_id"] == "C123"
        self.titles.append(files[0].get("title"))
        answer = {"ok": True, "files": [{"id": "F123", "shares": {"public": {"C123": [{"ts": "1503435957.000100"}]}}}]}
        return self.publish(request, Published(self.shown(fields.get("initial_comment", "")), ["F123"]), answer)

    def shown(self, text: str) -> str:
        """What Slack shows: ``<…>`` is its markup (links, ``<!channel>`` pings), the three
        entities are the characters."""
        self.markup.extend(re.findall(r"<[^>]*>", text))
        return re.sub(r"<[^>]*>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

    def publish(self, request: httpx.Request, post: Published, answer: dict[str, Any]) -> httpx.Response:
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(post)
        return self.commit_then(kind, request, reply(200, answer))

    async def refresh(self, request: httpx.Request) -> httpx.Response:
        fields = form(request)
        assert fields["grant_type"] == "refresh_token"
        assert (fields["client_id"], fields["client_secret"]) == ("slack-client", "slack-secret")
        if self.revoked or fields["refresh_token"] != self.refresh_token:
            return reply(200, {"ok": False, "error": "invalid_refresh_token"})
        token = await self.new_tokens()
        self.refresh_token = f"xoxe-1-refresh-{self.refresh_calls + 1}"
        return reply(200, {"ok": True, "access_token": token, "refresh_token": self.refresh_token,
                           "expires_in": 43_200, "token_type": "bot"})
