"""What the emulated spectrometer's firmware does, one class per protocol.

A :class:`Firmware` turns the bytes the host sent into replies, and says whether it streams on
its own (an ASCII sketch prints forever; the framed protocol streams after START_STREAM). All
three share a :class:`SpectrumSource`: the minerals to play, the detector model that renders
them into counts, the integration time and the record of what was played. The pty host
(:mod:`firmware_bridge.emulator`) owns the wire; faults (:mod:`firmware_bridge.faults`) are
applied there, to the replies marked as spectra.
"""

from __future__ import annotations

import abc
import struct
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge import framing, obp
from firmware_bridge.ascii_lines import encode_ascii_line
from firmware_bridge.instrument import Detector
from firmware_bridge.profiles import DeviceProfile

FIRMWARE = "ramanedge-emu 1.0"


@dataclass
class Played:
    """What the emulator sent: for tests and logs to check identifications against."""

    counter: int
    mineral: str
    faulted: str = ""  # the fault applied to this frame, if any


@dataclass
class SpectrumSource:
    """Minerals rendered through the detector, in turn; dark frames do not skip a mineral."""

    profile: DeviceProfile
    library: list[tuple[str, np.ndarray]]  # (mineral, intensity on grid_cm1)
    grid_cm1: np.ndarray
    rng: np.random.Generator
    integration_us: int = 100_000
    played: list[Played] = field(default_factory=list)
    counter: int = 0

    def __post_init__(self) -> None:
        if not self.library:
            raise ValueError("the emulator needs at least one spectrum to play")
        self.detector = Detector(self.profile)

    def next(self, dark: bool = False) -> tuple[np.ndarray, bool]:
        """Counts of the next spectrum (or a dark frame) and whether it saturated; numbered and recorded."""
        mineral, intensity = self.library[len(self.played) % len(self.library)]
        counts, saturated = self.detector.render(self.grid_cm1, intensity, self.integration_us, self.rng, dark=dark)
        self.counter += 1
        if not dark:
            self.played.append(Played(self.counter, mineral))
        return counts, saturated


