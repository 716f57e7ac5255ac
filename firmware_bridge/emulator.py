"""A virtual Raman spectrometer on a pseudo-terminal, speaking the framed, ASCII or OBP protocol.

It renders mineral spectra (from a model bundle's reference library or RRUFF files) through
:class:`~firmware_bridge.instrument.Detector` and answers commands like firmware would. Faults
can be injected on the wire: garbage bytes, bit flips, truncated frames, stalls, and unplugging
(the pseudo-terminal goes away and comes back under the same stable link path, as a USB
adapter comes back as the same /dev/ttyUSB0).
"""

from __future__ import annotations

import os
import select
import struct
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_bridge import framing, obp
from firmware_bridge.ascii_lines import encode_ascii_line
from firmware_bridge.instrument import Detector
from firmware_bridge.profiles import DeviceProfile

FIRMWARE = "ramanedge-emu 1.0"


@dataclass
class Faults:
    """Probabilities per frame sent, and the unplug period (seconds, 0 = never)."""

    garbage: float = 0.0
    bitflip: float = 0.0
    truncate: float = 0.0
    stall: float = 0.0
    stall_s: float = 1.5
    unplug_every_s: float = 0.0
    unplugged_s: float = 1.0


@dataclass
class Played:
    """What the emulator sent: for tests and logs to check identifications against."""

    counter: int
    mineral: str
    faulted: str = ""  # the fault applied to this frame, if any


