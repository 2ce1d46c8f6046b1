"""Media files the tests make themselves (nothing is downloaded): minimal but valid MP4 and
MOV files (ISO/IEC 14496-12 boxes, an H.264 SPS/PPS in ``avcC`` or an ``hvcC``, AAC in
``esds``), and tiny PNG, GIF, JPEG and WebP headers.

``mp4(...)`` writes what a muxer writes for a video of ``seconds`` at ``fps`` of
``width``×``height``: ``ftyp``, ``moov`` (``mvhd``, one video ``trak``, optionally an audio
``trak``) and an ``mdat`` of ``mdat_bytes`` (zero bytes: the samples' content does not
matter to an index reader). MediaInfo reads them (tests/unit/test_probe.py checks it).
"""

from __future__ import annotations

import struct
import zlib


def box(kind: bytes, *payload: bytes) -> bytes:
    data = b"".join(payload)
    return struct.pack(">I4s", 8 + len(data), kind) + data


def full(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, bytes([version]) + flags.to_bytes(3, "big"), *payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


class _Bits:
    """An RBSP bit writer with exp-Golomb codes (H.264 7.2)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, count: int, value: int) -> None:
        self.bits += [(value >> (count - 1 - i)) & 1 for i in range(count)]

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code.bit_length() * 2 - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out, zeros = bytearray(), 0  # emulation prevention
        for byte in raw:
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def h264_sps(profile: int, width: int, height: int, level: int = 40) -> bytes:
    bits = _Bits()
    bits.u(8, profile)
    bits.u(8, 0)  # constraint flags
    bits.u(8, level)
    bits.ue(0)  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128):
        bits.ue(1)  # chroma_format_idc 4:2:0
        bits.ue(0)
        bits.ue(0)
        bits.u(1, 0)
        bits.u(1, 0)  # no scaling matrix
    bits.ue(0)  # log2_max_frame_num_minus4
    bits.ue(2)  # pic_order_cnt_type
    bits.ue(1)  # max_num_ref_frames
    bits.u(1, 0)
    mbs_w, mbs_h = (width + 15) // 16, (height + 15) // 16
    bits.ue(mbs_w - 1)
    bits.ue(mbs_h - 1)
    bits.u(1, 1)  # frame_mbs_only
    bits.u(1, 1)  # direct_8x8_inference
    crop_w, crop_h = mbs_w * 16 - width, mbs_h * 16 - height
    if crop_w or crop_h:
        bits.u(1, 1)
        for value in (0, crop_w // 2, 0, crop_h // 2):
            bits.ue(value)
    else:
        bits.u(1, 0)
    bits.u(1, 0)  # no VUI
    return b"\x67" + bits.rbsp()


def h264_pps() -> bytes:
    bits = _Bits()
    bits.ue(0)
    bits.ue(0)
    bits.u(1, 0)
    bits.u(1, 0)
    bits.ue(0)
    bits.ue(0)
    bits.ue(0)
    bits.u(1, 0)
    bits.u(2, 0)
    bits.se(0)
    bits.se(0)
    bits.se(0)
    bits.u(1, 1)
    bits.u(1, 0)
    bits.u(1, 0)
    return b"\x68" + bits.rbsp()


def avcc(profile: int, width: int, height: int) -> bytes:
    sps, pps = h264_sps(profile, width, height), h264_pps()
    return box(b"avcC", bytes([1, profile, 0, 40, 0xFF, 0xE1]), struct.pack(">H", len(sps)), sps,
               b"\x01", struct.pack(">H", len(pps)), pps)


def hvcc(profile: int) -> bytes:
    return box(b"hvcC", bytes([1, profile & 0x1F]), b"\x60\x00\x00\x00", b"\x90" + b"\x00" * 5, bytes([93]),
               b"\xf0\x00\xfc\xfd\xf8\xf8\x00\x00\x0f\x00")


def _descriptor(tag: int, payload: bytes) -> bytes:
    return bytes([tag, 0x80, 0x80, 0x80, len(payload)]) + payload


def esds(object_type: int = 0x40) -> bytes:
    decoder_info = _descriptor(0x05, b"\x11\x90")  # AAC LC, 48 kHz, stereo
    config = _descriptor(0x04, bytes([object_type, 0x15]) + b"\x00\x00\x00" + struct.pack(">II", 128000, 128000)
                         + decoder_info)
    return full(b"esds", 0, 0, _descriptor(0x03, b"\x00\x01\x00" + config + _descriptor(0x06, b"\x02")))


def _stbl(entry: bytes, samples: int, delta: int, sample_size: int) -> bytes:
    return box(
        b"stbl",
        full(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full(b"stts", 0, 0, struct.pack(">III", 1, samples, delta)),
        full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, samples, 1)),
        full(b"stsz", 0, 0, struct.pack(">II", sample_size, samples)),
        full(b"stco", 0, 0, struct.pack(">II", 1, 0)),
    )


def _trak(track_id: int, handler: bytes, media_header: bytes, stbl: bytes, timescale: int, duration: int,
          movie_duration: int, width: int = 0, height: int = 0) -> bytes:
    volume = 0x0100 if handler == b"soun" else 0
    tkhd = full(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track_id, 0, movie_duration), b"\x00" * 8,
                struct.pack(">hhhH", 0, 0, volume, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = full(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    name = b"VideoHandler\x00" if handler == b"vide" else b"SoundHandler\x00"
    hdlr = full(b"hdlr", 0, 0, b"\x00" * 4, handler, b"\x00" * 12, name)
    dinf = box(b"dinf", full(b"dref", 0, 0, struct.pack(">I", 1), full(b"url ", 0, 1)))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl)))


def mp4(
    *, brand: bytes = b"isom", codec: bytes = b"avc1", profile: int = 100, width: int = 1280, height: int = 720,
    fps: float = 30, seconds: float = 2.0, audio: bytes | None = b"mp4a", audio_object_type: int = 0x40,
    faststart: bool = True, fragmented: bool = False, mdat_bytes: int = 4096,
) -> bytes:
    """A valid MP4 (or MOV with ``brand=b"qt  "``) of the given shape."""
    frames = max(1, round(fps * seconds))
    timescale = round(fps * 1000)
    movie_ms = round(seconds * 1000)
    extension = avcc(profile, width, height) if codec in (b"avc1", b"avc3") else hvcc(profile) if codec in (
        b"hvc1", b"hev1") else b""
    video_entry = box(
        codec, b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", width, height),
        struct.pack(">II", 0x00480000, 0x00480000), b"\x00" * 4, struct.pack(">H", 1), b"\x00" * 32,
        struct.pack(">Hh", 0x18, -1), extension,
    )
    vmhd = full(b"vmhd", 0, 1, b"\x00" * 8)
    tracks = [_trak(1, b"vide", vmhd, _stbl(video_entry, frames, 1000, max(1, mdat_bytes // frames)), timescale,
                    frames * 1000, movie_ms, width, height)]
    if audio is not None:
        audio_entry = box(audio, b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 8, struct.pack(">HHHH", 2, 16, 0, 0),
                          struct.pack(">I", 48000 << 16), esds(audio_object_type) if audio == b"mp4a" else b"")
        packets = max(1, round(seconds * 48000 / 1024))
        smhd = full(b"smhd", 0, 0, b"\x00" * 4)
        tracks.append(_trak(2, b"soun", smhd, _stbl(audio_entry, packets, 1024, 8), 48000, packets * 1024, movie_ms))
    mvhd = full(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, movie_ms), struct.pack(">IH", 0x10000, 0x0100),
                b"\x00" * 10, _MATRIX, b"\x00" * 24, struct.pack(">I", len(tracks) + 1))
    moov = box(b"moov", mvhd, *tracks, box(b"mvex", full(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0)))
               if fragmented else b"")
    ftyp = box(b"ftyp", brand, struct.pack(">I", 0x200), brand, b"iso2mp41" if brand != b"qt  " else b"")
    mdat = box(b"mdat", b"\x00" * mdat_bytes)
    moof = box(b"moof", full(b"mfhd", 0, 0, struct.pack(">I", 1))) if fragmented else b""
    return ftyp + (moov + mdat if faststart else mdat + moov) + moof


def png(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def gif(width: int = 5, height: int = 7) -> bytes:
    image = b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # one pixel
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + image


def jpeg_header(width: int = 640, height: int = 480) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


def webp_lossless(width: int = 9, height: int = 2) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    payload = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 8
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk
