"""Readers for spectrum text files: RRUFF's own format and plain two-column CSV/TXT.

RRUFF files carry ``##KEY=value`` header lines (``##NAMES=``, ``##RRUFFID=``, ...), then ``x, y``
rows, CRLF line ends, ``##END=`` and blank lines. Plain files are two columns separated by
commas, semicolons, tabs or spaces, optionally under one column-title line. Everything that is
not a usable spectrum raises :class:`SpectrumFileError`, whose text is one line naming the
file and the problem, so callers can report it, count it and move on.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Fewer points than this cannot hold a Raman band shape worth classifying.
MIN_POINTS = 10

_FIELD_SPLIT = re.compile(r"[,;\s]+")
_COLUMN_SEPARATORS = re.compile(r"[,;\t ]+")  # within a line: the newlines between rows stay
_SPECIMEN = re.compile(r"^[A-Za-z]+\d+")
_LASER = re.compile(r"^\d+(\.\d+)?$")


class SpectrumFileError(ValueError):
    """A file that is not a usable spectrum; ``str()`` is one line: ``source: problem``."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


@dataclass(frozen=True)
class Spectrum:
    """One measured spectrum as it stands in its file, with what the file says about it."""

    x: np.ndarray  # Raman shift, cm^-1, in file order
    y: np.ndarray  # intensity, arbitrary units
    source: str
    mineral: str | None = None
    rruff_id: str | None = None
    laser_nm: float | None = None
    kind: str | None = None  # "raw" or "processed" for RRUFF files
    header: dict[str, str] = field(default_factory=dict)
    #: the x axis' unit as the file states it: "cm-1" (Raman shift; also when it says nothing) or "nm" (wavelength)
    x_unit: str = "cm-1"

    @property
    def specimen(self) -> str | None:
        """The RRUFF specimen: the id without its sub-sample suffix (``R040063-4`` -> ``R040063``)."""
        return specimen_of(self.rruff_id) if self.rruff_id else None


def specimen_of(rruff_id: str) -> str:
    """Base specimen id: letters and digits up to any ``-N``, ``_a``, ``.3`` or ``-3b`` suffix."""
    match = _SPECIMEN.match(rruff_id)
    return match.group(0) if match else rruff_id


def parse_rruff_filename(name: str) -> dict[str, object]:
    """What a RRUFF file name says: ``Mineral__RRUFFID__Raman__LASER__...__Raman_Data_KIND__N.txt``.

    Returns the keys it could read (mineral, rruff_id, laser_nm, kind); empty for other names.
    """
    parts = Path(name).name.split("__")
    if len(parts) < 4 or parts[2] != "Raman":
        return {}
    info: dict[str, object] = {"mineral": parts[0], "rruff_id": parts[1]}
    if _LASER.match(parts[3]):
        info["laser_nm"] = float(parts[3])
    if "Raman_Data_RAW" in parts:
        info["kind"] = "raw"
    elif "Raman_Data_Processed" in parts:
        info["kind"] = "processed"
    return info


