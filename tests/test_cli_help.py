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


def test_check_and_library_list_fit_an_80_column_terminal(tmp_path):
    """check's file column was squeezed to 4 letters and library list's title broke mid-word at 80 columns."""
    import numpy as np

    path = tmp_path / "Quartz__R040031__Raman__532__0__unoriented__Raman_Data_Processed__1.txt"
    x = np.arange(100.0, 1200.0)
    path.write_text("".join(f"{a:.1f}, {b:.4f}\n" for a, b in zip(x, np.exp(-0.5 * ((x - 464) / 4) ** 2))))
    env = {"COLUMNS": "80"}
    checked = CliRunner().invoke(edge_app, ["check", str(path)], env=env)
    assert checked.exit_code == 0 and max(map(len, checked.output.splitlines())) <= 80
    assert "Quartz__R040031_" in checked.output  # 16 letters of the name on its first line, at least
    listed = CliRunner().invoke(edge_app, ["library", "list", "--library", str(tmp_path / ("a-long-folder-name-" * 4))], env=env)
    assert listed.exit_code == 0 and f"{tmp_path / ('a-long-folder-name-' * 4)}" in listed.output.replace("\n", "")


def test_error_lines_keep_square_brackets(tmp_path):
    """A path or a hint in square brackets ("ramanedge[web]", "run[raw]/x.txt") is printed as written, not taken
    for a style tag and dropped."""
    from edge.cli_support import fail

    folder = tmp_path / "spot[raw]"
    folder.mkdir()
    missing = folder / "a.txt"
    result = CliRunner().invoke(edge_app, ["classify", str(missing)])
    assert "spot[raw]" in result.output
    import numpy as np

    x = np.arange(100.0, 1500.0)
    y = sum(np.exp(-0.5 * ((x - c) / 4.0) ** 2) for c in (465.0, 206.0, 128.0))  # quartz-like bands
    readable = folder / "b.csv"
    np.savetxt(readable, np.column_stack([x, y]), delimiter=",")
    assert "spot[raw]" in CliRunner().invoke(edge_app, ["classify", str(readable)]).output  # the answer's head line
    app = __import__("typer").Typer()

    @app.command()
    def hint() -> None:
        fail("--web needs aiohttp: pip install 'ramanedge[web]'")

    assert "ramanedge[web]" in CliRunner().invoke(app, []).output
