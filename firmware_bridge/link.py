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
    notes: tuple[str, ...] = ()  # what the handshake had to assume or fall back to


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
        #: polled while waiting for the device (the handshake's replies): True ends the wait at once (Ctrl-C)
        self.should_stop: Callable[[], bool] = lambda: False

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

    def _waiting(self, deadline: float) -> bool:
        """Go on waiting for the device: before ``deadline`` (time.monotonic()) and not told to stop."""
        return time.monotonic() < deadline and not self.should_stop()

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
        while self._waiting(deadline):
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
    """Lines of counts; everything but the counts comes from the profile.

    Streaming sketches print forever; query-driven ones (profile ``query``, e.g. ``SPEC.READ?``)
    print one line per command, so the link asks again when a line has arrived or timed out.
    """

    protocol = "ascii"
    #: seconds to wait for a queried line before asking again (counted as *no reply*)
    query_timeout_s = 2.0

    def _make_decoder(self):
        return AsciiLineDecoder(self.profile.pixels, self.profile.max_count)

    #: An ASCII sketch has no handshake: it counts as connected once one whole spectrum line
    #: arrives within this many seconds (a silent or wrong port never does).
    first_line_timeout_s = 3.0

    def __init__(self, port, profile: DeviceProfile) -> None:
        super().__init__(port, profile)
        self._held: list[RawFrame] = []  # spectra decoded while waiting for the first one
        self._asked: float | None = None  # when the last query went out (query-driven sketches)

    def open(self) -> tuple[DeviceInfo, None]:
        self.port.reset_input_buffer()
        self.decoder = self._make_decoder()
        deadline = time.monotonic() + self.first_line_timeout_s
        while self._waiting(deadline):
            self._ask()
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
        if out:
            self._asked = None  # answered: the next call asks for the next line
        return out

    def _ask(self) -> None:
        """Query-driven sketches: send the query when none is outstanding (or the last one timed out)."""
        if not self.profile.query:
            return
        now = time.monotonic()
        if self._asked is not None and now - self._asked < self.query_timeout_s:
            return
        if self._asked is not None:
            self.decoder.rejected["no reply"] += 1
        self.port.write(self.profile.query.encode("ascii") + b"\n")
        self._asked = now

    def frames(self) -> list[RawFrame]:
        self._ask()
        out, self._held = [*self._held, *self._decode()], []
        return out

    def close(self) -> None:
        pass


