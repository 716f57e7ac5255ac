"""The host side of a spectrometer link: handshake and frame reading for each protocol.

A link wraps an open port (anything with pyserial's ``read``/``write``/``timeout``) and a
device profile. ``open()`` performs the protocol's handshake and returns what the device said
of itself (falling back to the profile); ``frames()`` returns the raw frames received since
the last call, and the decoder's counters say what was rejected on the way.
"""

from __future__ import annotations

import abc
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge import framing, obp
from firmware_bridge.ascii_lines import AsciiLineDecoder
from firmware_bridge.profiles import DeviceProfile


class LinkError(RuntimeError):
    """The device did not answer as its protocol says it must."""


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    serial: str
    firmware: str
    profile: DeviceProfile  # with what the device reported filled in


@dataclass(frozen=True)
class RawFrame:
    counts: np.ndarray
    counter: int
    integration_us: int
    saturated: bool
    dark: bool
    received: float  # time.monotonic() when its last byte was decoded


class Link(abc.ABC):
    """One protocol over an open port: the handshake, the frames since the last call, the goodbye."""

    protocol = ""

    def __init__(self, port, profile: DeviceProfile) -> None:
        self.port = port
        self.profile = profile
        self.decoder = self._make_decoder()
        self._counter = 0  # the device's frame counter, or ours (from 1) where frames carry none
        #: spectra the device numbered but that never arrived whole (gaps in its frame counter);
        #: a frame whose sync word was hit is not seen as a frame at all, only as a gap
        self.missing = 0

    @abc.abstractmethod
    def _make_decoder(self):
        """The protocol's I/O-free decoder (it counts every rejected byte run)."""

    @abc.abstractmethod
    def open(self) -> tuple[DeviceInfo, np.ndarray | None]:
        """Handshake: what the device says of itself, and a dark frame where the protocol takes one."""

    @abc.abstractmethod
    def frames(self) -> list[RawFrame]:
        """The whole frames received since the last call (none is an answer too)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the device as it was found (stop streaming); the port stays open."""

    @property
    def frames_ok(self) -> int:
        return self.decoder.frames_ok

    @property
    def rejected(self) -> int:
        return self.decoder.rejected_total

    def _read_available(self) -> bytes:
        return self.port.read(max(1, getattr(self.port, "in_waiting", 0) or 1))


class FrameLink(Link):
    """ramanedge's framed protocol: identify, calibration, a dark frame, then streaming."""

    protocol = "frame"

    def _make_decoder(self):
        return framing.FrameDecoder()

    def _request(self, message_type: int, payload: bytes = b"", expect: int | None = None, timeout: float = 1.0) -> framing.Frame:
        self.port.write(framing.encode_frame(message_type, 0, payload))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self._read_available()):
                if frame.type == (expect or framing.MessageType.ACK):
                    return frame
                if frame.type == framing.MessageType.ERROR:
                    raise LinkError(f"device refused command 0x{message_type:02x}")
        raise LinkError(f"no answer to command 0x{message_type:02x} within {timeout:.1f} s")

    def open(self) -> tuple[DeviceInfo, np.ndarray | None]:
        T = framing.MessageType
        self.port.write(framing.encode_frame(T.STOP_STREAM, 0))
        time.sleep(0.05)
        self.port.reset_input_buffer()
        self.decoder = self._make_decoder()
        identity = framing.Identity.decode(self._request(T.IDENTIFY, expect=T.IDENTITY).payload)
        calibration = framing.Calibration.decode(self._request(T.GET_CALIBRATION, expect=T.CALIBRATION).payload)
        profile = self.profile.with_device(
            pixels=identity.pixels, laser_nm=calibration.laser_nm, wavelength_coefficients=calibration.coefficients
        )
        dark = None
        if profile.dark == "frame":
            frame = framing.SpectrumFrame.decode(self._request(T.ACQUIRE_DARK, expect=T.SPECTRUM).payload)
            dark = frame.counts.astype(np.float64)
        self._request(T.START_STREAM)
        self.profile = profile
        return DeviceInfo(identity.model, identity.serial, identity.firmware, profile), dark

    def frames(self) -> list[RawFrame]:
        out = []
        for frame in self.decoder.feed(self._read_available()):
            if frame.type != framing.MessageType.SPECTRUM:
                continue
            try:
                s = framing.SpectrumFrame.decode(frame.payload)
            except framing.PayloadError:
                self.decoder.rejected["bad payload"] += 1
                continue
            if s.counts.size != self.profile.pixels:
                self.decoder.rejected["wrong pixel count"] += 1
                continue
            if self._counter and s.counter > self._counter + 1:
                self.missing += s.counter - self._counter - 1
            self._counter = s.counter
            out.append(
                RawFrame(s.counts, s.counter, s.integration_us, bool(s.flags & framing.Flags.SATURATED), bool(s.flags & framing.Flags.DARK), time.monotonic())
            )
        return out

    def close(self) -> None:
        try:
            self.port.write(framing.encode_frame(framing.MessageType.STOP_STREAM, 0))
        except Exception:  # the device may be gone already; closing must not fail
            pass


