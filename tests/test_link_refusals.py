"""Refusals on the wire and bad device profiles are errors, never ignored; the live bars grow with probability."""

from __future__ import annotations

import pytest

from firmware_bridge import framing, obp
from firmware_bridge.frame_link import FrameLink
from firmware_bridge.link import LinkError
from firmware_bridge.obp_link import OBPLink
from firmware_bridge.profiles import ProfileError, load_profile


class ScriptedPort:
    """A port that answers every write with a fixed reply (no serial device, no thread)."""

    def __init__(self, reply: bytes) -> None:
        self.reply, self.pending, self.written = reply, b"", []

    def write(self, data: bytes) -> int:
        self.written.append(data)
        self.pending += self.reply
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self.pending)

    def read(self, n: int = 1) -> bytes:
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def reset_input_buffer(self) -> None:
        self.pending = b""


def test_a_frame_error_reply_is_a_refusal():
    port = ScriptedPort(framing.encode_frame(framing.MessageType.ERROR, 0, b""))
    link = FrameLink(port, load_profile("emulator-785"))
    with pytest.raises(LinkError, match="device refused command"):
        link._request(framing.MessageType.IDENTIFY, expect=framing.MessageType.IDENTITY, timeout=0.5)


def test_an_obp_nack_is_a_refusal():
    nack = obp.encode(obp.Message(obp.MessageType.SERIAL_NUMBER, b"", obp.Flag.RESPONSE | obp.Flag.NACK, error=4))
    link = OBPLink(ScriptedPort(nack), load_profile("ocean-sts-785"))
    link.reply_margin_s = 0.3
    with pytest.raises(LinkError, match="refused OBP message 0x00000100 .error 4"):
        link._query(obp.MessageType.SERIAL_NUMBER)


GOOD = """
name = "test"
protocol = "frame"
baud = 115200
pixels = 2048
wavelength_coefficients = [785.0, 0.05]
laser_nm = 785.0
usable_pixels = [10, 2000]
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("frame", "smoke"), "protocol 'smoke' is not one of"),
        (("[10, 2000]", "[10, 4000]"), "usable_pixels"),
        (("[785.0, 0.05]", "[785.0, -0.05]"), "not increasing"),
        (("baud = 115200", "baud = 'fast'"), "missing or invalid field"),
        (("laser_nm = 785.0", ""), "missing or invalid field"),
    ],
)
def test_bad_profiles_are_refused(tmp_path, change, message):
    path = tmp_path / "p.toml"
    path.write_text(GOOD)
    assert load_profile(path).pixels == 2048  # the unchanged profile is fine
    path.write_text(GOOD.replace(*change))
    with pytest.raises(ProfileError, match=message):
        load_profile(path)


def test_probability_bars_grow_with_probability():
    from edge.live_view import bar

    assert bar(0.0, 10) == "░" * 10 and bar(1.0, 10) == "█" * 10
    assert bar(0.7, 10).count("█") == 7 and bar(0.2, 10).count("█") == 2