class OBPLink(Link):
    """Ocean Binary Protocol: query the device, then poll raw spectra one request at a time.

    Each value below is set as the independent implementations do it (python-seabreeze's
    ``pyseabreeze/protocol.py``, the STS Micro Library for RS-232 by D. Bongiorno, Ocean's STS demo).
    """

    protocol = "obp"
    #: after SET_BAUD the STS Micro Library waits 1 s before reopening the port at the new rate
    baud_switch_wait_s = 1.0
    #: margin on every reply time (device latency, USB-serial adapters' buffering)
    reply_margin_s = 0.5
    query_reply_bytes = 64  # a message without payload

    def __init__(self, port, profile: DeviceProfile) -> None:
        super().__init__(port, profile)
        self.notes: list[str] = []  # what the handshake had to assume (said on connect)
        self.integration_us = 100_000
        self._pending = False
        self._asked = 0.0

    def _make_decoder(self):
        return obp.OBPDecoder()

    def _baud(self) -> int:
        return int(getattr(self.port, "baudrate", 0) or self.profile.baud)

    def reply_timeout(self, reply_bytes: int, integration_us: int = 0) -> float:
        """Seconds to wait for a reply: integration, the reply's bytes on the wire (10 bits each), a margin.

        At 9600 baud a 1024-pixel STS spectrum (2112 bytes) takes 2.2 s on the wire alone.
        """
        return integration_us / 1e6 + reply_bytes * 10 / self._baud() * 1.5 + self.reply_margin_s

    def _check(self, message_type: int, message: obp.Message) -> obp.Message:
        if message.flags & obp.Flag.NACK:
            raise LinkError(f"device refused OBP message 0x{message_type:08x} (error {message.error})")
        if message.flags & obp.Flag.EXCEPTION and message.error:  # as python-seabreeze treats FLAG_HW_EXCEPTION
            raise LinkError(f"device reported an exception for OBP message 0x{message_type:08x} (error {message.error})")
        return message

    def _await(self, message_type: int, timeout: float, want_data: bool) -> obp.Message:
        deadline = time.monotonic() + timeout
        while self._waiting(deadline):
            for message in self.decoder.feed(self._read_available()):
                if message.type != message_type:
                    continue
                bare_ack = bool(message.flags & obp.Flag.ACK) and not message.flags & obp.Flag.RESPONSE and not message.data
                if want_data and bare_ack:
                    continue  # a separate empty ACK is not the answer to a query
                return self._check(message_type, message)
        raise LinkError(f"no answer to OBP message 0x{message_type:08x} within {timeout:.1f} s")

    def _query(self, message_type: int, data: bytes = b"") -> obp.Message:
        """A get: flags 0, as every independent implementation sends queries (no ACK asked for)."""
        self.port.write(obp.encode(obp.Message(message_type, data, 0)))
        return self._await(message_type, self.reply_timeout(self.query_reply_bytes), want_data=True)

    def _command(self, message_type: int, data: bytes = b"") -> None:
        """A set: ACK requested, as python-seabreeze sends commands; a NACK is an error."""
        self.port.write(obp.encode(obp.Message(message_type, data, obp.Flag.ACK_REQUESTED)))
        self._await(message_type, self.reply_timeout(self.query_reply_bytes), want_data=False)

    def _switch_baud(self, target: int) -> None:
        """Ask the device for ``target`` baud, follow it, and check; stay at the old rate if it does not answer there."""
        old = self._baud()
        self.port.write(obp.encode(obp.Message(obp.MessageType.SET_BAUD, struct.pack("<I", target), 0)))
        self.port.flush()
        time.sleep(self.baud_switch_wait_s)
        self.port.baudrate = target
        self.port.reset_input_buffer()
        try:
            answer = int.from_bytes(self._query(obp.MessageType.GET_BAUD).data[:4], "little")
        except LinkError:
            answer = 0
        if answer != target:
            self.port.baudrate = old
            self.port.reset_input_buffer()
            self.notes.append(f"stayed at {old} baud: the device did not confirm {target}")

    def open(self) -> tuple[DeviceInfo, None]:
        T = obp.MessageType
        self.port.reset_input_buffer()
        self.decoder = self._make_decoder()
        try:
            reply = self._query(T.SERIAL_NUMBER)
        except LinkError:
            if not self.profile.switch_baud or self._baud() == self.profile.switch_baud:
                raise
            # still at the rate an earlier session switched it to (it keeps it until powered off)
            self.port.baudrate = self.profile.switch_baud
            self.port.reset_input_buffer()
            reply = self._query(T.SERIAL_NUMBER)
        serial = reply.data.rstrip(b"\x00").decode("ascii", errors="replace")
        if self.profile.switch_baud and self.profile.switch_baud != self._baud():
            self._switch_baud(self.profile.switch_baud)
        try:
            pixels = int.from_bytes(self._query(T.PIXEL_COUNT).data[:4], "little")
        except LinkError:  # no independent source shows an STS answering it
            pixels = self.profile.pixels
            self.notes.append(f"pixel count not answered: using the profile's {pixels}")
        n = self._query(T.WAVELENGTH_COEFFICIENT_COUNT).data[0]
        coefficients = tuple(struct.unpack("<f", self._query(T.WAVELENGTH_COEFFICIENT, bytes([i])).data[:4])[0] for i in range(n))
        self._command(T.SET_INTEGRATION_TIME_US, struct.pack("<I", self.integration_us))
        self.profile = self.profile.with_device(pixels=pixels, wavelength_coefficients=coefficients)
        self._pending = False
        return DeviceInfo(self.profile.name, serial, "OBP", self.profile, tuple(self.notes)), None

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
            out.append(RawFrame(counts, self._counter, self.integration_us, bool(counts.max() >= self.profile.max_count), False, time.monotonic()))
        timeout = self.reply_timeout(self.query_reply_bytes + 2 * self.profile.pixels, self.integration_us)
        if self._pending and time.monotonic() - self._asked > timeout:
            self.decoder.rejected["no reply"] += 1  # lost or mangled on the wire: ask again
            self._pending = False
        return out

    def close(self) -> None:
        pass


LINKS: dict[str, Callable[[Any, DeviceProfile], Link]] = {"frame": FrameLink, "ascii": AsciiLink, "obp": OBPLink}
