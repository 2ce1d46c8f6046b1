"""What one Mastodon instance accepts, read from its ``GET /api/v2/instance``
(``configuration.statuses`` and ``configuration.media_attachments``): characters and media
per status, image and video sizes, the video frame rate and pixel count, the MIME types it
takes, the longest media description.

Every limit an instance does not state (an older server, a fork, an answer that failed)
falls back to the connection's ``metadata`` (``max_characters``, ``max_media_attachments``)
and then to Mastodon's defaults, so a post is never refused for a limit nobody stated; the
instance still has the last word on what it takes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base import VideoLimit

# Mastodon's defaults (app/models/media_attachment.rb, app/validators/status_length_validator.rb).
DEFAULT_MAX_MEDIA = 4
IMAGE_BYTES = 16 * 1024 * 1024
VIDEO_BYTES = 99 * 1024 * 1024
VIDEO_FRAME_RATE = 120
VIDEO_PIXELS = 8_294_400  # 3840×2160
DESCRIPTION_MAX = 1_500
# Mastodon transcodes what ffmpeg reads; these are the ISO media files the daemon's probe
# can vouch for (a WebM is not read here, so it is refused rather than sent unchecked).
VIDEO = VideoLimit(
    ("mp4", "mov", "m4v"), ("h264", "hevc", "av1", "vp9", "vp8", "mpeg4"),
    ("aac", "mp3", "opus", "flac", "alac", "ac3", "eac3"), max_bytes=VIDEO_BYTES, max_frame_rate=VIDEO_FRAME_RATE,
)


@dataclass(frozen=True)
class Limits:
    max_characters: int
    max_media: int
    image_bytes: int = IMAGE_BYTES
    video: VideoLimit = VIDEO
    video_pixels: int = VIDEO_PIXELS
    mime_types: tuple[str, ...] = ()  # empty: not stated
    description_max: int = DESCRIPTION_MAX


def _positive(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def _section(data: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def limits(instance: Mapping[str, Any], metadata: Mapping[str, Any], max_characters: int) -> Limits:
    """The limits ``instance`` (the JSON of ``/api/v2/instance``, ``{}`` when unknown) states,
    else the connection's ``metadata``, else ``max_characters`` and Mastodon's defaults."""
    statuses = _section(instance, "configuration", "statuses")
    media = _section(instance, "configuration", "media_attachments")
    mime_types = media.get("supported_mime_types")
    video = dataclasses.replace(
        VIDEO, max_bytes=_positive(media.get("video_size_limit"), VIDEO_BYTES),
        max_frame_rate=_positive(media.get("video_frame_rate_limit"), VIDEO_FRAME_RATE),
    )
    return Limits(
        max_characters=_positive(statuses.get("max_characters"), _positive(metadata.get("max_characters"),
                                                                           max_characters)),
        max_media=_positive(statuses.get("max_media_attachments"),
                            _positive(metadata.get("max_media_attachments"), DEFAULT_MAX_MEDIA)),
        image_bytes=_positive(media.get("image_size_limit"), IMAGE_BYTES),
        video=video,
        video_pixels=_positive(media.get("video_matrix_limit"), VIDEO_PIXELS),
        mime_types=tuple(m for m in mime_types if isinstance(m, str)) if isinstance(mime_types, list) else (),
        description_max=_positive(media.get("description_limit"), DESCRIPTION_MAX),
    )
