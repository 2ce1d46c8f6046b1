"""A Bluesky PDS (XRPC)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from typing import Any

import httpx

from .base import AFTER_COMMIT, Fake, Published, bearer, body, jwt, reply
from .bluesky_video import HOST, VideoServiceFake


class BlueskyFake(Fake):
    """A PDS as documented and as the reference PDS behaves: XRPC errors ``{"error",
    "message"}``; an expired access JWT answers 400 ``ExpiredToken``; ``refreshSession``
    rotates the pair and refuses a used or revoked refresh JWT with 400 ``ExpiredToken``
    "Token has been revoked" (``revoked``: the session was revoked, its access JWT has
    expired); ``putRecord`` of an identical record is a no-op answered without
    ``commit``; ``getRecord`` answers 400 ``RecordNotFound``; ``resolveHandle`` knows
    ``handles``. ``getSession`` names ``own_pds`` (the account's PDS behind the entryway the
    daemon calls) in its DID document; ``getServiceAuth`` issues service tokens (their
    claims kept in ``service_tokens``; ``service_auth = False``: 501 MethodNotImplemented,
    an implementation without it). ``video``: Bluesky's video service (``bluesky_video``),
    which the transport reaches at its host."""

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
        self.own_pds = "https://morel.us-east.host.bsky.network"
        self.service_auth = True
        self.describes = True  # describeServer answers the PDS's DID (else 501)
        self.session_did: str | None = None  # getSession's DID, when the token is another account's
        self.service_tokens: dict[str, dict[str, Any]] = {}
        self.video = VideoServiceFake(self)
        self.video_hosts = {HOST}  # where the transport reaches ``video``

    @property
    def own_pds_did(self) -> str:
        return "did:web:" + self.own_pds.removeprefix("https://")

    def service_claims(self, token: str | None, aud: str, lxm: str) -> dict[str, Any] | None:
        """The claims of a service token this PDS issued for ``aud`` and ``lxm``, unexpired."""
        claims = self.service_tokens.get(token or "")
        ok = claims is not None and claims["aud"] == aud and claims["lxm"] == lxm and claims["exp"] > time.time()
        return claims if ok else None

    def store_blob(self, content: bytes, mime: str = "video/mp4") -> dict[str, Any]:
        self.media_refs.append(content)
        link = self.cid(base64.b64encode(content).decode())
        self.blobs[link] = content
        return {"$type": "blob", "ref": {"$link": link}, "mimeType": mime, "size": len(content)}

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
        if request.url.host in self.video_hosts:
            return await self.video.route(request)
        method = request.url.path.removeprefix("/xrpc/")
        if method in ("com.atproto.server.getServiceAuth", "com.atproto.server.getSession"):
            return self.session_query(request, method)
        if request.method == "GET":
            return self.query(method, dict(request.url.params))
        assert request.method == "POST"
        if method == "com.atproto.server.refreshSession":
            return await self.refresh(request)
        if bad := self.token_error(bearer(request)):
            return bad
        if method == "com.atproto.repo.uploadBlob":
            assert request.headers["content-type"].startswith(("image/", "video/mp4")) and request.content
            assert int(request.headers["content-length"]) == len(request.content)
            return reply(200, {"blob": self.store_blob(request.content, request.headers["content-type"])})
        assert method == "com.atproto.repo.putRecord", method
        data = body(request)
        assert data["repo"] == self.did and data["collection"] == "app.bsky.feed.post" and len(data["rkey"]) == 13
        record = data["record"]
        assert record["$type"] == "app.bsky.feed.post" and record["createdAt"].endswith("Z")
        dt.datetime.fromisoformat(record["createdAt"])
        for facet in record.get("facets", []):
            assert 0 <= facet["index"]["byteStart"] < facet["index"]["byteEnd"] <= len(record["text"].encode())
        if problem := self.invalid(record):
            return reply(400, {"error": problem[0], "message": problem[1]})
        kind = self.gate(request)
        if kind and kind not in AFTER_COMMIT:
            return self.error(kind)
        uri = f"at://{self.did}/app.bsky.feed.post/{data['rkey']}"
        answer: dict[str, Any] = {"uri": uri, "cid": self.cid(record), "validationStatus": "valid"}
        if self.records.get(data["rkey"]) != record:  # an identical rewrite is a no-op
            if data["rkey"] not in self.records:
                embed = record.get("embed", {})
                refs = [i["image"]["ref"]["$link"] for i in embed.get("images", [])]
                if "video" in embed:
                    refs.append(embed["video"]["ref"]["$link"])
                self.posts.append(Published(record["text"], refs))
            self.records[data["rkey"]] = record
            answer["commit"] = {"cid": "bafyreicommit", "rev": f"3l{len(self.records):011d}"}
        return self.commit_then(kind, request, reply(200, answer))

    def invalid(self, record: dict[str, Any]) -> tuple[str, str] | None:
        """The XRPC error the PDS answers for the record (lexicon and references), or None.
        A blob the PDS does not hold (``blobs`` cleared: it drops blobs no record took up)
        is ``BlobNotFound``, as the PDS's blob transactor answers."""
        embed = record.get("embed", {})
        blobs = [i["image"] for i in embed.get("images", [])] + ([embed["video"]] if "video" in embed else [])
        for blob in blobs:
            if blob["ref"]["$link"] not in self.blobs:
                return "BlobNotFound", f"Could not find blob: {blob['ref']['$link']}"
        if "video" in embed and embed["video"]["mimeType"] != "video/mp4":
            return "InvalidRequest", "Invalid app.bsky.feed.post record: embed/video must be a video/mp4 blob"
        if any("alt" not in image for image in embed.get("images", [])):
            return "InvalidRequest", 'Invalid app.bsky.feed.post record: embed/images/0 must have the property "alt"'
        if len(record.get("langs", [])) > 3:
            return "InvalidRequest", "Invalid app.bsky.feed.post record: langs must not have more than 3 elements"
        for role in ("root", "parent") if "reply" in record else ():
            ref = record["reply"][role]
            rkey = ref["uri"].rsplit("/", 1)[-1]
            if rkey not in self.records or ref["cid"] != self.cid(self.records[rkey]):
                return "InvalidRequest", f"reply {role} {ref['uri']} is not a post of this repository"
        return None

    def session_query(self, request: httpx.Request, method: str) -> httpx.Response:
        assert request.method == "GET"
        if bad := self.token_error(bearer(request)):
            return bad
        if method == "com.atproto.server.getSession":
            service = {"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": self.own_pds}
            return reply(200, {"did": self.session_did or self.did, "handle": "alice.test", "emailConfirmed": True,
                               "didDoc": {"id": self.did, "service": [service]}})
        if not self.service_auth:
            return reply(501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})
        params = dict(request.url.params)
        assert params["aud"].startswith("did:") and params["lxm"], params
        exp = int(params["exp"])
        assert time.time() < exp <= time.time() + 3600, "the PDS refuses an expiry over an hour"
        token = f"service-{len(self.service_tokens) + 1}"
        self.service_tokens[token] = {"iss": self.did, "aud": params["aud"], "lxm": params["lxm"], "exp": exp}
        return reply(200, {"token": token})

    def query(self, method: str, params: dict[str, str]) -> httpx.Response:
        if method == "com.atproto.server.describeServer":
            if not self.describes:
                return reply(501, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})
            return reply(200, {"did": self.own_pds_did, "availableUserDomains": [".test"]})
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
