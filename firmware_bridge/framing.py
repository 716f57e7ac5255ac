"""ramanedge's framed binary protocol, version 1 (specified in docs/protocol.md).

Frame (little-endian)::

    sync  'A5 5A 52 45'  4 bytes
    version          u8   (1)
    type             u8   (MessageType)
    sequence         u16  (wraps)
    payload length   u32  (<= MAX_PAYLOAD)
    payload          n bytes
    crc32            u32  (zlib CRC-32 of version..payload)

:class:`FrameDecoder` is fed bytes as they arrive and returns whole, checked frames. It
resynchronises on the next sync word after garbage, refuses impossible lengths and bad CRCs,
and counts every rejection by reason, so a noisy line costs frames, never silent corruption.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from firmware_bridge.decoding import CountingDecoder

SYNC = b"\xa5\x5a\x52\x45"
VERSION = 1
HEADER = struct.Struct("<BBHI")  # version, type, sequence, payload length
CRC = struct.Struct("<I")
#: Larger than any spectrum frame (4096 pixels x 4 bytes + header); a bigger length is corruption.
MAX_PAYLOAD = 32 * 1024


class MessageType(enum.IntEnum):
    IDENTIFY = 0x01
    GET_CALIBRATION = 0x02
    SET_INTEGRATION = 0x03
    ACQUIRE = 0x04
    START_STREAM = 0x05
    STOP_STREAM = 0x06
    ACQUIRE_DARK = 0x07
    IDENTITY = 0x81
    CALIBRATION = 0x82
    ACK = 0x83
    SPECTRUM = 0x84
    ERROR = 0x8F


class Flags(enum.IntFlag):
    NONE = 0
    SATURATED = 0x01
    DARK = 0x02


@dataclass(frozen=True)
class Frame:
    type: int
    sequence: int
    payload: bytes


def encode_frame(message_type: int, sequence: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte cap")
    body = HEADER.pack(VERSION, message_type, sequence & 0xFFFF, len(payload)) + payload
    return SYNC + body + CRC.pack(zlib.crc32(body))


class FrameDecoder(CountingDecoder):
    """Incremental decoder: ``feed(data)`` returns the frames completed by ``data``."""

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(SYNC)
            if start < 0:
                # keep a tail that may be the start of a sync word split across reads
                keep = len(SYNC) - 1
                if len(self._buffer) > keep:
                    self._discard(len(self._buffer) - keep)  # garbage: counted in bytes_discarded
                return frames
            if start:
                self._discard(start)
            if len(self._buffer) < len(SYNC) + HEADER.size:
                return frames
            version, message_type, sequence, length = HEADER.unpack_from(self._buffer, len(SYNC))
            if version != VERSION:
                self._reject("unknown version")
                continue
            if length > MAX_PAYLOAD:
                self._reject("impossible length")
                continue
            end = len(SYNC) + HEADER.size + length + CRC.size
            if len(self._buffer) < end:
                return frames
            body = bytes(self._buffer[len(SYNC) : end - CRC.size])
            (crc,) = CRC.unpack_from(self._buffer, end - CRC.size)
            if zlib.crc32(body) != crc:
                self._reject("bad crc")
                continue
            del self._buffer[:end]
            self.frames_ok += 1
            frames.append(Frame(message_type, sequence, body[HEADER.size :]))


# --- payloads -------------------------------------------------------------------------------


class PayloadError(ValueError):
    """A frame whose CRC is right but whose payload does not fit its type (firmware bug)."""


def _pack_str(text: str) -> bytes:
    raw = text.encode("utf-8")[:255]
    return bytes([len(raw)]) + raw


def _unpack_str(payload: bytes, offset: int) -> tuple[str, int]:
    if offset >= len(payload):
        raise PayloadError("string runs past the payload")
    n = payload[offset]
    end = offset + 1 + n
    if end > len(payload):
        raise PayloadError("string runs past the payload")
    return payload[offset + 1 : end].decode("utf-8", errors="replace"), end


@dataclass(frozen=True)
class Identity:
    model: str
    serial: str
    firmware: str
    pixels: int

    def encode(self) -> bytes:
        return struct.pack("<H", self.pixels) + _pack_str(self.model) + _pack_str(self.serial) + _pack_str(self.firmware)

    @classmethod
    def decode(cls, payload: bytes) -> Identity:
        if len(payload) < 2:
            raise PayloadError("identity payload too short")
        (pixels,) = struct.unpack_from("<H", payload)
        model, offset = _unpack_str(payload, 2)
        serial, offset = _unpack_str(payload, offset)
        firmware, _ = _unpack_str(payload, offset)
        return cls(model, serial, firmware, pixels)


@dataclass(frozen=True)
class Calibration:
    """Wavelength (nm) of pixel p is sum(coefficients[i] * p**i); the laser line in nm."""

    laser_nm: float
    coefficients: tuple[float, ...]

    def encode(self) -> bytes:
        return struct.pack(f"<dB{len(self.coefficients)}d", self.laser_nm, len(self.coefficients), *self.coefficients)

    @classmethod
    def decode(cls, payload: bytes) -> Calibration:
        if len(payload) < 9:
            raise PayloadError("calibration payload too short")
        laser, n = struct.unpack_from("<dB", payload)
        if len(payload) != 9 + 8 * n or n == 0:
            raise PayloadError(f"calibration payload of {len(payload)} bytes does not hold {n} coefficients")
        return cls(laser, struct.unpack_from(f"<{n}d", payload, 9))


SPECTRUM_HEAD = struct.Struct("<IQIBBH")  # frame counter, device time us, integration us, flags, sample bytes, pixels


@dataclass(frozen=True)
class SpectrumFrame:
    counter: int
    device_time_us: int
    integration_us: int
    flags: Flags
    counts: np.ndarray  # uint16 or uint32

    def encode(self) -> bytes:
        width = self.counts.dtype.itemsize
        if width not in (2, 4):
            raise ValueError("counts must be uint16 or uint32")
        head = SPECTRUM_HEAD.pack(
            self.counter & 0xFFFFFFFF, self.device_time_us, self.integration_us, int(self.flags), width, self.counts.size
        )
        return head + self.counts.astype(f"<u{width}").tobytes()

    @classmethod
    def decode(cls, payload: bytes) -> SpectrumFrame:
        if len(payload) < SPECTRUM_HEAD.size:
            raise PayloadError("spectrum payload shorter than its header")
        counter, time_us, integration, flags, width, pixels = SPECTRUM_HEAD.unpack_from(payload)
        if width not in (2, 4):
            raise PayloadError(f"sample width {width} is neither 2 nor 4 bytes")
        if len(payload) != SPECTRUM_HEAD.size + width * pixels:
            raise PayloadError(f"{pixels} pixels of {width} bytes do not fill a {len(payload)}-byte payload")
        counts = np.frombuffer(payload, dtype=f"<u{width}", offset=SPECTRUM_HEAD.size, count=pixels)
        return cls(counter, time_us, integration, Flags(flags), counts.astype(np.uint32 if width == 4 else np.uint16))
