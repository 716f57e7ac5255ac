"""What every incremental wire decoder keeps: its receive buffer and the counts of what it made of it."""

from __future__ import annotations

from collections import Counter


class CountingDecoder:
    """Base of the protocol decoders (pyserial's Packetizer idea: bytes in, messages out).

    Nothing is dropped without a count: whole messages decoded (``frames_ok``), refusals by
    reason (``rejected``), and bytes thrown away while resynchronising (``bytes_discarded``).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames_ok = 0
        self.rejected: Counter[str] = Counter()
        self.bytes_discarded = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def _discard(self, n: int) -> None:
        del self._buffer[:n]
        self.bytes_discarded += n

    def _reject(self, reason: str, n: int = 1) -> None:
        """Count a refusal and drop ``n`` bytes (1: past this sync word, to look for the next)."""
        self.rejected[reason] += 1
        self._discard(n)
