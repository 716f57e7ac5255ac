"""The host side of ramanedge's framed protocol (docs/protocol.md; the codec is ``framing.py``): identify,
calibration, a dark frame, then streaming."""

from __future__ import annotations

import time

import numpy as np

from firmware_bridge import framing
from firmware_bridge.link import DeviceInfo, Link, LinkError, RawFrame


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
