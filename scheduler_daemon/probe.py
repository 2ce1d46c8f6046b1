"""What a media file holds, read from its own bytes (never from its name or Content-Type).

``probe(file)`` reads a seekable binary file and returns a ``Probe``:

* **video in ISO BMFF** (MP4, MOV, M4V, 3GP: what every platform's publish API takes):
  ``VideoFacts`` with the container (from ``ftyp``'s brand), the video and audio codecs
  (the sample entries of ``stsd``: ``avc1`` → ``h264``, ``hvc1`` → ``hevc``, ``mp4a`` +
  ``esds`` → ``aac``, …) and the H.264/HEVC profile, the duration (``mvhd``, else the
  longest track's ``mdhd``), the dimensions (``tkhd``), the frame rate (``stts`` samples
  over the track's duration), the bitrate (the file's bits over its duration), whether
  ``moov`` comes before ``mdat`` (fast start) and whether the file is fragmented;
* **other video containers** by their signature (Matroska, WebM, AVI): the container
  only, so a platform's refusal can name it;
* **images** (PNG, JPEG, GIF, WebP): format, width, height.

Only box headers and ``moov`` (at most ``MAX_MOOV_BYTES``) are read: a 500 MB video costs a
few reads. Every size field is checked against its parent before it is followed, so a
hostile file gets ``UnreadableMedia`` with the reason, never a crash or a runaway read.

Why our own parser: the daemon parses files that tenants choose, so the parser must be
memory-safe and bounded. pymediainfo bundles MediaInfo's C++ library (a native parser of
hostile input inside the daemon, and a 10+ MB wheel); hachoir is GPL-2.0 (this project is
MIT); pymp4 targets DASH (no HEVC or AV1 sample entries) on an old ``construct`` and parses
whole boxes, ``mdat`` included. What a platform checks needs a dozen fixed-layout boxes
(ISO/IEC 14496-12 and -15, QuickTime File Format), which is this module. The tests check it
against MediaInfo (pymediainfo, test-only) on files they generate.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["ImageFacts", "Probe", "UnreadableMedia", "VideoFacts", "probe"]

MAX_MOOV_BYTES = 64 * 1024 * 1024  # far above any real index (a 2 h video's is a few MB)
_MAX_BOXES = 10_000  # top-level boxes we walk before giving up


class UnreadableMedia(ValueError):
    """The file claims a format but its structure is broken (the message says where)."""


@dataclass(frozen=True, slots=True)
class VideoFacts:
    container: str  # "mp4", "mov", "m4v", "3gp", "webm", "matroska", "avi"
    video_codec: str | None = None  # "h264", "hevc", "av1", "vp9", "mpeg4", or the sample entry's code
    video_profile: str | None = None  # "baseline", "main", "high", "main 10", … (H.264, HEVC)
    audio_codec: str | None = None  # "aac", "mp3", "opus", "ac3", "eac3", "flac", "alac", …
    duration: float | None = None  # seconds
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None  # frames per second
    bitrate: int | None = None  # bits per second, the whole file
    faststart: bool | None = None  # moov before mdat (Instagram wants it)
    fragmented: bool = False  # moof boxes (fragmented MP4)
    brand: str | None = None  # ftyp's major brand, as written


@dataclass(frozen=True, slots=True)
class ImageFacts:
    format: str  # "png", "jpeg", "gif", "webp"
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    video: VideoFacts | None = None
    image: ImageFacts | None = None

    @property
    def kind(self) -> str | None:
        """``video``, ``image``, or None when the bytes are neither."""
        return "video" if self.video else "image" if self.image else None


def probe(file: BinaryIO, size: int | None = None) -> Probe:
    """What ``file`` holds (read from its start; ``size``: its length, else seeked)."""
    if size is None:
        size = file.seek(0, io.SEEK_END)
    file.seek(0)
    head = file.read(64)
    if _is_iso_bmff(head):
        return Probe(video=_iso_bmff(file, size))
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return Probe(video=VideoFacts("webm" if b"webm" in head else "matroska"))
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Probe(video=VideoFacts("avi"))
    image = _image(head, file)
    return Probe(image=image) if image else Probe()


# -- ISO base media file format ----------------------------------------------------------

_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"uuid"}
_VIDEO_CODECS = {
    b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"av01": "av1", b"vp09": "vp9",
    b"vp08": "vp8", b"mp4v": "mpeg4", b"apch": "prores", b"apcn": "prores", b"apcs": "prores",
    b"apco": "prores", b"ap4h": "prores", b"jpeg": "mjpeg", b"mjpa": "mjpeg", b"s263": "h263",
}
_AUDIO_CODECS = {
    b"mp4a": "aac", b"Opus": "opus", b"ac-3": "ac3", b"ec-3": "eac3", b"fLaC": "flac", b"alac": "alac",
    b".mp3": "mp3", b"samr": "amr", b"sawb": "amr-wb", b"lpcm": "pcm", b"sowt": "pcm", b"twos": "pcm",
}
_MP3_OBJECT_TYPES = {0x69, 0x6B}
_H264_PROFILES = {66: "baseline", 77: "main", 88: "extended", 100: "high", 110: "high 10", 122: "high 4:2:2",
                  244: "high 4:4:4"}
_HEVC_PROFILES = {1: "main", 2: "main 10", 3: "main still picture", 4: "range extensions"}


def _is_iso_bmff(head: bytes) -> bool:
    if len(head) < 8 or head[4:8] not in _TOP_LEVEL:
        return False
    first = struct.unpack(">I", head[:4])[0]
    return first in (0, 1) or first >= 8


def _boxes(file: BinaryIO, start: int, end: int, where: str) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in ``file[start:end]``."""
    position = start
    count = 0
    while position + 8 <= end:
        count += 1
        if count > _MAX_BOXES:
            raise UnreadableMedia(f"more than {_MAX_BOXES} boxes in {where}")
        file.seek(position)
        header = file.read(8)
        if len(header) < 8:
            raise UnreadableMedia(f"{where} ends inside a box header")
        length, kind = struct.unpack(">I4s", header)
        payload = position + 8
        if length == 1:
            large = file.read(8)
            if len(large) < 8:
                raise UnreadableMedia(f"{where} ends inside a box header")
            length = struct.unpack(">Q", large)[0]
            payload = position + 16
        elif length == 0:  # to the end of the enclosing box
            length = end - position
        if length < payload - position or position + length > end:
            raise UnreadableMedia(f"the {_name(kind)} box in {where} runs past its end")
        yield kind, payload, position + length
        position += length


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isascii() and kind.decode("latin-1").isprintable() else kind.hex()


