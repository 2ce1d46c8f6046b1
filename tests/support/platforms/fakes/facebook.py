"""Facebook Pages (Graph API): feed posts, photos (published or not, with alt text), Reels
(start, the rupload upload, status, finish), Page videos (the Resumable Upload API's
session, upload and offset read; ``/{page}/videos``; status) and comments.

A Reel's upload is ``in_progress`` at its first status read and ``complete`` at the next,
unless ``video_outcome`` is ``error`` (the platform's reason). ``uploads``: the bytes each
Reel upload received; ``comments`` the comments posted (``comment_fail``: failure kinds
the comment calls play); ``alts`` each photo's ``alt_text_custom``.

Page videos: ``sessions`` holds what each upload session (``upload:s<n>``) received; an
upload must start at the session's ``file_offset`` (else Graph's error), and the session
answers the handle ``h`` once it holds ``file_length`` bytes. ``upload_cuts``: for each
upload request in turn, the bytes the server keeps before the connection drops (the
interrupted upload a client resumes from the offset it reads). A video is ``processing``
at its first status read and ``ready`` (or ``error``: ``page_video_outcome``) at the next;
``page_videos`` the videos created.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, form, reply
from .graph import graph_error

UPLOAD_HOST = "fb-upload.test"


class FacebookFake(Fake):
    name = "facebook"
    base = "https://fb.test/v26.0"

    def __init__(self) -> None:
        super().__init__()
        self.uploads: dict[str, bytes] = {}
        self.reels: dict[str, dict[str, Any]] = {}
        self.video_outcome = "complete"
        self.comments: list[dict[str, str]] = []
        self.comment_fail: list[str] = []
        self.alts: list[str | None] = []
        self.post_ids: set[str] = set()
        self.sessions: dict[str, dict[str, Any]] = {}
        self.upload_cuts: list[int] = []
        self.page_videos: dict[str, dict[str, Any]] = {}
        self.page_video_outcome = "ready"

    def error(self, kind: str) -> httpx.Response:
        return graph_error(kind, (506, None, "Duplicate status message"))

    async def route(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == UPLOAD_HOST:
            return self.upload(request)
        path = request.url.path
        if path.startswith("/v26.0/upload:"):
            return self.session(request, path.removeprefix("/v26.0/"))
        if path == "/v26.0/4321/uploads":
            return self.new_session(request)
        if request.method == "GET":
            return self.status(request)
        fields = form(request)
        assert request.method == "POST"
        if bad := self.token_error(fields.get("access_token")):
            return bad
        if path == "/v26.0/1234/videos":
            return self.page_video(request, fields)
        if path == "/v26.0/1234/photos":
            return self.photo(request, fields)
        if path == "/v26.0/1234/video_reels":
            return self.reel(request, fields)
        if path.endswith("/comments"):
            return self.comment(path.split("/")[2], fields)
        assert path == "/v26.0/1234/feed", path
        assert request.url.params["fields"] == "id,permalink_url"
        media = [m["media_fbid"] for m in json.loads(fields.get("attached_media", "[]"))]
        return self.publish(request, Published(fields["message"], media),
                            {"id": "1234_999", "permalink_url": "https://www.facebook.com/1234/posts/999"})

    def photo(self, request: httpx.Request, fields: dict[str, str]) -> httpx.Response:
        assert fields["url"].startswith("https://cdn.test/pics/"), fields["url"]
        self.media_refs.append(fields["url"])
        self.alts.append(fields.get("alt_text_custom"))
        if fields["published"] == "false":
            return reply(200, {"id": f"ph{len(self.media_refs)}"})
        assert fields["published"] == "true"
        return self.publish(
            request, Published(fields["caption"], [fields["url"]]), {"id": "ph1", "post_id": "1234_777"}
        )

    def reel(self, request: httpx.Request, fields: dict[str, str]) -> httpx.Response:
        if fields["upload_phase"] == "start":
            video_id = f"v{len(self.reels) + 1}"
            self.reels[video_id] = {"polls": 0, "status": "not_started"}
            return reply(200, {"video_id": video_id,
                               "upload_url": f"https://{UPLOAD_HOST}/video-upload/v26.0/{video_id}"})
        assert fields["upload_phase"] == "finish" and fields["video_state"] == "PUBLISHED"
        video_id = fields["video_id"]
        assert self.reels[video_id]["status"] == "complete", "finishing a Reel whose upload is not complete"
        return self.publish(request, Published(fields["description"], [video_id]), {"success": True})

    def upload(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        if request.headers.get("authorization") != f"OAuth {self.valid_token}":
            return self.error("auth")
        video_id = request.url.path.rsplit("/", 1)[1]
        assert request.headers["offset"] == "0" and int(request.headers["file_size"]) == len(request.content)
        self.uploads[video_id] = request.content
        self.reels[video_id]["status"] = "uploaded"
        return reply(200, {"success": True})

    def new_session(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert request.method == "POST" and params["file_type"] == "video/mp4" and params["file_name"].endswith(".mp4")
        if bad := self.token_error(params.get("access_token")):
            return bad
        session = f"upload:s{len(self.sessions) + 1}"
        self.sessions[session] = {"length": int(params["file_length"]), "data": b""}
        return reply(200, {"id": session})

    def session(self, request: httpx.Request, session: str) -> httpx.Response:
        """The upload session: GET reads its offset, POST appends from ``file_offset``."""
        if request.headers.get("authorization") != f"OAuth {self.valid_token}":
            return self.error("auth")
        if session not in self.sessions:
            return graph_error("content", (100, 33, "Unsupported request: the upload session does not exist"))
        held = self.sessions[session]
        if request.method == "GET":
            return reply(200, {"id": session, "file_offset": len(held["data"])})
        assert request.method == "POST" and "access_token" not in str(request.url)
        if int(request.headers["file_offset"]) != len(held["data"]):
            return graph_error("content", (100, None, "The file_offset does not match the upload session's"))
        if self.upload_cuts:
            held["data"] += request.content[: self.upload_cuts.pop(0)]
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        held["data"] += request.content
        assert len(held["data"]) == held["length"], "an upload that is not the rest of the file"
        return reply(200, {"h": f"h:{session}"})

    def page_video(self, request: httpx.Request, fields: dict[str, str]) -> httpx.Response:
        assert request.url.host == "fb.test"
        session = fields["fbuploader_video_file_chunk"].removeprefix("h:")
        held = self.sessions[session]
        assert len(held["data"]) == held["length"], "a video made from an incomplete upload"
        video_id = f"pv{len(self.page_videos) + 1}"
        self.page_videos[video_id] = {"polls": 0, "bytes": held["data"]}
        return self.publish(request, Published(fields["description"], [video_id]), {"id": video_id})

    def status(self, request: httpx.Request) -> httpx.Response:
        if bad := self.token_error(request.url.params.get("access_token")):
            return bad
        assert request.url.params["fields"] == "status"
        if (video_id := request.url.path.rsplit("/", 1)[1]) in self.page_videos:
            return self.page_video_status(self.page_videos[video_id])
        reel = self.reels[request.url.path.rsplit("/", 1)[1]]
        reel["polls"] += 1
        if reel["status"] == "uploaded" and reel["polls"] > 1:
            reel["status"] = self.video_outcome
        phase: dict[str, Any] = {"status": "in_progress" if reel["status"] == "uploaded" else reel["status"]}
        if reel["status"] == "error":
            phase["errors"] = [{"code": 1363008, "message": "Video format is not supported"}]
        video_status = "error" if reel["status"] == "error" else "upload_complete" if reel["status"] == "complete" \
            else "uploading"
        return reply(200, {"status": {"video_status": video_status, "uploading_phase": phase,
                                      "processing_phase": {"status": "not_started"}}, "id": "x"})

    def page_video_status(self, video: dict[str, Any]) -> httpx.Response:
        video["polls"] += 1
        state = "processing" if video["polls"] == 1 else self.page_video_outcome
        processing: dict[str, Any] = {"status": {"processing": "in_progress", "ready": "complete"}.get(state, state)}
        if state == "error":
            processing["errors"] = [{"code": 1363023, "message": "The video file you tried to upload is too short"}]
        return reply(200, {"status": {"video_status": state, "uploading_phase": {"status": "complete"},
                                      "processing_phase": processing}, "id": "x"})

    def comment(self, on: str, fields: dict[str, str]) -> httpx.Response:
        assert on in self.post_ids, f"a comment under {on}, which is not a post"
        kind = self.comment_fail.pop(0) if self.comment_fail else None
        if kind:
            return self.error(kind)
        comment_id = f"{on}_c{len(self.comments) + 1}"
        self.comments.append({"on": on, "message": fields["message"], "id": comment_id})
        return reply(200, {"id": comment_id})

    def publish(self, request: httpx.Request, post: Published, answer: dict[str, Any]) -> httpx.Response:
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        self.posts.append(post)
        self.post_ids.add(str(answer.get("post_id") or answer.get("id") or post.media[0]))
        return self.commit_then(kind, request, reply(200, answer))
