"""A virtual Raman spectrometer on a pseudo-terminal: the host that carries a firmware's bytes.

The pseudo-terminal is the wire: what the host (``ramanedge listen``) writes reaches the
protocol's :class:`~firmware_bridge.emulated_firmware.Firmware`, whose replies, and the spectra it
streams, go back, each spectrum through :class:`~firmware_bridge.faults.Faults` (garbage, bit
flips, truncation, stalls). Unplugging closes the pseudo-terminal and opens a new one under the
same stable link path, as a USB adapter comes back as the same /dev/ttyUSB0. Writes can be paced
as a UART at ``baud`` would send them.
"""

from __future__ import annotations

import os
import select
import termios
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware_bridge.emulated_firmware import FIRMWARES, Firmware, ObpBehaviour, ObpFirmware, Played, SpectrumSource
from firmware_bridge.faults import Faults
from firmware_bridge.profiles import DeviceProfile

__all__ = ["Emulator", "Faults", "ObpBehaviour", "Played"]

#: termios speed constants of the rates a device may be switched to
BAUD_CONSTANTS = {rate: getattr(termios, f"B{rate}") for rate in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)}


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
    obp_behaviour: ObpBehaviour = field(default_factory=ObpBehaviour)  # how the OBP firmware departs from the polite default

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.source = SpectrumSource(self.profile, self.library, self.grid_cm1, self.rng, self.integration_us)
        if self.protocol == "obp":
            self.firmware: Firmware = ObpFirmware(self.source, self.serial, self.obp_behaviour)
        else:
            self.firmware = FIRMWARES[self.protocol](self.source, self.serial)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1

    @property
    def played(self) -> list[Played]:
        """Every spectrum sent, in order, with the fault it got."""
        return self.source.played

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

    # --- the host loop -----------------------------------------------------------------------

    def _run(self) -> None:
        next_frame = time.monotonic()
        # the unplug clock starts when the host first talks to the device (or it streams its first spectrum): a
        # listener still loading its model must find the port there, as a user's device is there when plugged in
        next_unplug: float | None = None
        while not self._stop.is_set():
            now = time.monotonic()
            if next_unplug is None and self.faults.unplug_every_s and (self.played or self.firmware.streaming):
                next_unplug = now + self.faults.unplug_every_s
            if next_unplug and now >= next_unplug:
                self._close_pty()
                if self._stop.wait(self.faults.unplugged_s):
                    return
                self._open_pty()
                self.firmware.replug()
                next_unplug = time.monotonic() + self.faults.unplug_every_s
            streaming = self.firmware.streaming
            timeout = max(0.0, min(next_frame - now, 0.05)) if streaming else 0.05
            readable, _, _ = select.select([self._master], [], [], timeout)
            if readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if data and not self._host_baud_matches():
                    data = b""  # at the wrong rate the device hears noise, and says nothing
                for reply, is_spectrum in self.firmware.handle(data) if data else []:
                    self._send(reply, may_fault=is_spectrum)
            if streaming and time.monotonic() >= next_frame:
                self._send(self.firmware.spectrum(), may_fault=True)
                next_frame += self.interval_s
                if next_frame < time.monotonic():
                    next_frame = time.monotonic() + self.interval_s

    def _host_baud_matches(self) -> bool:
        """Whether the host opened the port at the rate the firmware listens at (if it has one)."""
        wanted = getattr(self.firmware, "baud", 0)
        if not wanted:
            return True
        speed = termios.tcgetattr(self._slave)[5]  # the host's output speed, as pyserial set it
        return BAUD_CONSTANTS.get(wanted) == speed

    def _send(self, data: bytes, may_fault: bool = False) -> None:
        if may_fault:
            data, fault = self.faults.inject(data, self.rng, self._stop)
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