def _decode(data: bytes, source: str) -> str:
    if not data.strip():
        raise SpectrumFileError(source, "empty file")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 3 and data[1::2].count(0) > 0.9 * (len(data) // 2)):
        try:  # UTF-16 text (Windows tools write it): a byte-order mark, or every other byte NUL
            return data.decode("utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-16-le")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data:
        raise SpectrumFileError(source, "binary data, not a text spectrum")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # RRUFF headers hold the odd latin-1 byte; latin-1 never fails


def _decimal_commas(lines: list[str]) -> bool:
    """Decimal commas: columns split by ';' or tabs, commas inside the numbers and no decimal point (``91,6103;0,0000``)."""
    sample = lines[1:50] or lines  # the first line may be a column title
    return bool(sample) and all("," in line and ("\t" in line or ";" in line) and "." not in line for line in sample)


def _numeric(line: str) -> bool:
    try:
        [float(f) for f in _FIELD_SPLIT.split(line) if f]
    except ValueError:
        return False
    return True


def _fast_rows(lines: list[str]) -> tuple[np.ndarray, int] | None:
    """(rows (n, 2), lines skipped before them) when every data line is two finite numbers under at most
    one column-title line, parsed in C; None otherwise: the line-by-line reader then names the bad line."""
    start = 0 if not lines or _numeric(lines[0]) else 1
    if len(lines) <= start:
        return None
    try:
        xy = np.loadtxt(io.StringIO(_COLUMN_SEPARATORS.sub(" ", "\n".join(lines[start:]))), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        return None
    return xy, start


def _careful_rows(lines: list[str], numbers: list[int], source: str) -> tuple[np.ndarray, list[int]]:
    """The data lines one by one: the first bad one raises, naming its line number and what is wrong."""
    rows: list[tuple[float, float]] = []
    line_numbers: list[int] = []
    for number, line in zip(numbers, lines):
        fields = [f for f in _FIELD_SPLIT.split(line) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if not rows and number == numbers[0]:
                continue  # a column title, e.g. "wavenumber,intensity"
            raise SpectrumFileError(source, f"line {number}: not numeric: {line[:40]!r}") from None
        if len(values) != 2:
            what = "one column" if len(values) == 1 else f"{len(values)} columns"
            hint = " (decimal commas? separate the columns with ';' or a tab)" if len(values) == 4 and "," in line else ""
            raise SpectrumFileError(source, f"line {number}: {what}; expected two (x, y){hint}")
        if not all(np.isfinite(values)):
            raise SpectrumFileError(source, f"line {number}: non-finite value {line[:40]!r}")
        rows.append((values[0], values[1]))
        line_numbers.append(number)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2), line_numbers


def parse_spectrum_text(data: bytes, source: str, mineral: str | None = None) -> Spectrum:
    """Parse the bytes of a RRUFF or two-column file; ``mineral`` overrides the file's own name.

    ``source`` names the file in every error message. Mineral and RRUFF id come from the RRUFF
    file name where there is one, else from ``##NAMES=`` / ``##RRUFFID=``: the file name spells
    classes as the paper's dataset does (``AxiniteFe``, not ``Axinite-(Fe)``) and keeps the
    sub-sample suffix (``R160016-0``) that the header may drop. UTF-16 text and decimal commas
    (``91,6103;0,0000``) are read; a plain file's rows are parsed in C, and only a file with a bad
    line is read line by line to name it.
    """
    text = _decode(data, source)
    header: dict[str, str] = {}
    lines: list[str] = []
    numbers: list[int] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line:
            continue
        if line.startswith("##"):
            key, _, value = line[2:].partition("=")
            if key.strip().upper() == "END":
                break
            header[key.strip().upper()] = value.strip()
            continue
        if line.startswith("#"):  # a listen capture's "# key=value key=value" lines go into the header too
            for token in line[1:].split():
                key, sep, value = token.partition("=")
                if sep:
                    header.setdefault(key.upper(), value)
            continue
        lines.append(line)
        numbers.append(number)
    if _decimal_commas(lines):
        lines = [line.replace(",", ".") for line in lines]
    fast = _fast_rows(lines)
    if fast is not None:
        xy, line_numbers = fast[0], numbers[fast[1] :]
    else:
        xy, line_numbers = _careful_rows(lines, numbers, source)
    if not len(xy):
        raise SpectrumFileError(source, "no numeric rows")
    if len(xy) < MIN_POINTS:
        raise SpectrumFileError(source, f"only {len(xy)} data rows; a spectrum needs at least {MIN_POINTS}")
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    _check_monotonic(x, line_numbers, source)
    title = lines[0] if lines and not _numeric(lines[0]) else ""

    info = parse_rruff_filename(source)
    return Spectrum(
        x=x,
        y=y,
        source=source,
        mineral=mineral or info.get("mineral") or header.get("NAMES"),  # type: ignore[arg-type]
        rruff_id=info.get("rruff_id") or header.get("RRUFFID"),  # type: ignore[arg-type]
        laser_nm=info.get("laser_nm"),  # type: ignore[arg-type]
        kind=info.get("kind"),  # type: ignore[arg-type]
        header=header,
        x_unit=_x_unit(title, header),
    )


_NANOMETRES = re.compile(r"wavelength|\bnm\b|nanomet", re.IGNORECASE)


def _x_unit(title: str, header: dict[str, str]) -> str:
    """"nm" where the column title (``wavelength_nm,intensity``) or an ``XUNITS`` header says wavelength, else "cm-1"."""
    first_column = _FIELD_SPLIT.split(title.strip())[0] if title.strip() else ""
    return "nm" if _NANOMETRES.search(first_column) or _NANOMETRES.search(header.get("XUNITS", "")) else "cm-1"


def _check_monotonic(x: np.ndarray, line_numbers: list[int], source: str) -> None:
    step = np.diff(x)
    if np.any(step == 0):
        i = int(np.flatnonzero(step == 0)[0]) + 1
        raise SpectrumFileError(source, f"line {line_numbers[i]}: duplicate x value {x[i]:g}")
    direction = np.sign(step[0])
    turns = np.flatnonzero(np.sign(step) != direction)
    if turns.size:
        i = int(turns[0]) + 1
        raise SpectrumFileError(
            source, f"line {line_numbers[i]}: x is not monotonic ({x[i - 1]:g} then {x[i]:g})"
        )


#: Largest spectrum file read (bytes). A RRUFF file is ~50-100 kB, a 65,536-point two-column
#: spectrum ~2 MB; a field computer with 1 GB must not be brought down by a wrong file.
MAX_FILE_BYTES = 16 * 1024 * 1024


def read_spectrum_file(path: str | Path, mineral: str | None = None) -> Spectrum:
    """Read one RRUFF or two-column file from disk; files over :data:`MAX_FILE_BYTES` are refused unread."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)  # bounded: an endless file (a FIFO, /dev/zero) is cut here
    except OSError as exc:
        raise SpectrumFileError(str(path), exc.strerror or str(exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise SpectrumFileError(
            str(path), f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: not a single spectrum (refused unread)"
        )
    return parse_spectrum_text(data, str(path), mineral=mineral)
