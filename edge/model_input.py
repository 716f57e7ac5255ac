"""Spectrum files into model inputs, as the device reads them: the file, what it says of itself, the raw path.

:func:`read_model_input` reads a file (:mod:`edge.spectrum_files`), recognises one that holds raw counts (a RRUFF
RAW file by its name, a ``listen`` capture by its header) and cleans it on the one raw pipeline
(:data:`ramancore.raw_pipeline.RAW_PIPELINE`), converts a file in wavelength with the laser line given, and
returns a typed :class:`ModelInput`. ``classify``, ``check``, ``library add`` and the demo's file list read through it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edge.capture import CaptureHeader
from edge.spectrum_files import Spectrum, SpectrumFileError, read_spectrum_file
from ramancore.physics import raman_shift_cm1
from ramancore.preprocessing import PreprocessingError
from ramancore.raw_pipeline import RAW_PIPELINE


def raw_counts_reason(spectrum: Spectrum) -> str | None:
    """Why a file holds uncorrected counts, from what it says of itself (None: nothing says so): a
    RRUFF RAW file by its name, a ``listen`` capture by its ``# ... dark_subtracted=...`` header."""
    if spectrum.kind == "raw":
        return "a RRUFF RAW file (Raman_Data_RAW in its name)"
    if CaptureHeader.from_header(spectrum.header) is not None:
        return "a `listen` capture (raw counts)"
    return None


@dataclass(frozen=True)
class ModelInput:
    """A spectrum file read for classification: the file as read, ``y`` its intensities as classified
    (cleaned when raw), ``vector`` its model input (GRID_SIZE,), and why it was cleaned as raw counts
    without ``--raw`` (None: it was not, or ``--raw`` said so)."""

    spectrum: Spectrum
    y: np.ndarray
    vector: np.ndarray
    recognised_raw: str | None = None

    @property
    def cleaned_note(self) -> str | None:
        """The line to tell the user when the file was cleaned as raw counts without ``--raw``."""
        if self.recognised_raw is None:
            return None
        return f"{self.spectrum.source}: {self.recognised_raw}: cleaned as raw counts (spikes and baseline removed), as --raw does"


def read_model_input(path: Path, raw: bool = False, laser_nm: float | None = None) -> ModelInput:
    """A spectrum file, its intensities as classified (cleaned if raw) and its model input.

    ``raw``: the file holds uncorrected counts in Raman shift (a RRUFF RAW file, a `listen`
    capture). A file that says it holds them (:func:`raw_counts_reason`) is cleaned too, and the
    record says why, so that a caller tells the user. Raises :class:`SpectrumFileError` (one line
    naming the file) for anything unusable. A file whose x axis says it is wavelength (nm) is
    converted to Raman shift with ``laser_nm``, and refused without it: never read as Raman shift.
    """
    spectrum = read_spectrum_file(path)
    if spectrum.x_unit == "nm":
        if laser_nm is None:
            raise SpectrumFileError(str(path), "x is wavelength (nm), not Raman shift; give --laser NM (the excitation line) to convert it")
        stokes = spectrum.x > laser_nm
        if stokes.sum() < 2:
            raise SpectrumFileError(str(path), f"no wavelength above the {laser_nm:g} nm laser line: no Raman (Stokes) shift to read")
        spectrum = replace(spectrum, x=raman_shift_cm1(spectrum.x[stokes], laser_nm), y=spectrum.y[stokes], x_unit="cm-1")
    recognised = None if raw else raw_counts_reason(spectrum)
    try:
        y, vector = RAW_PIPELINE.model_input(spectrum.x, spectrum.y, raw or recognised is not None)
    except PreprocessingError as exc:
        raise SpectrumFileError(str(path), str(exc)) from None
    return ModelInput(spectrum, y, vector, recognised)
