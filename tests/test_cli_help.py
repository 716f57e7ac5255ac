"""What a new user reads first: --help that names arguments plainly and shows no type beside a flag."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edge.cli import app as edge_app
from trainer.cli import app as trainer_app


@pytest.mark.parametrize(
    ("app", "command", "usage"),
    [
        (edge_app, ["listen"], "listen [OPTIONS] PORT"),
        (edge_app, ["classify"], "classify [OPTIONS] FILE..."),
        (edge_app, ["library", "remove"], "remove [OPTIONS] ID_OR_MINERAL..."),
        (trainer_app, ["export"], "export [OPTIONS] RUN..."),
    ],
)
def test_help_names_arguments_plainly_and_flags_have_no_type(app, command, usage):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and usage in result.output
    assert "<bool>" not in result.output and "{" not in result.output.splitlines()[1]
