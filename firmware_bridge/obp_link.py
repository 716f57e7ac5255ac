"""The host side of the Ocean Binary Protocol (Ocean Insight STS; the codec is ``obp.py``): query the device,
then poll for raw spectra."""

from __future__ import annotations

import struct
import time

import numpy as np

from firmware_bridge import obp
from firmware_bridge.link import DeviceInfo, Link, LinkError, RawFrame
from firmware_bridge.profiles import DeviceProfile


class OBPLink(Link):
    """Ocean Binary Protocol: query the device, then poll raw spectra one request at a time.

    Each value below is set as the independent implementations do it (python-seabreeze's
    ``pyseabreeze/protocol.py``, the STS Micro Library for RS-232 by D. Bongiorno, Ocean's STS demo).
    """

    protocol = "obp"
    #: after SET_BAUD the STS Micro Library waits 1 s before reopening the port at the new rate
    baud_switch_wait_s = 1.0
    #: margin on every reply time (device latency, USB-serial adapters' buffering)
    reply_margin_s = 0.5
    query_reply_bytes = 64  # a message without payload

    def __init__(self, port, profile: DeviceProfile) -> None:
        super().__init__(port, profile)
        self.notes: list[str] = []  # what the handshake had to assume (said on connect)
        self.integration_us = 100_000
        self._pending = False
        self._asked = 0.0

    def _make_decoder(self):
        return obp.OBPDecoder()

    def _baud(self) -> int:
        return int(getattr(self.port, "baudrate", 0) or self.profile.baud)

    def reply_timeout(self, reply_bytes: int, integration_us: int = 0) -> float:
        """Seconds to wait for a reply: integration, the reply's bytes on the wire (10 bits each), a margin.

        At 9600 baud a 1024-pixel STS spectrum (2112 bytes) takes 2.2 s on the wire alone.
        """
        return integration_us / 1e6 + reply_bytes * 10 / self._baud() * 1.5 + self.reply_margin_s

    def _check(self, message_type: int, message: obp.Message) -> obp.Message:
        if message.flags & obp.Flag.NACK:
            raise LinkError(f"device refused OBP message 0x{message_type:08x} (error {message.error})")
        if message.flags & obp.Flag.EXCEPTION and message.error:  # as python-seabreeze treats FLAG_HW_EXCEPTION
            raise LinkError(f"device reported an exception for OBP message 0x{message_type:08x} (error {message.error})")
        return message

    def _await(self, message_type: int, timeout: float, want_data: bool) -> obp.Message:
        deadline = time.monotonic() + timeout
        while self._waiting(deadline):
            for message in self.decoder.feed(self._read_available()):
                if message.type != message_type:
                    continue
                bare_ack = bool(message.flags & obp.Flag.ACK) and not message.flags & obp.Flag.RESPONSE and not message.data
                if want_data and bare_ack:
                    continue  # a separate empty ACK is not the answer to a query
                return self._check(message_type, message)
        raise LinkError(f"no answer to OBP message 0x{message_type:08x} within {timeout:.1f} s")

    def _query(self, message_type: int, data: bytes = b"") -> obp.Message:
        """A get: flags 0, as every independent implementation sends queries (no ACK asked for)."""
        self.port.write(obp.encode(obp.Message(message_type, data, 0)))
        return self._await(message_type, self.reply_timeout(self.query_reply_bytes), want_data=True)

    def _command(self, message_type: int, data: bytes = b"") -> None:
        """A set: ACK requested, as python-seabreeze sends commands; a NACK is an error."""
        self.port.write(obp.encode(obp.Message(message_type, data, obp.Flag.ACK_REQUESTED)))
        self._await(message_type, self.reply_timeout(self.query_reply_bytes), want_data=False)

    def _switch_baud(self, target: int) -> None:
        """Ask the device for ``target`` baud, follow it, and check; stay at the old rate if it does not answer there."""
        old = self._baud()
        self.port.write(obp.encode(obp.Message(obp.MessageType.SET_BAUD, struct.pack("<I", target), 0)))
        self.port.flush()
        time.sleep(self.baud_switch_wait_s)
        self.port.baudrate = target
        self.port.reset_input_buffer()
        try:
            answer = int.from_bytes(self._query(obp.MessageType.GET_BAUD).data[:4], "little")
        except LinkError:
            answer = 0
        if answer != target:
            self.port.baudrate = old
            self.port.reset_input_buffer()
            self.notes.append(f"stayed at {old} baud: the device did not confirm {target}")

    def open(self) -> tuple[DeviceInfo, None]:
        T = obp.MessageType
        self.port.reset_input_buffer()
        self.decoder = self._make_decoder()
        try:
            reply = self._query(T.SERIAL_NUMBER)
        except LinkError:
            if not self.profile.switch_baud or self._baud() == self.profile.switch_baud:
                raise
            # still at the rate an earlier session switched it to (it keeps it until powered off)
            self.port.baudrate = self.profile.switch_baud
            self.port.reset_input_buffer()
            reply = self._query(T.SERIAL_NUMBER)
        serial = reply.data.rstrip(b"\x00").decode("ascii", errors="replace")
        if self.profile.switch_baud and self.profile.switch_baud != self._baud():
            self._switch_baud(self.profile.switch_baud)
        try:
            pixels = int.from_bytes(self._query(T.PIXEL_COUNT).data[:4], "little")
        except LinkError:  # no independent source shows an STS answering it
            pixels = self.profile.pixels
            self.notes.append(f"pixel count not answered: using the profile's {pixels}")
        n = self._query(T.WAVELENGTH_COEFFICIENT_COUNT).data[0]
        coefficients = tuple(struct.unpack("<f", self._query(T.WAVELENGTH_COEFFICIENT, bytes([i])).data[:4])[0] for i in range(n))
        self._command(T.SET_INTEGRATION_TIME_US, struct.pack("<I", self.integration_us))
        self.profile = self.profile.with_device(pixels=pixels, wavelength_coefficients=coefficients)
        self._pending = False
        return DeviceInfo(self.profile.name, serial, "OBP", self.profile, tuple(self.notes)), None

    def frames(self) -> list[RawFrame]:
        if not self._pending:
            self.port.write(obp.encode(obp.Message(obp.MessageType.GET_RAW_SPECTRUM)))
            self._pending, self._asked = True, time.monotonic()
        out = []
        for message in self.decoder.feed(self._read_available()):
            if message.type != obp.MessageType.GET_RAW_SPECTRUM:
                continue
            self._pending = False
            if len(message.data) != 2 * self.profile.pixels:
                self.decoder.rejected["wrong pixel count"] += 1
                continue
            counts = np.frombuffer(message.data, "<u2").astype(np.uint16)
            self._counter += 1
            out.append(RawFrame(counts, self._counter, self.integration_us, bool(counts.max() >= self.profile.max_count), False, time.monotonic()))
        timeout = self.reply_timeout(self.query_reply_bytes + 2 * self.profile.pixels, self.integration_us)
        if self._pending and time.monotonic() - self._asked > timeout:
            self.decoder.rejected["no reply"] += 1  # lost or mangled on the wire: ask again
            self._pending = False
        return out

    def close(self) -> None:
        pass