@dataclass
class Emulator:
    profile: DeviceProfile
    library: list[tuple[str, np.ndarray]]  # (mineral, intensity on grid_cm1)
    grid_cm1: np.ndarray
    protocol: str = "frame"
    integration_us: int = 100_000
    interval_s: float = 0.2
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    link_path: Path | None = None  # a stable symlink to the current pseudo-terminal
    serial: str = "EMU00001"
    baud: int = 0  # pace writes as a UART at this rate would (10 bits a byte, 8N1); 0: as fast as the pty takes
    played: list[Played] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.library:
            raise ValueError("the emulator needs at least one spectrum to play")
        self.detector = Detector(self.profile)
        self.rng = np.random.default_rng(self.seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._streaming = self.protocol == "ascii"  # a sketch just prints, forever
        self._counter = 0
        self._sequence = 0
        self._decoder = framing.FrameDecoder() if self.protocol == "frame" else obp.OBPDecoder()
        self._master = self._slave = -1
        self._started = time.monotonic()

    # --- the pseudo-terminal ------------------------------------------------------------------

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes are bytes
        name = os.ttyname(self._slave)
        if self.link_path:
            tmp = self.link_path.with_name(self.link_path.name + ".tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(name)
            tmp.replace(self.link_path)

    def _close_pty(self) -> None:
        if self.link_path:
            self.link_path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    @property
    def port(self) -> str:
        return str(self.link_path) if self.link_path else os.ttyname(self._slave)

    def start(self) -> str:
        self._open_pty()
        self._thread = threading.Thread(target=self._run, name="emulator", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._close_pty()

    # --- the firmware loop --------------------------------------------------------------------

    def _run(self) -> None:
        next_frame = time.monotonic()
        next_unplug = time.monotonic() + self.faults.unplug_every_s if self.faults.unplug_every_s else None
        while not self._stop.is_set():
            now = time.monotonic()
            if next_unplug and now >= next_unplug:
                self._close_pty()
                if self._stop.wait(self.faults.unplugged_s):
                    return
                self._open_pty()
                self._decoder = type(self._decoder)()
                next_unplug = time.monotonic() + self.faults.unplug_every_s
            timeout = max(0.0, min(next_frame - now, 0.05)) if self._streaming else 0.05
            readable, _, _ = select.select([self._master], [], [], timeout)
            if readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                for reply, is_spectrum in self._handle(data):
                    self._send(reply, may_fault=is_spectrum)
            if self._streaming and time.monotonic() >= next_frame:
                self._send(self._spectrum_message(dark=False), may_fault=True)
                next_frame += self.interval_s
                if next_frame < time.monotonic():
                    next_frame = time.monotonic() + self.interval_s

    def _send(self, data: bytes, may_fault: bool = False) -> None:
        fault = ""
        if may_fault:
            data, fault = self._inject(data)
            if self.played:
                self.played[-1].faulted = fault
        view = memoryview(data)
        while view and not self._stop.is_set():
            _, writable, _ = select.select([], [self._master], [], 0.1)
            if writable:
                try:
                    written = os.write(self._master, view[:4096])
                except OSError:
                    return  # unplugged under us
                view = view[written:]
                if self.baud:
                    time.sleep(written * 10 / self.baud)

    def _inject(self, data: bytes) -> tuple[bytes, str]:
        f, rng = self.faults, self.rng
        if f.stall and rng.random() < f.stall:
            self._stop.wait(f.stall_s)
            return data, "stall"
        if f.garbage and rng.random() < f.garbage:
            return rng.bytes(int(rng.integers(1, 200))) + data, "garbage"
        if f.bitflip and rng.random() < f.bitflip:
            flipped = bytearray(data)
            i = int(rng.integers(0, len(flipped)))
            flipped[i] ^= 1 << int(rng.integers(0, 8))
            return bytes(flipped), "bitflip"
        if f.truncate and rng.random() < f.truncate:
            return data[: int(rng.integers(1, len(data)))], "truncate"
        return data, ""

    # --- protocols ----------------------------------------------------------------------------

    def _render(self, dark: bool) -> tuple[np.ndarray, bool, str]:
        mineral, intensity = self.library[len(self.played) % len(self.library)]  # dark frames do not skip a mineral
        counts, saturated = self.detector.render(self.grid_cm1, intensity, self.integration_us, self.rng, dark=dark)
        return counts, saturated, mineral

    def _spectrum_message(self, dark: bool) -> bytes:
        counts, saturated, mineral = self._render(dark)
        self._counter += 1
        if not dark:
            self.played.append(Played(self._counter, mineral))
        if self.protocol == "ascii":
            return encode_ascii_line(counts)
        if self.protocol == "obp":
            return obp.encode(obp.Message(obp.MessageType.GET_RAW_SPECTRUM, counts.astype("<u2").tobytes(), obp.Flag.RESPONSE))
        flags = (framing.Flags.SATURATED if saturated else 0) | (framing.Flags.DARK if dark else 0)
        frame = framing.SpectrumFrame(
            self._counter,
            int((time.monotonic() - self._started) * 1e6),
            self.integration_us,
            framing.Flags(flags),
            counts,
        )
        return self._frame(framing.MessageType.SPECTRUM, frame.encode())

    def _frame(self, message_type: int, payload: bytes = b"") -> bytes:
        self._sequence = (self._sequence + 1) & 0xFFFF
        return framing.encode_frame(message_type, self._sequence, payload)

    def _handle(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Replies to the commands in ``data``, each marked True if it is a spectrum (faults apply)."""
        if self.protocol == "ascii" or not data:
            return []
        if self.protocol == "obp":
            requests = self._decoder.feed(data)
            return [(self._answer_obp(m), m.type == obp.MessageType.GET_RAW_SPECTRUM) for m in requests if isinstance(m, obp.Message)]
        spectra = (framing.MessageType.ACQUIRE, framing.MessageType.ACQUIRE_DARK)
        return [(self._answer_frame(f), f.type in spectra) for f in self._decoder.feed(data) if isinstance(f, framing.Frame)]

    def _answer_frame(self, request: framing.Frame) -> bytes:
        T = framing.MessageType
        ack = self._frame(T.ACK, bytes([request.type]))
        if request.type == T.IDENTIFY:
            identity = framing.Identity(self.profile.name, self.serial, FIRMWARE, self.profile.pixels)
            return self._frame(T.IDENTITY, identity.encode())
        if request.type == T.GET_CALIBRATION:
            calibration = framing.Calibration(self.profile.laser_nm, self.profile.wavelength_coefficients)
            return self._frame(T.CALIBRATION, calibration.encode())
        if request.type == T.SET_INTEGRATION and len(request.payload) == 4:
            self.integration_us = struct.unpack("<I", request.payload)[0]
            return ack
        if request.type in (T.ACQUIRE, T.ACQUIRE_DARK):
            return self._spectrum_message(dark=request.type == T.ACQUIRE_DARK)
        if request.type in (T.START_STREAM, T.STOP_STREAM):
            self._streaming = request.type == T.START_STREAM
            return ack
        return self._frame(T.ERROR, bytes([request.type, 1]) + b"\x13unknown or bad command")

    def _answer_obp(self, request: obp.Message) -> bytes:
        T = obp.MessageType
        reply = obp.Flag.RESPONSE
        if request.type == T.SERIAL_NUMBER:
            return obp.encode(obp.Message(T.SERIAL_NUMBER, self.serial.encode(), reply))
        if request.type == T.PIXEL_COUNT:
            return obp.encode(obp.Message(T.PIXEL_COUNT, struct.pack("<I", self.profile.pixels), reply))
        if request.type == T.WAVELENGTH_COEFFICIENT_COUNT:
            return obp.encode(obp.Message(request.type, bytes([len(self.profile.wavelength_coefficients)]), reply))
        if request.type == T.WAVELENGTH_COEFFICIENT and request.data and request.data[0] < len(self.profile.wavelength_coefficients):
            value = self.profile.wavelength_coefficients[request.data[0]]
            return obp.encode(obp.Message(request.type, struct.pack("<f", value), reply))
        if request.type == T.SET_INTEGRATION_TIME_US and len(request.data) == 4:
            self.integration_us = struct.unpack("<I", request.data)[0]
            return obp.encode(obp.Message(request.type, b"", reply | obp.Flag.ACK))
        if request.type == T.GET_RAW_SPECTRUM:
            return self._spectrum_message(dark=False)
        return obp.encode(obp.Message(request.type, b"", reply | obp.Flag.NACK, error=1))
