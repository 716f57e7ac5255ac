"""``python -m edge`` is ``ramanedge``."""

from edge.cli import app

app()
