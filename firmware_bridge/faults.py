"""Faults a serial line and a flaky USB adapter put on the wire, injected by the emulator.

Each spectrum sent may get one fault, drawn with its probability: a stall before it, garbage
bytes before it, one flipped bit in it, or a cut-off end. Unplugging is the pty host's to do
(the port vanishes and comes back under the same path); its period lives here too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


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

    def inject(self, data: bytes, rng: np.random.Generator, stop: threading.Event) -> tuple[bytes, str]:
        """``data`` as it reaches the wire, and the name of the fault applied ("" for none)."""
        if self.stall and rng.random() < self.stall:
            stop.wait(self.stall_s)
            return data, "stall"
        if self.garbage and rng.random() < self.garbage:
            return rng.bytes(int(rng.integers(1, 200))) + data, "garbage"
        if self.bitflip and rng.random() < self.bitflip:
            flipped = bytearray(data)
            i = int(rng.integers(0, len(flipped)))
            flipped[i] ^= 1 << int(rng.integers(0, 8))
            return bytes(flipped), "bitflip"
        if self.truncate and rng.random() < self.truncate:
            return data[: int(rng.integers(1, len(data)))], "truncate"
        return data, ""
