"""Wire protocols: round trips, resynchronisation, rejections counted, and fuzzing."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import framing, obp
from firmware_bridge.ascii_lines import AsciiLineDecoder, encode_ascii_line

COUNTS = np.arange(2048, dtype=np.uint16) * 7 % 65535


def spectrum_frame(counter: int, counts=COUNTS, flags=framing.Flags.NONE) -> bytes:
    payload = framing.SpectrumFrame(counter, 123456, 100_000, flags, counts).encode()
    return framing.encode_frame(framing.MessageType.SPECTRUM, counter, payload)


def test_frame_round_trip_in_any_chunking():
    stream = b"".join(spectrum_frame(i) for i in range(5))
    decoder = framing.FrameDecoder()
    frames = []
    for i in range(0, len(stream), 37):
        frames += decoder.feed(stream[i : i + 37])
    assert [f.sequence for f in frames] == list(range(5))
    s = framing.SpectrumFrame.decode(frames[3].payload)
    assert s.counter == 3 and s.integration_us == 100_000 and s.device_time_us == 123456
    np.testing.assert_array_equal(s.counts, COUNTS)
    assert decoder.frames_ok == 5 and decoder.rejected_total == 0 and decoder.bytes_discarded == 0


def test_uint32_counts_and_flags():
    counts = np.array([0, 1, 2**20, 2**32 - 1] * 4, dtype=np.uint32)
    (frame,) = framing.FrameDecoder().feed(spectrum_frame(1, counts, framing.Flags.SATURATED | framing.Flags.DARK))
    s = framing.SpectrumFrame.decode(frame.payload)
    assert s.flags == framing.Flags.SATURATED | framing.Flags.DARK and s.counts.dtype == np.uint32
    np.testing.assert_array_equal(s.counts, counts)


def test_resync_after_garbage_bad_crc_truncation_and_impossible_length():
    good = [spectrum_frame(i) for i in range(6)]
    flipped = bytearray(good[1])
    flipped[100] ^= 0x10
    impossible = framing.SYNC + framing.HEADER.pack(1, 0x84, 9, framing.MAX_PAYLOAD + 1)
    stream = b"\x00junk\xa5\x5a" + good[0] + bytes(flipped) + good[2][:500] + good[3] + impossible + good[4] + b"\xff" * 50 + good[5]
    decoder = framing.FrameDecoder()
    frames = decoder.feed(stream)
    assert [f.sequence for f in frames] == [0, 3, 4, 5]
    assert decoder.rejected == {"bad crc": 2, "impossible length": 1}


def test_unknown_version_is_rejected_and_counted():
    frame = bytearray(spectrum_frame(1))
    frame[4] = 2
    decoder = framing.FrameDecoder()
    assert decoder.feed(bytes(frame) + spectrum_frame(2))[0].sequence == 2
    assert decoder.rejected["unknown version"] == 1


def test_identity_and_calibration_payloads():
    identity = framing.Identity("Raman-785", "SN42", "fw 1.2", 2048)
    assert framing.Identity.decode(identity.encode()) == identity
    calibration = framing.Calibration(785.0, (780.0, 0.0785, -2.5e-6, 0.0))
    assert framing.Calibration.decode(calibration.encode()) == calibration
    with pytest.raises(framing.PayloadError):
        framing.Calibration.decode(calibration.encode()[:-3])
    with pytest.raises(framing.PayloadError, match="do not fill"):
        framing.SpectrumFrame.decode(framing.SpectrumFrame(1, 0, 0, framing.Flags.NONE, COUNTS).encode()[:-2])


@settings(max_examples=300, deadline=None)
@given(noise=st.binary(max_size=3000), cut=st.integers(0, 5000), chunk=st.integers(1, 700))
def test_frame_decoder_fuzz(noise, cut, chunk):
    """Arbitrary bytes around real frames: never an exception, never a corrupt frame, the last frame always found."""
    good = spectrum_frame(7, COUNTS[:64])
    stream = noise[: cut % (len(noise) + 1)] + good + noise[cut % (len(noise) + 1) :] + good
    decoder = framing.FrameDecoder()
    frames = []
    for i in range(0, len(stream), chunk):
        frames += decoder.feed(stream[i : i + chunk])
    assert frames and frames[-1].payload == framing.FrameDecoder().feed(good)[0].payload
    for f in frames:
        if f.type == framing.MessageType.SPECTRUM and f.sequence == 7:
            np.testing.assert_array_equal(framing.SpectrumFrame.decode(f.payload).counts, COUNTS[:64])


def test_ascii_lines_validate_count_and_range():
    decoder = AsciiLineDecoder(pixels=288, max_count=1023)
    counts = np.arange(288) % 1000
    good = encode_ascii_line(counts)
    assert good.endswith(b",\n") and not good.endswith(b"\r\n") and good.count(b",") == 288  # LF alone, as the GroupGets sketch
    extra = encode_ascii_line(np.r_[counts, 5, 6])  # the sketch that reads past its array
    stream = good + b"\r\n" + extra + encode_ascii_line(counts[:100]) + good.replace(b",287,", b",1287,") + good.replace(b"5,", b"x,", 1) + good
    spectra = decoder.feed(stream[:400]) + decoder.feed(stream[400:])
    assert len(spectra) == 2 and all(np.array_equal(s, counts) for s in spectra)
    assert decoder.rejected == {"field count above 288": 1, "field count below 288": 1, "value out of range": 1, "not an integer": 1}
    space_separated = AsciiLineDecoder(pixels=4).feed(b"1 2 3 4\n")
    assert np.array_equal(space_separated[0], [1, 2, 3, 4])


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=2000))
def test_ascii_decoder_fuzz(noise):
    decoder = AsciiLineDecoder(pixels=16, max_count=4095)
    spectra = decoder.feed(noise + b"\n" + encode_ascii_line(np.arange(16)))
    assert np.array_equal(spectra[-1], np.arange(16))
    assert all(s.size == 16 and s.max() <= 4095 for s in spectra)


def test_obp_layout_and_round_trip():
    message = obp.Message(obp.MessageType.GET_RAW_SPECTRUM, COUNTS[:1024].astype("<u2").tobytes(), obp.Flag.RESPONSE)
    wire = obp.encode(message, md5=True)
    assert wire[:2] == b"\xc1\xc0" and wire[-4:] == b"\xc5\xc4\xc3\xc2"
    assert struct.unpack_from("<H", wire, 2)[0] == 0x1100
    assert struct.unpack_from("<I", wire, 40)[0] == 2048 + 20  # bytes remaining = payload + checksum + footer
    assert len(wire) == 44 + 2048 + 20
    small = obp.encode(obp.Message(obp.MessageType.PIXEL_COUNT, struct.pack("<I", 1024)))
    assert len(small) == 64 and small[23] == 4  # minimum size; 4 bytes of immediate data
    decoder = obp.OBPDecoder()
    out = decoder.feed(b"\x01\xc1" + wire + small)
    assert out[0].data == message.data and out[0].flags == obp.Flag.RESPONSE
    assert int.from_bytes(out[1].data, "little") == 1024


def test_obp_rejects_bad_md5_and_footer():
    wire = bytearray(obp.encode(obp.Message(obp.MessageType.SERIAL_NUMBER, b"STS12345"), md5=True))
    bad_md5 = bytearray(wire)
    bad_md5[30] ^= 1
    bad_footer = bytearray(wire)
    bad_footer[-1] = 0
    decoder = obp.OBPDecoder()
    out = decoder.feed(bytes(bad_md5) + bytes(bad_footer) + bytes(wire))
    assert [m.data for m in out] == [b"STS12345"]
    assert decoder.rejected == {"bad checksum": 1, "bad footer": 1}


@settings(max_examples=200, deadline=None)
@given(noise=st.binary(max_size=2000))
def test_obp_decoder_fuzz(noise):
    wire = obp.encode(obp.Message(obp.MessageType.SERIAL_NUMBER, b"STS1"), md5=True)
    out = obp.OBPDecoder().feed(noise + wire)
    assert out and out[-1].data == b"STS1"
