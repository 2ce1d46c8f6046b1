"""LinkedIn Posts and Images APIs, with its little-text rendering."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, bearer, body, form, reply

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
        self.bodies: list[dict[str, Any]] = []  # each post as LinkedIn received it
        self.videos: dict[str, dict[str, Any]] = {}  # urn → size, parts (etag → bytes), status
        self.part_bytes = 4 * 1024 * 1024  # LinkedIn's upload parts
        self.video_outcome = "AVAILABLE"  # or PROCESSING_FAILED
        self.processing_answers = 1  # status answers that say PROCESSING before the outcome
        self.comments: list[dict[str, Any]] = []

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
            if request.url.path.startswith("/video/"):
                return self.video_part(request)
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
        if request.url.path.startswith("/rest/videos"):
            return self.video(request)
        if request.url.path.startswith("/rest/socialActions/"):
            return self.comment(request)
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
        assert post["lifecycleState"] == "PUBLISHED" and post["visibility"] in ("PUBLIC", "CONNECTIONS", "LOGGED_IN")
        assert isinstance(post["isReshareDisabledByAuthor"], bool)
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
            assert (self.images.get(media["id"]) or self.videos[media["id"]]["status"]) == "AVAILABLE"
        many = post.get("content", {}).get("multiImage", {}).get("images", [])
        assert len(many) != 1 and all(self.images[i["id"]] == "AVAILABLE" for i in many)
        urn = f"urn:li:share:{7000 + len(self.commentaries) + 1}"
        self.commentaries[commentary] = urn
        shown, hashtags, links = little_text(commentary)
        self.hashtags.append(hashtags)
        self.links.append(links)
        self.posts.append(Published(shown, [media["id"]] if media else [i["id"] for i in many]))
        self.bodies.append(post)
        return self.commit_then(kind, request, reply(201, None, {"x-restli-id": urn}))

    def video(self, request: httpx.Request) -> httpx.Response:
        """The Videos API: initializeUpload (byte ranges of ``part_bytes``), finalizeUpload
        (every part's ETag, in order), and the status: PROCESSING, then ``video_outcome``."""
        if request.method == "GET":
            urn = urllib.parse.unquote(request.url.raw_path.decode().rsplit("/", 1)[-1])
            video = self.videos[urn]
            assert video["status"] != "WAITING_UPLOAD", "status asked before finalizeUpload"
            video["polls"] = video.get("polls", 0) + 1
            if video["status"] == "PROCESSING" and video["polls"] > self.processing_answers:
                video["status"] = self.video_outcome
            status = video["status"]
            answer = {"id": urn, "status": status}
            if status == "PROCESSING_FAILED":
                answer["processingFailureReason"] = "Video is corrupted"
            return reply(200, answer)
        action = request.url.params["action"]
        if action == "initializeUpload":
            init = body(request)["initializeUploadRequest"]
            assert init["owner"] == "urn:li:person:abc" and init["fileSizeBytes"] > 0
            urn = f"urn:li:video:V{len(self.videos) + 1}"
            size = init["fileSizeBytes"]
            ranges = [(start, min(start + self.part_bytes, size) - 1) for start in range(0, size, self.part_bytes)]
            self.videos[urn] = {"size": size, "parts": {}, "status": "WAITING_UPLOAD", "token": f"tok-{urn[-2:]}"}
            instructions = [{"uploadUrl": f"https://li-upload.test/video/{urn[-2:]}/{n}", "firstByte": first,
                             "lastByte": last} for n, (first, last) in enumerate(ranges)]
            return reply(200, {"value": {"video": urn, "uploadInstructions": instructions,
                                         "uploadToken": self.videos[urn]["token"],
                                         "uploadUrlsExpireAt": 1_700_000_000_000}})
        assert action == "finalizeUpload", action
        done = body(request)["finalizeUploadRequest"]
        video = self.videos[done["video"]]
        assert done["uploadToken"] == video["token"] and done["uploadedPartIds"] == list(video["parts"])
        assert sum(len(p) for p in video["parts"].values()) == video["size"]
        video["status"] = "PROCESSING"
        self.media_refs.append(b"".join(video["parts"].values()))
        return reply(200, None)

    def video_part(self, request: httpx.Request) -> httpx.Response:
        _, _, key, number = request.url.path.split("/")
        video = self.videos[f"urn:li:video:{key}"]
        assert request.headers["content-length"] == str(len(request.content))
        etag = f'"etag-{key}-{number}"'
        video["parts"][etag] = request.content
        return reply(200, None, {"etag": etag})

    def comment(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        on = urllib.parse.unquote(request.url.raw_path.decode().split("/")[3])
        data = body(request)
        assert data["object"] == on and data["actor"] == "urn:li:person:abc"
        assert on in self.commentaries.values(), "a comment on a post that is not out"
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        urn = f"urn:li:comment:(urn:li:activity:{on.rsplit(':', 1)[-1]},{len(self.comments) + 1})"
        self.comments.append({"on": on, "text": data["message"]["text"], "id": urn})
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