class Firmware(abc.ABC):
    """One protocol's firmware over a :class:`SpectrumSource`."""

    def __init__(self, source: SpectrumSource, serial: str) -> None:
        self.source, self.serial = source, serial
        self.streaming = False

    @abc.abstractmethod
    def handle(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Replies to the commands in ``data``, each marked True if it is a spectrum (faults apply)."""

    @abc.abstractmethod
    def spectrum(self) -> bytes:
        """The next spectrum as this protocol sends it unasked (streaming)."""

    @abc.abstractmethod
    def replug(self) -> None:
        """Power-on state after an unplug: half-received commands are gone."""


class FrameFirmware(Firmware):
    """ramanedge's framed protocol (docs/protocol.md)."""

    def __init__(self, source: SpectrumSource, serial: str) -> None:
        super().__init__(source, serial)
        self._decoder = framing.FrameDecoder()
        self._sequence = 0
        self._started = time.monotonic()

    def replug(self) -> None:
        self._decoder = framing.FrameDecoder()

    def _frame(self, message_type: int, payload: bytes = b"") -> bytes:
        self._sequence = (self._sequence + 1) & 0xFFFF
        return framing.encode_frame(message_type, self._sequence, payload)

    def spectrum(self, dark: bool = False) -> bytes:
        counts, saturated = self.source.next(dark)
        flags = (framing.Flags.SATURATED if saturated else 0) | (framing.Flags.DARK if dark else 0)
        frame = framing.SpectrumFrame(
            self.source.counter, int((time.monotonic() - self._started) * 1e6), self.source.integration_us, framing.Flags(flags), counts
        )
        return self._frame(framing.MessageType.SPECTRUM, frame.encode())

    def handle(self, data: bytes) -> list[tuple[bytes, bool]]:
        spectra = (framing.MessageType.ACQUIRE, framing.MessageType.ACQUIRE_DARK)
        return [(self._answer(f), f.type in spectra) for f in self._decoder.feed(data)]

    def _answer(self, request: framing.Frame) -> bytes:
        T = framing.MessageType
        profile = self.source.profile
        ack = self._frame(T.ACK, bytes([request.type]))
        if request.type == T.IDENTIFY:
            return self._frame(T.IDENTITY, framing.Identity(profile.name, self.serial, FIRMWARE, profile.pixels).encode())
        if request.type == T.GET_CALIBRATION:
            return self._frame(T.CALIBRATION, framing.Calibration(profile.laser_nm, profile.wavelength_coefficients).encode())
        if request.type == T.SET_INTEGRATION and len(request.payload) == 4:
            self.source.integration_us = struct.unpack("<I", request.payload)[0]
            return ack
        if request.type in (T.ACQUIRE, T.ACQUIRE_DARK):
            return self.spectrum(dark=request.type == T.ACQUIRE_DARK)
        if request.type in (T.START_STREAM, T.STOP_STREAM):
            self.streaming = request.type == T.START_STREAM
            return ack
        return self._frame(T.ERROR, bytes([request.type, 1]) + b"\x13unknown or bad command")


class AsciiFirmware(Firmware):
    """A hobby micro-spectrometer sketch: prints a line of counts per spectrum, forever, or, with a
    profile ``query`` (e.g. ``SPEC.READ?``), one line per query line received."""

    def __init__(self, source: SpectrumSource, serial: str) -> None:
        super().__init__(source, serial)
        self.query = source.profile.query.encode("ascii")
        self.streaming = not self.query
        self._line = b""

    def spectrum(self) -> bytes:
        return encode_ascii_line(self.source.next()[0])

    def handle(self, data: bytes) -> list[tuple[bytes, bool]]:
        if not self.query:
            return []
        self._line += data
        out = []
        while b"\n" in self._line:
            line, self._line = self._line.split(b"\n", 1)
            if line.strip() == self.query:
                out.append((self.spectrum(), True))
        return out

    def replug(self) -> None:
        self._line = b""
        self.streaming = not self.query  # a streaming sketch starts printing again at power-on


@dataclass(frozen=True)
class ObpBehaviour:
    """How a real STS differs from the polite default, to test the host against each."""

    version: int = obp.VERSION  #: 0x1000: what Ocean's STS demo sends
    nack_pixel_count: bool = False  #: no independent source shows an STS answering 0x00110220
    separate_ack: bool = False  #: an empty ACK before every reply, even to queries
    wake_baud: int = 0  #: answer only at this rate until switched (0: any rate); the STS wakes at 9600
    baud_switch: bool = True  #: False: ignore SET_BAUD (a device that refuses to change rate)


class ObpFirmware(Firmware):
    """The Ocean Binary Protocol, as an STS answers it: one reply per request, nothing unasked."""

    def __init__(self, source: SpectrumSource, serial: str, behaviour: ObpBehaviour = ObpBehaviour()) -> None:
        super().__init__(source, serial)
        self.behaviour = behaviour
        self.baud = behaviour.wake_baud  # 0: the host may talk at any rate
        self._decoder = obp.OBPDecoder()

    def replug(self) -> None:
        self._decoder = obp.OBPDecoder()
        self.baud = self.behaviour.wake_baud  # power-on: back to the wake-up rate

    def _encode(self, message: obp.Message) -> bytes:
        return obp.encode(message, version=self.behaviour.version)

    def spectrum(self) -> bytes:
        counts, _ = self.source.next()
        return self._encode(obp.Message(obp.MessageType.GET_RAW_SPECTRUM, counts.astype("<u2").tobytes(), obp.Flag.RESPONSE))

    def handle(self, data: bytes) -> list[tuple[bytes, bool]]:
        out = []
        for m in self._decoder.feed(data):
            if self.behaviour.separate_ack:
                out.append((self._encode(obp.Message(m.type, b"", obp.Flag.ACK)), False))
            reply = self._answer(m)
            if reply:
                out.append((reply, m.type == obp.MessageType.GET_RAW_SPECTRUM))
        return out

    def _answer(self, request: obp.Message) -> bytes:
        T = obp.MessageType
        profile = self.source.profile
        reply = obp.Flag.RESPONSE
        if request.type == T.SET_BAUD and len(request.data) == 4:
            if self.behaviour.baud_switch:
                self.baud = struct.unpack("<I", request.data)[0]
            return b""  # the STS switches without a reply (STS Micro Library: writePack, no read)
        if request.type == T.GET_BAUD:
            return self._encode(obp.Message(T.GET_BAUD, struct.pack("<I", self.baud or profile.baud), reply))
        if request.type == T.SERIAL_NUMBER:
            return self._encode(obp.Message(T.SERIAL_NUMBER, self.serial.encode(), reply))
        if request.type == T.PIXEL_COUNT and not self.behaviour.nack_pixel_count:
            return self._encode(obp.Message(T.PIXEL_COUNT, struct.pack("<I", profile.pixels), reply))
        if request.type == T.WAVELENGTH_COEFFICIENT_COUNT:
            return self._encode(obp.Message(request.type, bytes([len(profile.wavelength_coefficients)]), reply))
        if request.type == T.WAVELENGTH_COEFFICIENT and request.data and request.data[0] < len(profile.wavelength_coefficients):
            return self._encode(obp.Message(request.type, struct.pack("<f", profile.wavelength_coefficients[request.data[0]]), reply))
        if request.type == T.SET_INTEGRATION_TIME_US and len(request.data) == 4:
            self.source.integration_us = struct.unpack("<I", request.data)[0]
            return self._encode(obp.Message(request.type, b"", reply | obp.Flag.ACK))
        if request.type == T.GET_RAW_SPECTRUM:
            return self.spectrum()
        return self._encode(obp.Message(request.type, b"", reply | obp.Flag.NACK, error=2))  # 2: unknown message type


FIRMWARES: dict[str, type[Firmware]] = {"frame": FrameFirmware, "ascii": AsciiFirmware, "obp": ObpFirmware}
