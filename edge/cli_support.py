"""What both command-line tools (``ramanedge``, ``trainer``) share: the one-line error and ``--version``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import NoReturn

import typer
from rich.console import Console

errors = Console(stderr=True)

#: ``--laser NM`` of the commands that read spectrum files: what converts a file in wavelength to Raman shift.
LaserOption = typer.Option(
    "--laser", min=100.0, max=2000.0, help="excitation line, nm: converts files whose x axis is wavelength (nm) to Raman shift"
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line of stderr and exit with ``code``."""
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def version_option(program: str) -> object:
    """A ``--version`` option for an app callback that prints ``program`` and the package version."""

    def show(value: bool) -> None:
        if value:
            print(f"{program} {version('ramanedge')}")
            raise typer.Exit()

    callback: Callable[[bool], None] = show
    return typer.Option("--version", callback=callback, is_eager=True, help="print the version and exit")

