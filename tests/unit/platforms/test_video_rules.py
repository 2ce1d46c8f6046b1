"""``check_video``: a spooled, probed video against a platform's declared limits; every
refusal states the platform's rule and what the file has."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler_daemon.errors import ContentRejectedError
from scheduler_daemon.mediafile import MediaFile, Spool
from scheduler_daemon.platforms.base import VideoLimit, check_video
from support.media import mp4

LIMIT = VideoLimit(("mp4", "mov"), ("h264",), ("aac",), max_bytes=50_000, max_seconds=140, min_seconds=0.5,
                   max_width=1920, max_height=1200, max_frame_rate=60, max_bitrate=25_000_000)


async def spooled(tmp_path: Path, data: bytes) -> MediaFile:
    spool = Spool(tmp_path, 10**7)
    await spool.write(data)
    return await spool.finish("video/mp4", "v.mp4")


async def test_a_video_within_the_limits_passes(tmp_path: Path) -> None:
    check_video("X", LIMIT, await spooled(tmp_path, mp4(seconds=10)))


@pytest.mark.parametrize(("data", "message"), [
    (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01webm" + b"\x00" * 60,
     "X takes MP4 or MOV videos; the video of this post is WEBM"),
    (mp4(codec=b"hvc1", profile=1), "X takes H264 video; the video of this post is HEVC"),
    (mp4(audio_object_type=0x6B), "X takes AAC sound; the video of this post has MP3"),
    (mp4(mdat_bytes=60_000), "X takes videos up to 50 kB; the video of this post is 61.08 kB"),
    (mp4(seconds=181.2), "X takes videos up to 140 s; the video of this post lasts 181.2 s"),
    (mp4(seconds=0.2), "X takes videos of at least 0.5 s; the video of this post lasts 0.2 s"),
    (mp4(width=3840, height=2160), "X takes videos up to 1920×1200; the video of this post is 3840×2160"),
    (mp4(fps=120), "X takes videos up to 60 frames per second; the video of this post has 120"),
    (mp4()[:300], "X: the video of this post could not be read as a video file (the "),
])
async def test_a_video_over_a_limit_is_refused_with_the_rule(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ContentRejectedError) as caught:
        check_video("X", LIMIT, await spooled(tmp_path, data))
    assert str(caught.value).startswith(message), str(caught.value)


async def test_a_platform_without_video_says_so(tmp_path: Path) -> None:
    with pytest.raises(ContentRejectedError, match=r"^Facebook takes no video here; item 2 of 3 has one$"):
        check_video("Facebook", None, await spooled(tmp_path, mp4()), "item 2 of 3")
