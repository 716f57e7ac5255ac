"""The user's own reference spectra: searched at once beside the bundle's, with no retraining.

``ramanedge library add FILE... --mineral NAME`` reads each file as ``classify`` does (the raw
pipeline with ``--raw``, the shared preprocessing), refuses what it could not identify from
(unreadable, too weak, saturated) and what it already holds (the same spectrum), and stores the
model input in one file, ``user_library.npz``, in the library folder: ``--library DIR``, else
``$RAMANEDGE_LIBRARY``, else ``library`` in the user's application-data folder. The file is
replaced atomically (temporary file, fsync, rename, fsync of the folder), so a power cut leaves
the old library or the new one, never half of one. :meth:`UserLibrary.references` hands the
entries to :class:`edge.library.ReferenceLibrary`, where they count like the bundle's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from edge.library import ReferenceLibrary
from ramancore.preprocessing import GRID_SIZE

FILE = "user_library.npz"
FORMAT = "ramanedge-user-library-1"
MAX_NAME = 64
#: The per-entry arrays of the library file, in UserEntry's field order.
COLUMNS = ("ids", "minerals", "sources", "added", "sha256")


class UserLibraryError(ValueError):
    """A library or entry that cannot be used; one line naming the file and what is wrong."""


def default_folder() -> Path:
    """``$RAMANEDGE_LIBRARY`` if set, else ``library`` in the user's application-data folder."""
    env = os.environ.get("RAMANEDGE_LIBRARY")
    return Path(env) if env else Path(typer.get_app_dir("ramanedge")) / "library"


def spectrum_digest(spectrum: np.ndarray) -> str:
    """sha256 of a spectrum as stored (float16): equal for the same measurement added twice."""
    return hashlib.sha256(np.asarray(spectrum, dtype=np.float16).tobytes()).hexdigest()


def check_mineral_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise UserLibraryError(f"mineral name {name!r}: give 1 to {MAX_NAME} printable characters")
    return name


@dataclass(frozen=True)
class UserEntry:
    id: str  #: U0001, U0002, ... never reused
    mineral: str
    source: str  #: the file (or capture) it was added from
    added: str  #: UTC ISO time
    sha256: str  #: of the stored spectrum


class UserLibrary:
    """The entries of one library folder (read at construction; :meth:`save` writes them back)."""

    def __init__(self, folder: Path | None = None, file: Path | None = None) -> None:
        self.folder = Path(folder) if folder else default_folder()
        if file is None and self.folder.exists() and not self.folder.is_dir():
            raise UserLibraryError(f"{self.folder}: a file, not a folder; the user library is a folder (--library or $RAMANEDGE_LIBRARY)")
        self.path = Path(file) if file else self.folder / FILE
        self.entries: list[UserEntry] = []
        self.spectra: list[np.ndarray] = []
        self._next = 1
        if self.path.exists():
            self._load()

    @classmethod
    def from_file(cls, path: Path) -> UserLibrary:
        """A library read from one file (``library export``'s), which must exist."""
        if not Path(path).is_file():
            raise UserLibraryError(f"{path}: no such file")
        return cls(Path(path).parent, file=Path(path))

    def _load(self) -> None:
        if self.path.is_file() and self.path.stat().st_size == 0:
            raise UserLibraryError(f"{self.path}: an empty file, not a ramanedge user library")
        if self.path.is_file() and not zipfile.is_zipfile(self.path):
            raise UserLibraryError(f"{self.path}: not a ramanedge user library (not an .npz archive)")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise UserLibraryError(f"{self.path}: not a ramanedge user library (format {data['format']})")
                columns = [data[k].tolist() for k in COLUMNS]
                spectra = data["spectra"].astype(np.float32)
                self._next = int(data["next_id"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise UserLibraryError(f"{self.path}: unreadable user library ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if spectra.shape != (len(columns[0]), GRID_SIZE):
            raise UserLibraryError(f"{self.path}: spectra of shape {spectra.shape} for {len(columns[0])} entries")
        self.entries = [UserEntry(*row) for row in zip(*columns)]
        self.spectra = list(spectra)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, mineral: str, spectrum: np.ndarray, source: str) -> UserEntry:
        """Add one preprocessed spectrum (GRID_SIZE values, 0..1); a spectrum already held is refused."""
        spectrum = np.asarray(spectrum, dtype=np.float32)
        if spectrum.shape != (GRID_SIZE,):
            raise UserLibraryError(f"{source}: a library spectrum has {GRID_SIZE} points on the grid, not {spectrum.shape}")
        digest = spectrum_digest(spectrum)
        same = next((e for e in self.entries if e.sha256 == digest), None)
        if same is not None:
            raise UserLibraryError(f"{source}: already in the library as {same.id} ({same.mineral}, from {same.source})")
        entry = UserEntry(
            f"U{self._next:04d}",
            check_mineral_name(mineral),
            source,
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            digest,
        )
        self._next += 1
        self.entries.append(entry)
        self.spectra.append(spectrum)
        return entry

    def remove(self, selector: str) -> list[UserEntry]:
        """Remove the entry with this id, or every entry of this mineral; the removed entries."""
        keep = [(e, s) for e, s in zip(self.entries, self.spectra) if selector not in (e.id, e.mineral)]
        removed = [e for e in self.entries if selector in (e.id, e.mineral)]
        if not removed:
            raise UserLibraryError(f"{self.path}: no entry or mineral {selector!r}")
        self.entries, self.spectra = [e for e, _ in keep], [s for _, s in keep]
        return removed

    def merge(self, other: UserLibrary) -> tuple[list[UserEntry], list[UserEntry]]:
        """Add ``other``'s entries (under new ids); those already held are skipped. (added, skipped)."""
        added, skipped = [], []
        held = {e.sha256 for e in self.entries}
        for entry, spectrum in zip(other.entries, other.spectra):
            if entry.sha256 in held:
                skipped.append(entry)
                continue
            added.append(self.add(entry.mineral, spectrum, entry.source))
            held.add(entry.sha256)
        return added, skipped

    def save(self, path: Path | None = None) -> Path:
        """Write the library atomically to ``path`` (default: its own file) and return it."""
        path = path or self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        columns = list(zip(*[(e.id, e.mineral, e.source, e.added, e.sha256) for e in self.entries])) or [()] * 5
        try:
            with tmp.open("wb") as fh:
                arrays: dict[str, np.ndarray] = {k: np.array(c, dtype=str) for k, c in zip(COLUMNS, columns)}
                arrays["format"] = np.array(FORMAT)
                arrays["next_id"] = np.array(self._next)
                arrays["spectra"] = np.array(self.spectra, dtype=np.float16).reshape(len(self.entries), GRID_SIZE)
                np.savez(fh, **arrays)  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        return path

    def references(self) -> ReferenceLibrary:
        """The entries as a reference library (source "user"), for :class:`edge.library.Matcher`."""
        if not self.entries:
            return ReferenceLibrary.concat()
        return ReferenceLibrary(
            np.array(self.spectra, dtype=np.float32),
            np.array([e.mineral for e in self.entries]),
            np.array([e.id for e in self.entries]),
            np.full(len(self.entries), "user"),
        )
