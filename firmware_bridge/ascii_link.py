"""The host side of hobby micro-spectrometer sketches that print one line of counts per spectrum (the codec is
``ascii_lines.py``): no handshake, the first whole line is the answer."""

from __future__ import annotations

import time

from firmware_bridge.ascii_lines import AsciiLineDecoder
from firmware_bridge.link import DeviceInfo, Link, LinkError, RawFrame
from firmware_bridge.profiles import DeviceProfile


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
