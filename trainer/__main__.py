"""``python -m trainer``: the trainer CLI where its script is not on PATH (a GPU host with carried wheels)."""

from trainer.cli import app

app()
