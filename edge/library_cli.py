"""``ramanedge library ...``: the user's reference library, kept beside the bundle.

``add`` reads and checks each file as ``classify`` does and refuses, one line each, what it could
not identify from (unreadable, too weak, saturated) and what the library already holds; ``list``,
``remove``, ``export`` and ``import`` move entries between devices. Every change is saved
atomically (:class:`edge.user_library.UserLibrary`) and is searched by the next ``classify`` or
``listen`` at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edge.answer import AnswerGate
from edge.bundle import BundleError, load_bundle
from edge.capture import saturated
from edge.cli_support import LaserOption, errors, fail
from edge.library import ReferenceLibrary, twin_note
from edge.model_input import read_model_input
from edge.spectrum_files import SpectrumFileError
from edge.user_library import UserLibrary, UserLibraryError, check_mineral_name

library_app = typer.Typer(
    help="Your own reference spectra, kept beside the bundle: searched at once by classify and listen, no retraining.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

LibraryOption = Annotated[
    Path | None,
    typer.Option("--library", help="user library folder (default: $RAMANEDGE_LIBRARY, else the user's data folder)"),
]


def open_user_library(folder: Path | None) -> UserLibrary:
    """The user library of ``folder`` (default folder if None), or one line saying why it cannot be read."""
    try:
        return UserLibrary(folder)
    except UserLibraryError as exc:
        fail(str(exc))


def _bundle_library() -> ReferenceLibrary:
    """The bundled model's reference library, to point out a new entry that is a known mineral; empty without one."""
    try:
        return load_bundle().library()
    except BundleError:
        return ReferenceLibrary.concat()


def _save(library: UserLibrary) -> None:
    try:
        library.save()
    except OSError as exc:
        fail(f"{library.path}: cannot write the user library ({exc.strerror or exc})")


@library_app.command()
def add(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="spectrum files of one mineral (RRUFF text, two-column CSV/TXT, listen captures)")],
    mineral: Annotated[str, typer.Option(help="the mineral these spectra are of")],
    library: LibraryOption = None,
    raw: Annotated[bool, typer.Option("--raw", help="files hold raw counts in Raman shift: remove spikes and baseline first")] = False,
    laser: Annotated[float | None, LaserOption] = None,
) -> None:
    """Add reference spectra of one mineral; a known or a new mineral, no retraining needed."""
    try:
        mineral = check_mineral_name(mineral)
    except UserLibraryError as exc:
        fail(str(exc))
    user = open_user_library(library)
    gate = AnswerGate()
    known = _bundle_library()
    refused = 0
    done: list[str] = []  # said once the library is saved: nothing is "added" that a failed save lost
    for path in files:
        try:
            read = read_model_input(path, raw, laser)
            if read.cleaned_note:
                errors.print(read.cleaned_note, highlight=False, soft_wrap=True)
            weak = gate.signal_state(read.y, saturated=saturated(read.spectrum.header))
            if weak is not None:
                raise UserLibraryError(f"{path}: {weak}; not a reference to identify others by")
            entry = user.add(mineral, read.vector, path.name)
        except (SpectrumFileError, UserLibraryError) as exc:
            refused += 1
            errors.print(f"[red]refused[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            continue
        done.append(f"added {entry.id}: {entry.mineral} from {path}{twin_note(known, read.vector, mineral)}")
    if done:
        _save(user)
    for line in done:
        console.print(line, highlight=False, soft_wrap=True)
    added = len(done)
    errors.print(f"{added} added, {refused} refused; {len(user)} entries in {escape(str(user.path))}", highlight=False, soft_wrap=True)
    if refused:
        raise typer.Exit(1)


@library_app.command("list")
def list_entries(library: LibraryOption = None) -> None:
    """The entries of the user library."""
    user = open_user_library(library)
    console.print(f"{escape(str(user.path))} ({len(user)} entries)", highlight=False, soft_wrap=True)  # a path is not broken mid-word
    table = Table()
    for column in ("id", "mineral", "from", "added"):
        table.add_column(column, overflow="fold")
    for e in user.entries:
        table.add_row(e.id, e.mineral, e.source, e.added)
    console.print(table)


@library_app.command()
def remove(
    selectors: Annotated[list[str], typer.Argument(metavar="ID_OR_MINERAL", help="entry ids (U0001) or mineral names (every entry of it)")],
    library: LibraryOption = None,
) -> None:
    """Remove entries by id, or every entry of a mineral."""
    user = open_user_library(library)
    done: list[str] = []
    for selector in selectors:
        try:
            removed = user.remove(selector)
        except UserLibraryError as exc:
            fail(f"{exc}; nothing removed")
        done.append(f"removed {', '.join(f'{e.id} ({e.mineral})' for e in removed)}")
    _save(user)
    for line in done:  # only once saved: a failed save or a bad selector removes nothing and says so
        console.print(line, highlight=False)


@library_app.command("export")
def export_library(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="the file to write (.npz); an existing file is never overwritten")],
    library: LibraryOption = None,
) -> None:
    """Write the user library to one file, to import on another device."""
    user = open_user_library(library)
    if file.exists():
        fail(f"{file}: exists; not overwriting it")
    try:
        user.save(file)
    except OSError as exc:
        fail(f"{file}: cannot write ({exc.strerror or exc})")
    console.print(f"{len(user)} entries written to {escape(str(file))}", highlight=False)


@library_app.command("import")
def import_library(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="a file written by `ramanedge library export`")],
    library: LibraryOption = None,
) -> None:
    """Add the entries of an exported library; those already held are skipped."""
    user = open_user_library(library)
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        other = UserLibrary.from_file(file)
    except UserLibraryError as exc:
        fail(str(exc))
    added, skipped = user.merge(other)
    _save(user)
    console.print(f"{len(added)} entries added, {len(skipped)} already held; {len(user)} entries in {escape(str(user.path))}", highlight=False)
