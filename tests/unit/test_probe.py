"""The media inspector (``probe``) on files the tests generate: what it reports agrees with
MediaInfo's own reading of the same bytes; hostile and broken files end in
``UnreadableMedia`` with the reason, never in another exception."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler_daemon.probe import ImageFacts, UnreadableMedia, VideoFacts, probe
from support.media import box, gif, jpeg_header, mp4, png, webp_lossless

SHAPES = {
    "h264-aac-720p30": {},
    "hevc-mov-1080p60": {"codec": b"hvc1", "profile": 2, "brand": b"qt  ", "width": 1920, "height": 1080, "fps": 60},
    "h264-silent-24fps-moov-last": {"audio": None, "faststart": False, "fps": 24, "seconds": 10.0},
    "main-vertical-25fps": {"profile": 77, "width": 720, "height": 1280, "fps": 25, "seconds": 61.5},
    "fragmented": {"fragmented": True},
    "mp3-sound": {"audio_object_type": 0x6B},
}


def video(data: bytes) -> VideoFacts:
    facts = probe(io.BytesIO(data)).video
    assert facts is not None
    return facts


def test_a_generated_mp4_is_read_as_written() -> None:
    data = mp4(width=1280, height=720, fps=30, seconds=2.0)
    assert video(data) == VideoFacts(
        container="mp4", video_codec="h264", video_profile="high", audio_codec="aac", duration=2.0, width=1280,
        height=720, frame_rate=30.0, bitrate=round(len(data) * 8 / 2.0), faststart=True, fragmented=False,
        brand="isom",
    )


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_the_probe_agrees_with_mediainfo(shape: str, tmp_path: Path) -> None:
    mediainfo = pytest.importorskip("pymediainfo").MediaInfo
    if not mediainfo.can_parse():
        pytest.skip("pymediainfo without its library")
    data = mp4(**SHAPES[shape])  # type: ignore[arg-type]
    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    tracks = {t.track_type: t for t in mediainfo.parse(str(path)).tracks}
    ours, general, track = video(data), tracks["General"], tracks["Video"]
    assert ours.container == ("mov" if general.format_profile == "QuickTime" else "mp4")
    assert ours.video_codec == {"AVC": "h264", "HEVC": "hevc"}[track.format]
    assert (ours.width, ours.height) == (track.width, track.height)
    assert ours.frame_rate == pytest.approx(float(track.frame_rate))
    assert ours.duration == pytest.approx(float(track.duration) / 1000, abs=0.01)
    assert ours.faststart == (general.isstreamable == "Yes")
    if "Audio" in tracks:
        assert ours.audio_codec == {"AAC": "aac", "MPEG Audio": "mp3"}[tracks["Audio"].format]
    else:
        assert ours.audio_codec is None
    if track.format == "AVC":
        assert ours.video_profile == track.format_profile.split("@")[0].lower()


def test_container_signatures_and_images() -> None:
    assert probe(io.BytesIO(b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01webm" + b"\x00" * 60)).video == VideoFacts("webm")
    assert probe(io.BytesIO(b"RIFF\x00\x00\x00\x00AVI LIST" + b"\x00" * 60)).video == VideoFacts("avi")
    assert probe(io.BytesIO(png(4, 3))).image == ImageFacts("png", 4, 3)
    assert probe(io.BytesIO(gif(5, 7))).image == ImageFacts("gif", 5, 7)
    assert probe(io.BytesIO(jpeg_header(640, 480))).image == ImageFacts("jpeg", 640, 480)
    assert probe(io.BytesIO(webp_lossless(9, 2))).image == ImageFacts("webp", 9, 2)
    assert probe(io.BytesIO(b"just some text")).kind is None


BROKEN = {
    "no-moov": box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"mdat", b"\x00" * 100),
    "box-past-the-end": box(b"ftyp", b"isom\x00\x00\x02\x00isom") + b"\x00\x00\x10\x00moov" + b"\x00" * 20,
    "truncated": mp4()[:200],
    "huge-moov": box(b"ftyp", b"isom\x00\x00\x02\x00") + b"\x00\x00\x00\x01moov" + (2**40).to_bytes(8, "big"),
    "size-smaller-than-header": box(b"ftyp", b"isom\x00\x00\x02\x00") + b"\x00\x00\x00\x04moov",
}


@pytest.mark.parametrize("name", BROKEN, ids=str)
def test_a_broken_file_says_what_is_wrong(name: str) -> None:
    with pytest.raises(UnreadableMedia) as caught:
        probe(io.BytesIO(BROKEN[name]))
    assert str(caught.value)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_no_corruption_of_a_valid_file_ends_in_another_exception(data: st.DataObject) -> None:
    original = bytearray(mp4(seconds=1.0, mdat_bytes=64))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(8, len(original)))
    with contextlib.suppress(UnreadableMedia):
        probe(io.BytesIO(bytes(original[:cut])))
