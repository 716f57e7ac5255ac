"""The C99 encoder (firmware side) against the Python decoder: shared test vectors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import framing

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware"


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> list[str]:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler on this machine")
    exe = tmp_path_factory.mktemp("c") / "test_vectors"
    subprocess.run(
        [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-o", str(exe),
         str(FIRMWARE / "test_vectors.c"), str(FIRMWARE / "ramanedge_frame.c")],
        check=True, capture_output=True, text=True,
    )
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()


def test_c_frames_decode_in_python_and_match_its_encoder(vectors):
    wire = [bytes.fromhex(line) for line in vectors[:5]]
    decoder = framing.FrameDecoder()
    frames = decoder.feed(b"".join(wire))
    assert len(frames) == 5 and decoder.rejected_total == 0
    counts = (np.arange(2048) * 7 % 65535).astype(np.uint16)

    big = framing.SpectrumFrame.decode(frames[0].payload)
    assert (big.counter, big.device_time_us, big.integration_us, big.flags) == (42, 123456789, 100_000, framing.Flags.SATURATED)
    np.testing.assert_array_equal(big.counts, counts)
    expected = framing.encode_frame(framing.MessageType.SPECTRUM, 1, framing.SpectrumFrame(42, 123456789, 100_000, framing.Flags.SATURATED, counts).encode())
    assert wire[0] == expected  # byte for byte, CRC included

    small = framing.SpectrumFrame.decode(frames[1].payload)
    assert small.flags == framing.Flags.DARK and small.counts.size == 16
    assert framing.Identity.decode(frames[2].payload) == framing.Identity("Raman-785", "SN0042", "fw 1.0", 2048)
    assert framing.Calibration.decode(frames[3].payload) == framing.Calibration(785.0, (780.0, 0.0785, -2.5e-6, 0.0))
    assert (frames[4].type, frames[4].sequence, frames[4].payload) == (framing.MessageType.ACK, 65535, b"")


def test_c_encoder_refuses_oversized_payloads_and_small_buffers(vectors):
    assert vectors[5] == "0 0"
