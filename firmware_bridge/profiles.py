"""Device profiles (TOML): what the host must know of a spectrometer the wire does not tell it.

Where the protocol can say it (identity, pixel count, wavelength coefficients), the device's
own answer wins; the profile fills the rest (laser line for OBP, everything for ASCII sketches)
and ``--profile`` on the command line overrides both.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ramancore.physics import wavelengths_nm

PROFILES = Path(__file__).resolve().parent / "profiles"
PROTOCOLS = ("frame", "ascii", "obp")
DARK_MODES = ("frame", "none")
#: The bundled profile used for each protocol when none is given.
DEFAULT_PROFILES = {"frame": "emulator-785", "obp": "ocean-sts-785", "ascii": "c12880ma-ascii"}


class ProfileError(ValueError):
    """A profile that cannot be used; one line naming the file."""


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    protocol: str
    baud: int
    pixels: int
    wavelength_coefficients: tuple[float, ...]
    laser_nm: float
    usable_pixels: tuple[int, int]
    dark: str = "frame"
    max_count: int = 65535
    #: a device that wakes at ``baud`` and can be switched faster (Ocean's STS: 9600 -> this); 0: stay
    switch_baud: int = 0
    #: ASCII sketches that print a line only when asked: the command to send (e.g. "SPEC.READ?"); "" streams
    query: str = ""
    #: optical resolution (FWHM, nm) where the maker states it; 0: unknown (two pixels are assumed)
    resolution_nm: float = 0.0

    def resolution_cm1(self) -> float:
        """Spectral resolution in Raman shift (cm^-1, at the middle of the usable pixels): the stated
        optical resolution, else two pixels (the finest any detector resolves)."""
        wavelengths = self.wavelengths_nm()
        lo, hi = self.usable_pixels
        middle = float(wavelengths[(lo + hi) // 2])
        width_nm = self.resolution_nm or 2.0 * float(np.median(np.diff(wavelengths[lo : hi + 1])))
        return 1e7 * width_nm / middle**2  # d(1e7 / lambda) = 1e7 d lambda / lambda^2

    def wavelengths_nm(self, pixels: int | None = None) -> np.ndarray:
        """Wavelength (nm) of pixels 0, 1, ... (``pixels``, default all) from the calibration polynomial c0 + c1 p + c2 p^2 + ..."""
        return wavelengths_nm(self.wavelength_coefficients, pixels or self.pixels)

    def with_device(self, **known) -> DeviceProfile:
        """This profile with what the device itself reported."""
        return replace(self, **{k: v for k, v in known.items() if v is not None})


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """A profile by file path or by the name of a bundled one (``emulator-785``)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PROFILES.glob("*.toml")))
        raise ProfileError(f"{path}: no such profile (bundled: {known})") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: not a readable TOML profile ({exc})") from None
    try:
        profile = DeviceProfile(
            name=str(data["name"]),
            protocol=str(data["protocol"]),
            baud=int(data["baud"]),
            pixels=int(data["pixels"]),
            wavelength_coefficients=tuple(float(c) for c in data["wavelength_coefficients"]),
            laser_nm=float(data["laser_nm"]),
            usable_pixels=(int(data["usable_pixels"][0]), int(data["usable_pixels"][1])),
            dark=str(data.get("dark", "frame")),
            max_count=int(data.get("max_count", 65535)),
            switch_baud=int(data.get("switch_baud", 0)),
            query=str(data.get("query", "")),
            resolution_nm=float(data.get("resolution_nm", 0.0)),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ProfileError(f"{path}: missing or invalid field ({exc})") from None
    if profile.protocol not in PROTOCOLS:
        raise ProfileError(f"{path}: protocol {profile.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if profile.dark not in DARK_MODES:
        raise ProfileError(f"{path}: dark {profile.dark!r} is not one of {', '.join(DARK_MODES)}")
    lo, hi = profile.usable_pixels
    if not 0 <= lo < hi < profile.pixels:
        raise ProfileError(f"{path}: usable_pixels {profile.usable_pixels} outside 0..{profile.pixels - 1}")
    if np.any(np.diff(profile.wavelengths_nm()) <= 0):
        raise ProfileError(f"{path}: wavelength polynomial is not increasing over the detector")
    return profile
