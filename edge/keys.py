"""Single keys on the live screen, without a thread: the terminal in cbreak mode, polled between answers.

:func:`keys_pressed` yields a function that returns the keys typed since it was last called
(nothing, at once, when stdin is not a terminal); :func:`typed_line` gives the terminal back its
line editing for a prompt.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Callable, Iterator


def _terminal() -> int | None:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    return fd if os.isatty(fd) else None


@contextlib.contextmanager
def keys_pressed() -> Iterator[Callable[[], str]]:
    fd = _terminal()
    if fd is None:
        yield lambda: ""
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)

    def pressed() -> str:
        keys = ""
        while select.select([fd], [], [], 0)[0]:
            data = os.read(fd, 64)
            if not data:
                break
            keys += data.decode(errors="ignore")
        return keys.lower()

    try:
        tty.setcbreak(fd)
        yield pressed
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def typed_line() -> Iterator[None]:
    """Line editing and echo back for the length of a prompt (inside :func:`keys_pressed`)."""
    fd = _terminal()
    if fd is None:
        yield
        return
    import termios

    cbreak = termios.tcgetattr(fd)
    attrs = termios.tcgetattr(fd)
    attrs[3] |= termios.ICANON | termios.ECHO
    termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, cbreak)
