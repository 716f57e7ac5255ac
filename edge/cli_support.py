"""What both command-line tools (``ramanedge``, ``trainer``) share: the one-line error and ``--version``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import version
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

errors = Console(stderr=True)
_saying = threading.Lock()


def say(line: str) -> None:
    """One log line on stderr, whole: the listener and the web view's thread both log, and rich writes a line in parts."""
    with _saying:
        errors.print(escape(line), highlight=False, soft_wrap=True)


def _plain_help() -> None:
    """Recent typer (0.2x) prints ``<bool>`` beside every flag and ``{PORT}`` for a required argument in
    ``--help``; a flag takes no value and a required argument reads as itself (``PORT``, ``FILE...``),
    as in every Unix manual. Skipped, and the help merely wordier, where typer's internals differ."""
    from typer import core

    option, argument = getattr(core, "TyperOption", None), getattr(core, "TyperArgument", None)
    type_column = getattr(option, "display_type_rich", None)
    if option is not None and type_column is not None and not getattr(type_column, "plain", False):

        def display_type_rich(self, ctx):
            return None if getattr(self, "is_flag", False) else type_column(self, ctx)

        display_type_rich.plain = True  # type: ignore[attr-defined]
        option.display_type_rich = display_type_rich
    if argument is not None and hasattr(argument, "_usage_display_name") and hasattr(argument, "display_name_raw"):

        def usage_name(self) -> str:
            name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
            return name + ("..." if self.nargs != 1 else "")

        argument._usage_display_name = usage_name


_plain_help()

#: ``--laser NM`` of the commands that read spectrum files: what converts a file in wavelength to Raman shift.
LaserOption = typer.Option(
    "--laser", min=100.0, max=2000.0, help="excitation line, nm: converts files whose x axis is wavelength (nm) to Raman shift"
)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on one line of stderr and exit with ``code``."""
    errors.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)  # a path or hint may hold [...]
    raise typer.Exit(code)


def version_option(program: str) -> object:
    """A ``--version`` option for an app callback that prints ``program`` and the package version."""

    def show(value: bool) -> None:
        if value:
            print(f"{program} {version('ramanedge')}")
            raise typer.Exit()

    callback: Callable[[bool], None] = show
    return typer.Option("--version", callback=callback, is_eager=True, help="print the version and exit")

