"""A ``listen`` capture file: one raw frame in Raman shift, written by ``--save-spectra`` and read back by
``classify`` and ``library add`` (which clean it as raw counts). The header's one home.

The file: two ``# key=value ...`` lines (:meth:`CaptureHeader.lines`), a column title, then ``shift, counts``
rows; :func:`edge.spectrum_files.parse_spectrum_text` puts the ``#`` lines' keys into the spectrum's header,
from which :meth:`CaptureHeader.from_header` reads them back, typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CaptureHeader:
    """What a capture says of its frame: the device, the frame counter, when, the laser (nm), the
    integration time (µs), whether the detector saturated, whether a dark frame was subtracted."""

    device: str
    serial: str
    seq: int
    time: str
    laser_nm: float
    integration_us: int
    saturated: bool
    dark_subtracted: bool

    def lines(self) -> list[str]:
        """The header lines, without their leading ``# `` (values hold no spaces)."""
        return [
            f"device={self.device.replace(' ', '_')} serial={self.serial} seq={self.seq} time={self.time}",
            f"laser_nm={self.laser_nm} integration_us={self.integration_us} saturated={self.saturated} dark_subtracted={self.dark_subtracted}",
        ]

    @classmethod
    def from_header(cls, header: Mapping[str, str]) -> CaptureHeader | None:
        """The capture header of a parsed file's header (upper-case keys), or None if the file is no capture."""
        if "DARK_SUBTRACTED" not in header or "INTEGRATION_US" not in header:
            return None
        try:
            return cls(
                device=header.get("DEVICE", "?"),
                serial=header.get("SERIAL", "?"),
                seq=int(header.get("SEQ", "0")),
                time=header.get("TIME", ""),
                laser_nm=float(header.get("LASER_NM", "nan")),
                integration_us=int(header["INTEGRATION_US"]),
                saturated=header.get("SATURATED") == "True",
                dark_subtracted=header["DARK_SUBTRACTED"] == "True",
            )
        except ValueError:
            return None


def saturated(header: Mapping[str, str]) -> bool:
    """Whether a file says its detector saturated (a capture's header; other files say nothing)."""
    capture = CaptureHeader.from_header(header)
    return capture is not None and capture.saturated