class AsciiLink(Link):
    """Lines of counts; everything but the counts comes from the profile."""

    protocol = "ascii"

    def _make_decoder(self):
        return AsciiLineDecoder(self.profile.pixels, self.profile.max_count)

    #: An ASCII sketch has no handshake: it counts as connected once one whole spectrum line
    #: arrives within this many seconds (a silent or wrong port never does).
    first_line_timeout_s = 3.0

    def __init__(self, port, profile: DeviceProfile) -> None:
        super().__init__(port, profile)
        self._held: list[RawFrame] = []  # spectra decoded while waiting for the first one

    def open(self) -> tuple[DeviceInfo, None]:
        self.port.reset_input_buffer()
        self.decoder = self._make_decoder()
        deadline = time.monotonic() + self.first_line_timeout_s
        while time.monotonic() < deadline:
            self._held = self._decode()
            if self._held:  # kept: the first spectrum is identified like every other
                return DeviceInfo(self.profile.name, "unknown", "unknown", self.profile), None
        raise LinkError(
            f"no spectrum line of {self.profile.pixels} counts within {self.first_line_timeout_s:.0f} s "
            f"({self.decoder.rejected_total} lines rejected)"
        )

    def _decode(self) -> list[RawFrame]:
        now = time.monotonic()
        out = []
        for counts in self.decoder.feed(self._read_available()):
            self._counter += 1
            out.append(RawFrame(counts, self._counter, 0, bool(counts.max() >= self.profile.max_count), False, now))
        return out

    def frames(self) -> list[RawFrame]:
        out, self._held = [*self._held, *self._decode()], []
        return out

    def close(self) -> None:
        pass


class OBPLink(Link):
    """Ocean Binary Protocol: query the device, then poll raw spectra one request at a time."""

    protocol = "obp"
    reply_timeout = 1.0

    def _make_decoder(self):
        return obp.OBPDecoder()

    def _query(self, message_type: int, data: bytes = b"") -> obp.Message:
        self.port.write(obp.encode(obp.Message(message_type, data, obp.Flag.ACK_REQUESTED)))
        deadline = time.monotonic() + self.reply_timeout
        while time.monotonic() < deadline:
            for message in self.decoder.feed(self._read_available()):
                if message.type == message_type:
                    if message.flags & obp.Flag.NACK:
                        raise LinkError(f"device refused OBP message 0x{message_type:08x} (error {message.error})")
                    return message
        raise LinkError(f"no answer to OBP message 0x{message_type:08x} within {self.reply_timeout:.1f} s")

    def open(self) -> tuple[DeviceInfo, None]:
        T = obp.MessageType
        self.port.reset_input_buffer()
        self.decoder = self._make_decoder()
        serial = self._query(T.SERIAL_NUMBER).data.rstrip(b"\x00").decode("ascii", errors="replace")
        raw_pixels = self._query(T.PIXEL_COUNT).data
        pixels = int.from_bytes(raw_pixels[:4], "little")
        n = self._query(T.WAVELENGTH_COEFFICIENT_COUNT).data[0]
        coefficients = tuple(struct.unpack("<f", self._query(T.WAVELENGTH_COEFFICIENT, bytes([i])).data[:4])[0] for i in range(n))
        self._query(T.SET_INTEGRATION_TIME_US, struct.pack("<I", 100_000))
        self.profile = self.profile.with_device(pixels=pixels, wavelength_coefficients=coefficients)
        self._pending = False
        return DeviceInfo(self.profile.name, serial, "OBP", self.profile), None

    def frames(self) -> list[RawFrame]:
        if not self._pending:
            self.port.write(obp.encode(obp.Message(obp.MessageType.GET_RAW_SPECTRUM)))
            self._pending, self._asked = True, time.monotonic()
        out = []
        for message in self.decoder.feed(self._read_available()):
            if message.type != obp.MessageType.GET_RAW_SPECTRUM:
                continue
            self._pending = False
            if len(message.data) != 2 * self.profile.pixels:
                self.decoder.rejected["wrong pixel count"] += 1
                continue
            counts = np.frombuffer(message.data, "<u2").astype(np.uint16)
            self._counter += 1
            out.append(RawFrame(counts, self._counter, 0, bool(counts.max() >= self.profile.max_count), False, time.monotonic()))
        if self._pending and time.monotonic() - self._asked > self.reply_timeout:
            self.decoder.rejected["no reply"] += 1  # lost or mangled on the wire: ask again
            self._pending = False
        return out

    def close(self) -> None:
        pass


LINKS: dict[str, Callable[[Any, DeviceProfile], Link]] = {"frame": FrameLink, "ascii": AsciiLink, "obp": OBPLink}
