"""Spectra as ASCII lines: one spectrum per line of comma- or space-separated counts.

This is what hobby spectrometer sketches print (GroupGets' ``arduino_c12880ma_example.ino``:
115200 baud, 288 ``analogRead`` values (10-bit) each followed by a comma, then ``"\n"`` alone).
Such micro-spectrometers resolve about 10-15 nm, far too coarse for mineral Raman bands: this
protocol is a transport, not a Raman instrument, and the calibration comes from a device
profile. Lines are validated: the field count must be the profile's pixel count and every value
an integer within the detector's range (``max_count``: 1023 for a 10-bit ADC, 65535 for the
16-bit ADCs of some boards), so a value read from past the end of an array is caught. CR LF
and LF line ends are both accepted.
"""

from __future__ import annotations

import re

import numpy as np

from firmware_bridge.decoding import CountingDecoder

_FIELDS = re.compile(rb"[,\s]+")
#: No honest spectrum line is longer: 4096 values of 10 characters.
MAX_LINE = 48 * 1024


def encode_ascii_line(counts: np.ndarray) -> bytes:
    """The GroupGets C12880MA sketch's format: every value followed by a comma, then LF alone."""
    return b"".join(b"%d," % int(v) for v in counts) + b"\n"


class AsciiLineDecoder(CountingDecoder):
    """Incremental line decoder: ``feed(data)`` returns the valid spectra (uint32 arrays) completed."""

    def __init__(self, pixels: int, max_count: int = 65535) -> None:
        super().__init__()
        self.pixels = pixels
        self.max_count = max_count

    def feed(self, data: bytes) -> list[np.ndarray]:
        self._buffer += data
        spectra: list[np.ndarray] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self._reject("line too long", len(self._buffer))
                return spectra
            counts, problem = self._parse(bytes(self._buffer[:end]))
            if problem:
                self._reject(problem, end + 1)
                continue
            del self._buffer[: end + 1]
            if counts is not None:
                self.frames_ok += 1
                spectra.append(counts)

    def _parse(self, line: bytes) -> tuple[np.ndarray | None, str | None]:
        """(counts, None) for a good line, (None, None) for a blank one, (None, reason) otherwise."""
        fields = [f for f in _FIELDS.split(line.strip()) if f]
        if not fields:
            return None, None  # blank line: sketches print them between spectra
        if len(fields) != self.pixels:
            return None, f"field count {'above' if len(fields) > self.pixels else 'below'} {self.pixels}"
        try:
            values = np.array([int(f) for f in fields], dtype=np.int64)
        except ValueError:
            return None, "not an integer"
        if values.min() < 0 or values.max() > self.max_count:
            return None, "value out of range"
        return values.astype(np.uint32), None
