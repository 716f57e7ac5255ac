"""Ocean Binary Protocol (OBP) as the Ocean Insight STS speaks it over RS-232.

Enough of it to identify an STS, switch its baud rate, read its calibration, set the
integration time and read a raw spectrum (1024 x uint16 LE). Only the STS is claimed: the QE
Pro reads spectra with another message (0x00100928, a 32-byte metadata header, uint32 counts)
and Flame-S/T speak Ocean's older OOI protocol (python-seabreeze ``pyseabreeze/protocol.py``
and ``devices.py``); neither is implemented. The layout (little-endian), checked field by field
against python-seabreeze's ``OBPProtocol`` and the STS Micro Library's ``makePacket``::

    C1 C0 | version u16 (0x1100 seabreeze, 0x1000 Ocean's STS demo) | flags u16 | error u16 | message type u32 | regarding u32
    | 6 reserved | checksum type u8 (0 none, 1 MD5) | immediate length u8 (<= 16)
    | 16 immediate bytes | bytes remaining u32 (= payload + 20)
    payload | 16-byte MD5 of everything before it, or zeros | C5 C4 C3 C2

A message is at least 64 bytes. Short data (<= 16 bytes) travels as immediate data.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from firmware_bridge.decoding import CountingDecoder

START = b"\xc1\xc0"
FOOTER = b"\xc5\xc4\xc3\xc2"
VERSION = 0x1100  #: what we send (python-seabreeze's HEADER_PROTOCOL_VERSION)
#: what we accept: 0x1000 is what Ocean's STS demo and the STS Micro Library send and get back
VERSIONS = (0x1000, 0x1100)
HEADER = struct.Struct("<2sHHHII6sBB16sI")
assert HEADER.size == 44
CHECKSUM_SIZE = 16
#: payload cap: a QE Pro frame (1044 pixels x 4 bytes) or a 4096-pixel uint16 frame fits with room
MAX_PAYLOAD = 64 * 1024


class Flag(enum.IntFlag):
    RESPONSE = 0x01
    ACK = 0x02
    ACK_REQUESTED = 0x04
    NACK = 0x08
    EXCEPTION = 0x10


class MessageType(enum.IntEnum):
    GET_BAUD = 0x00000800  # STS Micro Library 'getBaud': reply immediate u32
    SET_BAUD = 0x00000810  # STS Micro Library 'setBaud': immediate u32, no reply
    SERIAL_NUMBER = 0x00000100
    GET_RAW_SPECTRUM = 0x00101100
    SET_INTEGRATION_TIME_US = 0x00110010
    PIXEL_COUNT = 0x00110220
    WAVELENGTH_COEFFICIENT_COUNT = 0x00180100
    WAVELENGTH_COEFFICIENT = 0x00180101


@dataclass(frozen=True)
class Message:
    type: int
    data: bytes = b""
    flags: int = 0
    error: int = 0
    regarding: int = 0


def encode(message: Message, md5: bool = False, version: int = VERSION) -> bytes:
    immediate = message.data if len(message.data) <= 16 else b""
    payload = b"" if immediate or not message.data else message.data
    head = HEADER.pack(
        START,
        version,
        message.flags,
        message.error,
        message.type,
        message.regarding,
        bytes(6),
        1 if md5 else 0,
        len(immediate),
        immediate.ljust(16, b"\x00"),
        len(payload) + CHECKSUM_SIZE + len(FOOTER),
    )
    checksum = hashlib.md5(head + payload).digest() if md5 else bytes(CHECKSUM_SIZE)
    return head + payload + checksum + FOOTER


class OBPDecoder(CountingDecoder):
    """Incremental decoder with resynchronisation and counted rejections, like FrameDecoder."""

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self._discard(len(self._buffer) - (1 if self._buffer.endswith(START[:1]) else 0))
                return messages
            if start:
                self._discard(start)
            if len(self._buffer) < HEADER.size:
                return messages
            _, version, flags, error, mtype, regarding, _, checksum_type, n_immediate, immediate, remaining = HEADER.unpack_from(self._buffer)
            if version not in VERSIONS:
                self._reject("unknown version")
                continue
            if n_immediate > 16 or checksum_type > 1:
                self._reject("bad header")
                continue
            if not CHECKSUM_SIZE + len(FOOTER) <= remaining <= MAX_PAYLOAD + CHECKSUM_SIZE + len(FOOTER):
                self._reject("impossible length")
                continue
            end = HEADER.size + remaining
            if len(self._buffer) < end:
                return messages
            if self._buffer[end - len(FOOTER) : end] != FOOTER:
                self._reject("bad footer")
                continue
            payload_end = end - len(FOOTER) - CHECKSUM_SIZE
            if checksum_type == 1:
                digest = hashlib.md5(self._buffer[:payload_end]).digest()
                if digest != self._buffer[payload_end : payload_end + CHECKSUM_SIZE]:
                    self._reject("bad checksum")
                    continue
            payload = bytes(self._buffer[HEADER.size : payload_end])
            del self._buffer[:end]
            self.frames_ok += 1
            messages.append(Message(mtype, payload or immediate[:n_immediate], flags, error, regarding))
