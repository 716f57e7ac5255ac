"""``ramanedge``: the field side of ramanedge (no TensorFlow is imported here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edge.preprocessing import GRID, PreprocessingError, preprocess
from edge.spectrum_files import SpectrumFileError, read_spectrum_file

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
errors = Console(stderr=True)


@app.callback()
def main() -> None:
    """Mineral identification from Raman spectra on a field computer."""


@app.command()
def check(
    files: Annotated[list[Path], typer.Argument(help="RRUFF text or two-column CSV/TXT spectrum files")],
) -> None:
    """Read and preprocess spectrum files as the device would; say what each one holds or what is wrong."""
    table = Table()
    table.add_column("file", overflow="fold")
    for column in ("mineral", "RRUFF id", "laser nm", "points", "range cm^-1", "on model grid"):
        table.add_column(column, no_wrap=True)
    bad = 0
    for path in files:
        try:
            spectrum = read_spectrum_file(path)
            preprocess(spectrum.x, spectrum.y)
        except (SpectrumFileError, PreprocessingError) as exc:
            bad += 1
            message = str(exc) if isinstance(exc, SpectrumFileError) else f"{path}: {exc}"
            errors.print(f"[red]bad file[/red] {message}", highlight=False, soft_wrap=True)
            continue
        lo, hi = max(spectrum.x.min(), GRID[0]), min(spectrum.x.max(), GRID[-1])
        table.add_row(
            path.name,
            spectrum.mineral or "?",
            spectrum.rruff_id or "?",
            f"{spectrum.laser_nm:g}" if spectrum.laser_nm else "?",
            str(spectrum.x.size),
            f"{spectrum.x.min():.1f}..{spectrum.x.max():.1f}",
            f"{lo:.0f}..{hi:.0f}",
        )
    if table.row_count:
        console.print(table)
    if bad:
        errors.print(f"{bad} of {len(files)} files unusable", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
