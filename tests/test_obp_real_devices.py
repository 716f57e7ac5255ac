"""The OBP host against what real STS units do (independent implementations' facts), and byte-exact messages."""

from __future__ import annotations

import struct
import time

import pytest

from edge.bundle import load_bundle
from edge.identifier import Identifier
from edge.listen import Listener
from firmware_bridge import obp
from firmware_bridge.emulator import Emulator, ObpBehaviour
from firmware_bridge.link import LinkError
from firmware_bridge.obp_link import OBPLink
from firmware_bridge.profiles import load_profile
from ramancore.preprocessing import GRID


def test_set_baud_is_byte_exact_with_the_sts_micro_library_layout():
    """C1 C0, version 0x1000, flags 0, type 0x00000810, 4 immediate bytes (115200 LE), 20 remaining, no checksum, footer."""
    expected = (
        bytes([0xC1, 0xC0, 0x00, 0x10, 0, 0, 0, 0, 0x10, 0x08, 0x00, 0x00]) + bytes(10)
        + bytes([0, 4]) + struct.pack("<I", 115200) + bytes(12) + bytes([20, 0, 0, 0]) + bytes(16) + bytes([0xC5, 0xC4, 0xC3, 0xC2])
    )
    got = obp.encode(obp.Message(obp.MessageType.SET_BAUD, struct.pack("<I", 115200), 0), version=0x1000)
    assert got == expected and len(got) == 64


def test_a_query_carries_no_ack_request_as_in_python_seabreeze():
    """python-seabreeze's query() sends request_ack=False: flags 0; version 0x1100; GET_RAW_SPECTRUM_NOW = 0x00101100."""
    expected = (
        bytes([0xC1, 0xC0, 0x00, 0x11, 0, 0, 0, 0, 0x00, 0x11, 0x10, 0x00]) + bytes(10)
        + bytes([0, 0]) + bytes(16) + bytes([20, 0, 0, 0]) + bytes(16) + bytes([0xC5, 0xC4, 0xC3, 0xC2])
    )
    assert obp.encode(obp.Message(obp.MessageType.GET_RAW_SPECTRUM)) == expected

    class Recorder:
        baudrate = 9600

        def __init__(self):
            self.sent = []

        def write(self, data):
            self.sent.append(data)

        def read(self, n=1):
            return b""

        in_waiting = 0

    port = Recorder()
    link = OBPLink(port, load_profile("ocean-sts-785"))
    link.reply_margin_s = 0.0
    with pytest.raises(LinkError, match="no answer"):
        link._query(obp.MessageType.SERIAL_NUMBER)
    assert struct.unpack_from("<H", port.sent[0], 4)[0] == 0  # flags: no ACK requested on a get


def test_replies_of_either_version_are_accepted():
    for version in (0x1000, 0x1100):
        decoder = obp.OBPDecoder()
        (message,) = decoder.feed(obp.encode(obp.Message(obp.MessageType.SERIAL_NUMBER, b"S1", obp.Flag.RESPONSE), version=version))
        assert message.data == b"S1" and decoder.rejected_total == 0


def test_the_reply_timeout_follows_baud_and_integration():
    class Port:
        baudrate = 9600

    link = OBPLink(Port(), load_profile("ocean-sts-785"))
    spectrum_bytes = 64 + 2 * 1024  # 2112, as the STS Micro Library reads
    assert link.reply_timeout(spectrum_bytes) > 2112 * 10 / 9600  # 2.2 s on the wire at 9600
    Port.baudrate = 115200
    assert link.reply_timeout(spectrum_bytes, integration_us=2_000_000) > 2.0 > link.reply_timeout(spectrum_bytes)


def _listen_to(behaviour: ObpBehaviour, count: int = 3):
    bundle = load_bundle()
    emulator = Emulator(
        load_profile("ocean-sts-785"), bundle.demo_spectra()[:20], GRID, protocol="obp", seed=3, obp_behaviour=behaviour
    )
    port = emulator.start()
    listener = Listener(port, Identifier(bundle, num_threads=1), "obp", profile=None)
    records = []
    try:
        info = listener.connect()
        deadline = time.monotonic() + 30
        listener.run(lambda r, record: records.append(record), lambda: time.monotonic() > deadline, count)
        baud = listener.transport._port.baudrate
    finally:
        listener.close()
        emulator.stop()
    return info, records, baud


def test_a_real_sts_wakes_at_9600_nacks_the_pixel_count_and_acks_separately(edge_bundle):
    behaviour = ObpBehaviour(version=0x1000, nack_pixel_count=True, separate_ack=True, wake_baud=9600)
    info, records, baud = _listen_to(behaviour)
    assert baud == 115200  # switched with 0x00000810 and confirmed with 0x00000800
    assert any("pixel count not answered" in note for note in info.notes) and info.profile.pixels == 1024
    assert len(records) == 3 and any(r["top"] for r in records)  # spectra arrive whole and are classified


def test_a_device_that_refuses_the_baud_switch_is_used_at_9600(edge_bundle):
    info, records, baud = _listen_to(ObpBehaviour(wake_baud=9600, baud_switch=False), count=2)
    assert baud == 9600 and any("stayed at 9600 baud" in note for note in info.notes)
    assert len(records) == 2


def test_an_exception_flag_with_an_error_is_an_error():
    link = OBPLink(None, load_profile("ocean-sts-785"))
    with pytest.raises(LinkError, match=r"exception for OBP message 0x00000100 \(error 13\)"):
        link._check(0x100, obp.Message(0x100, b"", obp.Flag.RESPONSE | obp.Flag.EXCEPTION, error=13))
    assert link._check(0x100, obp.Message(0x100, b"x", obp.Flag.RESPONSE | obp.Flag.EXCEPTION, error=0)).data == b"x"