def _children(data: bytes, start: int = 0, where: str = "moov") -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box in ``data[start:]`` (a box read into memory)."""
    buffer = io.BytesIO(data)
    for kind, begin, end in _boxes(buffer, start, len(data), where):
        yield kind, data[begin:end]


def _first(data: bytes, kind: bytes, start: int = 0) -> bytes | None:
    return next((payload for k, payload in _children(data, start) if k == kind), None)


def _u(data: bytes, offset: int, size: int) -> int:
    if offset + size > len(data):
        raise UnreadableMedia("a box is shorter than its fields")
    return int.from_bytes(data[offset : offset + size], "big")


@dataclass
class _Track:
    handler: bytes = b""
    width: int | None = None
    height: int | None = None
    timescale: int = 0
    duration: int = 0
    codec: bytes | None = None
    profile: str | None = None
    audio: str | None = None
    samples: int = 0
    sample_time: int = 0


def _iso_bmff(file: BinaryIO, size: int) -> VideoFacts:
    brand: str | None = None
    compatible: set[str] = set()
    moov: bytes | None = None
    seen_mdat = faststart = fragmented = False
    for kind, begin, end in _boxes(file, 0, size, "the file"):
        if kind == b"ftyp" and end - begin >= 8:
            file.seek(begin)
            data = file.read(min(end - begin, 1024))
            brand = data[:4].decode("latin-1")
            compatible = {data[i : i + 4].decode("latin-1") for i in range(8, len(data) - 3, 4)}
        elif kind == b"moov" and moov is None:
            if end - begin > MAX_MOOV_BYTES:
                raise UnreadableMedia(f"its moov box is larger than {MAX_MOOV_BYTES} bytes")
            file.seek(begin)
            moov = file.read(end - begin)
            faststart = not seen_mdat
        elif kind == b"mdat":
            seen_mdat = True
        elif kind == b"moof":
            fragmented = True
    if moov is None:
        raise UnreadableMedia("it has no moov box (the index of an MP4 or MOV file)")
    tracks = [_track(payload) for kind, payload in _children(moov) if kind == b"trak"]
    duration = _movie_duration(moov)
    if duration is None:
        durations = [t.duration / t.timescale for t in tracks if t.timescale]
        duration = max(durations) if durations else None
    video = next((t for t in tracks if t.handler == b"vide"), None)
    audio = next((t for t in tracks if t.handler == b"soun"), None)
    frame_rate = None
    if video and video.samples and video.sample_time and video.timescale:
        frame_rate = round(video.samples / (video.sample_time / video.timescale), 3)
    return VideoFacts(
        container=_container(brand, compatible),
        video_codec=_codec(video.codec, _VIDEO_CODECS) if video and video.codec else None,
        video_profile=video.profile if video else None,
        audio_codec=(audio.audio or _codec(audio.codec, _AUDIO_CODECS)) if audio and audio.codec else None,
        duration=duration,
        width=video.width if video else None,
        height=video.height if video else None,
        frame_rate=frame_rate,
        bitrate=round(size * 8 / duration) if duration else None,
        faststart=faststart,
        fragmented=fragmented,
        brand=brand,
    )


def _container(brand: str | None, compatible: set[str]) -> str:
    if brand is None or brand == "qt  ":
        return "mov"
    if brand.startswith(("3gp", "3g2")):
        return "3gp"
    if brand.startswith("M4V"):
        return "m4v"
    if brand in ("M4A ", "M4B ") and not compatible & {"isom", "mp41", "mp42"}:
        return "m4a"
    return "mp4"


def _codec(code: bytes, known: dict[bytes, str]) -> str:
    return known.get(code, _name(code).strip())


def _movie_duration(moov: bytes) -> float | None:
    mvhd = _first(moov, b"mvhd")
    if mvhd is None:
        return None
    scale, length = _scaled(mvhd)
    return length / scale if scale and length not in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF) else None


def _scaled(full_box: bytes) -> tuple[int, int]:
    """(timescale, duration) of an mvhd or mdhd box, version 0 or 1."""
    if _u(full_box, 0, 1) == 1:
        return _u(full_box, 20, 4), _u(full_box, 24, 8)
    return _u(full_box, 12, 4), _u(full_box, 16, 4)


def _track(trak: bytes) -> _Track:
    track = _Track()
    if (tkhd := _first(trak, b"tkhd")) is not None:
        offset = 84 if _u(tkhd, 0, 1) == 1 else 72
        track.width, track.height = _u(tkhd, offset + 4, 4) >> 16, _u(tkhd, offset + 8, 4) >> 16
    mdia = _first(trak, b"mdia")
    if mdia is None:
        return track
    if (mdhd := _first(mdia, b"mdhd")) is not None:
        track.timescale, track.duration = _scaled(mdhd)
    if (hdlr := _first(mdia, b"hdlr")) is not None:
        track.handler = hdlr[8:12]
    stbl = _first(_first(mdia, b"minf") or b"", b"stbl") or b""
    if (stsd := _first(stbl, b"stsd")) is not None and _u(stsd, 4, 4) > 0:
        _sample_entry(track, stsd[8:])
    if (stts := _first(stbl, b"stts")) is not None:
        entries = _u(stts, 4, 4)
        if 8 + entries * 8 > len(stts):
            raise UnreadableMedia("its stts box is shorter than its entries")
        for n in range(entries):
            count, delta = struct.unpack_from(">II", stts, 8 + n * 8)
            track.samples += count
            track.sample_time += count * delta
    return track


def _sample_entry(track: _Track, entry: bytes) -> None:
    """The first sample description: its code, and the codec details each kind carries."""
    length, code = _u(entry, 0, 4), entry[4:8]
    entry = entry[8:length]
    track.codec = code
    if track.handler == b"vide" and len(entry) >= 78:
        if not track.width or not track.height:
            track.width, track.height = _u(entry, 24, 2), _u(entry, 26, 2)
        extensions = entry[78:]
        if (avcc := _first(extensions, b"avcC")) is not None and len(avcc) > 1:
            track.profile = _H264_PROFILES.get(avcc[1], f"profile {avcc[1]}")
        elif (hvcc := _first(extensions, b"hvcC")) is not None and len(hvcc) > 1:
            track.profile = _HEVC_PROFILES.get(hvcc[1] & 0x1F, f"profile {hvcc[1] & 0x1F}")
    elif track.handler == b"soun" and code == b"mp4a" and len(entry) >= 28:
        version = _u(entry, 8, 2)  # QuickTime sound descriptions 1 and 2 are longer
        start = {1: 44, 2: 64}.get(version, 28)
        esds = _first(entry, b"esds", start) if start <= len(entry) else None
        if esds is not None and _object_type(esds[4:]) in _MP3_OBJECT_TYPES:
            track.audio = "mp3"


def _object_type(descriptors: bytes) -> int | None:
    """The objectTypeIndication of an ES_Descriptor's DecoderConfigDescriptor (ISO 14496-1)."""
    position = 0

    def header() -> tuple[int, int]:
        nonlocal position
        tag, length = descriptors[position], 0
        position += 1
        for _ in range(4):
            byte = descriptors[position]
            position += 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        return tag, length

    try:
        tag, _ = header()
        if tag != 0x03:
            return None
        flags = descriptors[position + 2]
        position += 3
        if flags & 0x80:
            position += 2
        if flags & 0x40:
            position += 1 + descriptors[position]
        if flags & 0x20:
            position += 2
        tag, _ = header()
        return descriptors[position] if tag == 0x04 else None
    except IndexError:
        return None


# -- images ------------------------------------------------------------------------------


def _image(head: bytes, file: BinaryIO) -> ImageFacts | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if head[12:16] == b"IHDR":
            return ImageFacts("png", *struct.unpack(">II", head[16:24]))
        return ImageFacts("png")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFacts("gif", *struct.unpack("<HH", head[6:10]))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:3] == b"\xff\xd8\xff":
        return _jpeg(file)
    return None


def _webp(head: bytes) -> ImageFacts:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return ImageFacts("webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return ImageFacts("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(head) >= 30:
        return ImageFacts("webp", int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1)
    return ImageFacts("webp")


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(file: BinaryIO) -> ImageFacts:
    """Walk the markers to the first start-of-frame (at most 1 MB into the file)."""
    position = 2
    while position < 1024 * 1024:
        file.seek(position)
        marker = file.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            break
        kind, length = marker[1], int.from_bytes(marker[2:4], "big")
        if kind in _SOF:
            frame = file.read(5)
            if len(frame) == 5:
                height, width = struct.unpack(">HH", frame[1:5])
                return ImageFacts("jpeg", width, height)
            break
        if length < 2:
            break
        position += 2 + length
    return ImageFacts("jpeg")
