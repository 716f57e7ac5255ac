"""The host side of a spectrometer link: what every protocol's link is and gives.

One module per protocol holds its link, beside its I/O-free codec: ``frame_link.py`` (``framing.py``),
``ascii_link.py`` (``ascii_lines.py``), ``obp_link.py`` (``obp.py``); ``transport.LINKS`` names them.
A link wraps an open port (anything with pyserial's ``read``/``write``/``timeout``) and a
device profile. ``open()`` performs the protocol's handshake and returns what the device said
of itself (falling back to the profile); ``frames()`` returns the raw frames received since
the last call, and the decoder's counters say what was rejected on the way.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
