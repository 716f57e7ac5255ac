"""The serial side of a session: open the port, find the protocol, read frames, come back after an unplug.

python-seabreeze keeps transport and protocol apart and passes the one into the other; here a
:class:`Transport` owns the port and hands it to a :class:`~firmware_bridge.link.Link` (frame,
ASCII or OBP), which owns the protocol. The Link's decoders stay I/O-free; the only errors the
transport catches while reading are the port's own (``SerialException``, ``OSError``), which mean
the device is gone, never a bug in a decoder.

    transport.connect()        open, handshake (``auto``: frame, then OBP, then ASCII)
    transport.frames()         whole frames since the last call; DeviceLost if the port failed
    transport.reconnect(stop)  wait for the device to come back, then handshake again
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import serial

from firmware_bridge.ascii_link import AsciiLink
from firmware_bridge.frame_link import FrameLink
from firmware_bridge.link import DeviceInfo, Link, LinkError, RawFrame
from firmware_bridge.obp_link import OBPLink
from firmware_bridge.profiles import DEFAULT_PROFILES, DeviceProfile, load_profile

#: Each protocol's link class, by the name ``--protocol`` and the profiles use.
LINKS: dict[str, Callable[[Any, DeviceProfile], Link]] = {"frame": FrameLink, "ascii": AsciiLink, "obp": OBPLink}
#: The order ``auto`` tries: the two with a handshake first, ASCII (which only listens) last.
AUTO_ORDER = ("frame", "obp", "ascii")
DEFAULT_BAUD = 921600


class PortError(RuntimeError):
    """The port cannot be opened; one line naming it and what to do."""


class DeviceLost(RuntimeError):
    """The port failed while reading (unplugged, powered off)."""


def open_port(port: str, baud: int) -> serial.Serial:
    """Open a serial port, or a :class:`PortError` saying what to do about it."""
    try:
        return serial.Serial(port, baudrate=baud, timeout=0.05, write_timeout=1.0)
    except serial.SerialException as exc:
        code = getattr(exc, "errno", None)
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in str(exc):
            raise PortError(
                f"{port}: permission denied (add yourself to the dialout group: sudo usermod -aG dialout $USER, then log in again)"
            ) from None
        if code == errno.ENOENT or not Path(port).exists():
            raise PortError(f"{port}: no such port (is the spectrometer plugged in? `ls /dev/ttyUSB* /dev/ttyACM*`)") from None
        raise PortError(f"{port}: cannot open ({exc})") from None


class Transport:
    """One serial port and the protocol found on it, across reconnects."""

    def __init__(
        self,
        port: str,
        protocol: str = "auto",
        baud: int | None = None,
        profile: DeviceProfile | None = None,
        on_status: Callable[[str], None] = lambda status: None,
    ) -> None:
        self.port_name = port
        self.protocol = protocol if protocol != "auto" else (profile.protocol if profile else "auto")
        self.profile = profile
        self.user_baud = baud  # --baud: overrides every profile's
        self.baud = baud or (profile.baud if profile else DEFAULT_BAUD)
        self.on_status = on_status
        self.link: Link | None = None
        self.device: DeviceInfo | None = None
        self.dark: np.ndarray | None = None
        self.reconnects = 0
        self._port: serial.Serial | None = None
        self._past_ok = self._past_rejected = 0  # frames of earlier connections (before an unplug)

    def connect(self, should_stop: Callable[[], bool] = lambda: False) -> DeviceInfo:
        """Open the port and run the handshake, trying protocols in turn for ``auto``; ``should_stop``
        ends the handshake's waits at once (a :class:`LinkError` saying so)."""
        port = self._port = open_port(self.port_name, self.baud)
        candidates = [self.protocol] if self.protocol != "auto" else list(AUTO_ORDER)
        last_error: Exception | None = None
        for protocol in candidates:
            if should_stop():
                break
            profile = self.profile if self.profile and self.profile.protocol == protocol else load_profile(DEFAULT_PROFILES[protocol])
            port.baudrate = self.user_baud or profile.baud  # each protocol's devices wake at their own rate
            link = LINKS[protocol](port, profile)
            link.should_stop = should_stop
            try:
                info, dark = link.open()
            except LinkError as exc:
                last_error = exc
                continue
            except (serial.SerialException, OSError) as exc:  # unplugged during the handshake
                port.close()
                raise LinkError(f"{self.port_name}: lost during the {protocol} handshake ({exc})") from None
            if self.profile and self.profile.protocol == protocol:
                # a profile given by the user overrides what the device says of itself
                if self.profile.pixels != link.profile.pixels:
                    port.close()
                    raise LinkError(
                        f"{self.port_name}: profile {self.profile.name!r} has {self.profile.pixels} pixels, the device {link.profile.pixels}"
                    )
                link.profile = self.profile
                info = replace(info, profile=self.profile)
            self.link, self.protocol, self.device, self.dark = link, protocol, info, dark
            self.on_status("listening")
            return info
        port.close()
        if should_stop():
            raise LinkError(f"{self.port_name}: stopped during the handshake")
        if len(candidates) > 1:
            raise LinkError(
                f"{self.port_name}: no device answering (tried {', '.join(candidates)}; last: {last_error}): "
                "check the cable, --baud and --protocol"
            )
        raise LinkError(f"{self.port_name}: {last_error}")

    def connect_retrying(self, should_stop: Callable[[], bool], say: Callable[[str], None], every_s: float = 1.0) -> DeviceInfo | None:
        """:meth:`connect`, retried while the port opens but no device answers on it; None if told to stop first.

        A port that cannot be opened at all (missing, no permission) is a :class:`PortError` at once:
        retrying would not fix it. ``say`` hears the state once, when nothing answers.
        """
        told = False
        while not should_stop():
            try:
                return self.connect(should_stop)
            except LinkError as exc:
                if should_stop():
                    break
                self.on_status(f"no device answering on {self.port_name}: check cable, baud, protocol")
                if not told:
                    say(f"{exc}; retrying every {every_s:g} s (Ctrl-C to stop)")
                    told = True
            _wait(every_s, should_stop)
        return None

    def frames(self) -> list[RawFrame]:
        """Whole frames received since the last call; :class:`DeviceLost` if the port failed."""
        if self.link is None:
            raise DeviceLost(f"{self.port_name}: not connected")
        try:
            return self.link.frames()
        except (serial.SerialException, OSError) as exc:
            raise DeviceLost(f"{self.port_name}: {exc}") from None

    def reconnect(self, should_stop: Callable[[], bool]) -> bool:
        """Wait for an unplugged device to come back and handshake again; False if told to stop first."""
        self.on_status("device disconnected: waiting for it to come back")
        self.reconnects += 1
        self._past_ok, self._past_rejected = self.frame_counts()
        try:
            if self._port:
                self._port.close()
        except OSError:
            pass
        self.link = None
        while not should_stop():
            try:
                self.connect(should_stop)
                return True
            except (PortError, LinkError, serial.SerialException, OSError):
                _wait(0.3, should_stop)
        return False

    def frame_counts(self) -> tuple[int, int]:
        """Frames decoded ok / rejected so far, over every connection."""
        link = self.link
        return self._past_ok + (link.frames_ok if link else 0), self._past_rejected + (link.rejected if link else 0)

    def close(self) -> None:
        if self.link:
            self.link.close()
        if self._port:
            self._port.close()


def _wait(seconds: float, should_stop: Callable[[], bool]) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until and not should_stop():
        time.sleep(0.05)
