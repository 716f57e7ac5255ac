"""The user library: add/list/remove/export/import round trips, refusals in one line, writes that
survive a crash, and entries searched at once by classify."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edge.cli import app
from edge.user_library import FILE, UserLibrary, UserLibraryError
from ramancore.preprocessing import GRID

runner = CliRunner()


def spectrum_file(path: Path, centres, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = sum(1000 / (1 + ((GRID - c) / 5.0) ** 2) for c in centres) + rng.normal(0, 2, GRID.size) + 50
    path.write_text("".join(f"{x:.1f}, {v:.3f}\n" for x, v in zip(GRID, y)))
    return path


def test_add_list_remove_round_trip(tmp_path):
    lib = tmp_path / "lib"
    a = spectrum_file(tmp_path / "a.csv", (200, 480, 1010))
    b = spectrum_file(tmp_path / "b.csv", (200, 480, 1010), seed=1)
    result = runner.invoke(app, ["library", "add", str(a), str(b), "--mineral", "Testite", "--library", str(lib)])
    assert result.exit_code == 0, result.output
    assert "added U0001: Testite" in result.output and "added U0002: Testite" in result.output
    listed = runner.invoke(app, ["library", "list", "--library", str(lib)])
    assert "U0001" in listed.output and "U0002" in listed.output and "b.csv" in listed.output
    assert runner.invoke(app, ["library", "remove", "U0001", "--library", str(lib)]).exit_code == 0
    assert [e.id for e in UserLibrary(lib).entries] == ["U0002"]
    # ids are never reused after a removal
    c = spectrum_file(tmp_path / "c.csv", (300, 700))
    assert "added U0003" in runner.invoke(app, ["library", "add", str(c), "--mineral", "Other", "--library", str(lib)]).output
    assert runner.invoke(app, ["library", "remove", "Testite", "--library", str(lib)]).exit_code == 0
    assert [e.mineral for e in UserLibrary(lib).entries] == ["Other"]
    missing = runner.invoke(app, ["library", "remove", "U0042", "--library", str(lib)])
    assert missing.exit_code == 1 and "no entry or mineral 'U0042'" in missing.output


def test_duplicates_bad_files_and_weak_spectra_are_refused_in_one_line_each(tmp_path):
    lib = tmp_path / "lib"
    a = spectrum_file(tmp_path / "a.csv", (200, 480, 1010))
    bad = tmp_path / "bad.csv"
    bad.write_text("not a spectrum\n")
    flat = tmp_path / "flat.csv"
    flat.write_text("".join(f"{x:.1f}, {v:.3f}\n" for x, v in zip(GRID, np.random.default_rng(0).normal(0, 5, GRID.size))))
    result = runner.invoke(app, ["library", "add", str(a), str(a), str(bad), str(flat), "--mineral", "Testite", "--library", str(lib)])
    assert result.exit_code == 1
    refused = [line for line in result.output.splitlines() if line.startswith("refused")]
    assert len(refused) == 3 and "already in the library as U0001" in refused[0]
    assert str(bad) in refused[1] and "signal too weak" in refused[2]
    assert "1 added, 3 refused" in result.output
    assert len(UserLibrary(lib)) == 1  # the good one was kept
    assert runner.invoke(app, ["library", "add", str(a), "--mineral", " ", "--library", str(lib)]).exit_code == 1


def test_export_import_moves_entries_and_never_overwrites(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    a = spectrum_file(tmp_path / "a.csv", (200, 480, 1010))
    b = spectrum_file(tmp_path / "b.csv", (333, 900))
    runner.invoke(app, ["library", "add", str(a), "--mineral", "Testite", "--library", str(one)])
    runner.invoke(app, ["library", "add", str(b), "--mineral", "Other", "--library", str(two)])
    out = tmp_path / "moved.npz"
    assert runner.invoke(app, ["library", "export", str(out), "--library", str(one)]).exit_code == 0
    again = runner.invoke(app, ["library", "export", str(out), "--library", str(one)])
    assert again.exit_code == 1 and "exists; not overwriting" in again.output
    result = runner.invoke(app, ["library", "import", str(out), "--library", str(two)])
    assert result.exit_code == 0 and "1 entries added, 0 already held" in result.output
    assert "0 entries added, 1 already held" in runner.invoke(app, ["library", "import", str(out), "--library", str(two)]).output
    assert sorted(e.mineral for e in UserLibrary(two).entries) == ["Other", "Testite"]
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really")
    bad = runner.invoke(app, ["library", "import", str(garbage), "--library", str(two)])
    assert bad.exit_code == 1 and "not a ramanedge user library" in bad.output and "Traceback" not in bad.output


def test_a_failed_write_leaves_the_old_library(tmp_path, monkeypatch):
    lib = UserLibrary(tmp_path)
    lib.add("Testite", np.linspace(0, 1, GRID.size), "a.csv")
    lib.save()
    lib.add("Other", np.linspace(1, 0, GRID.size), "b.csv")

    def torn_write(fh, **arrays):
        fh.write(b"PK\x03\x04 half a library")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", torn_write)
    with pytest.raises(OSError):
        lib.save()
    monkeypatch.undo()
    assert [e.mineral for e in UserLibrary(tmp_path).entries] == ["Testite"]
    assert [p.name for p in tmp_path.iterdir()] == [FILE]  # no temporary file left behind


def test_a_process_killed_while_writing_leaves_the_saved_library(tmp_path):
    """A process killed (SIGKILL) half-way through writing the library leaves the last saved library intact
    and loadable: nothing runs after the kill, no handler, no cleanup. (The kernel's page cache survives a
    killed process, so this proves the write-then-rename order, not durability on a power cut: the fsync
    calls that give that are checked in test_the_library_is_fsynced_before_and_after_the_rename.)"""
    script = (
        "import os, signal, sys, numpy as np\n"
        "from edge.user_library import UserLibrary\n"
        "lib = UserLibrary(sys.argv[1])\n"
        "lib.add('Saved', np.linspace(0, 1, 1570), 'a.csv')\n"
        "lib.save()\n"
        "lib.add('Lost', np.linspace(1, 0, 1570), 'b.csv')\n"
        "def torn(fh, **arrays):\n"
        "    fh.write(b'PK' + bytes(5000))\n"
        "    fh.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "np.savez = torn\n"
        "lib.save()\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=Path(__file__).parents[1])
    assert result.returncode == -signal.SIGKILL
    assert [e.mineral for e in UserLibrary(tmp_path).entries] == ["Saved"]


def test_unreadable_library_is_one_line(tmp_path, write):
    (tmp_path / FILE).write_text("junk")
    with pytest.raises(UserLibraryError, match="not a ramanedge user library"):
        UserLibrary(tmp_path)
    result = runner.invoke(app, ["library", "list", "--library", str(tmp_path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1


def test_import_of_an_empty_or_random_file_and_a_library_path_that_is_a_file_are_one_line_each(tmp_path, monkeypatch):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    noise = tmp_path / "random.npz"
    noise.write_bytes(np.random.default_rng(0).bytes(3000))
    for path, message in ((empty, "an empty file, not a ramanedge user library"), (noise, "not a ramanedge user library (not an .npz archive)")):
        result = runner.invoke(app, ["library", "import", str(path), "--library", str(tmp_path / "lib")])
        assert result.exit_code == 1 and result.output.strip() == f"error: {path}: {message}"
        assert "allow_pickle" not in result.output and "Aborted" not in result.output
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("mine")
    monkeypatch.setenv("RAMANEDGE_LIBRARY", str(not_a_folder))
    result = runner.invoke(app, ["library", "list"])
    assert result.exit_code == 1 and "a file, not a folder" in result.output and not_a_folder.read_text() == "mine"


def test_a_user_entry_is_searched_at_once_by_classify(edge_bundle, tmp_path):
    """A spectrum unlike any mineral of the bundle: 'not in library' before, named from the user library after."""
    lib = tmp_path / "lib"
    first = spectrum_file(tmp_path / "first.csv", (95, 340, 610, 1370))
    second = spectrum_file(tmp_path / "second.csv", (96, 341, 611, 1369), seed=5)
    before = json.loads(runner.invoke(app, ["classify", str(second), "--json", "--library", str(lib)]).stdout)
    assert before["state"] == "not in library"
    assert runner.invoke(app, ["library", "add", str(first), "--mineral", "Novelite", "--library", str(lib)]).exit_code == 0
    after = json.loads(runner.invoke(app, ["classify", str(second), "--json", "--library", str(lib)]).stdout)
    assert after["top"][0]["mineral"] == "Novelite" and after["source"] == "user library"
    assert after["library_hit"]["id"] == "U0001" and after["library_hit"]["source"] == "user" and after["library_hit"]["hqi"] > 900
    assert after["state"] in ("identified", "possible match")


def test_one_user_entry_stays_out_of_the_top3_of_unrelated_spectra(edge_bundle):
    """The "Novelite" case: one demo spectrum added under a new name used to enter the top-3 of most
    unrelated spectra (it got the model's best probability). Now it enters only where it matches."""
    from edge.bundle import load_bundle
    from edge.identifier import Identifier
    from edge.library import Matcher, ReferenceLibrary

    bundle = load_bundle(edge_bundle)
    demo = bundle.demo_spectra()
    mineral, spectrum = demo[0]
    identifier = Identifier(bundle, num_threads=1)
    user = ReferenceLibrary(spectrum[None, :], ["Novelite"], ["U0001"], ["user"])
    identifier.matcher = Matcher(bundle.labels, ReferenceLibrary.concat(identifier.matcher.library, user), identifier.calibration)
    unrelated = [s for m, s in demo[1:] if m != mineral]
    in_top3 = [
        any(name == "Novelite" for name, _ in identifier.answer(s, s).top)  # demo spectra are model inputs already
        for s in unrelated
    ]
    assert len(unrelated) >= 30 and sum(in_top3) <= 0.02 * len(unrelated) + 0.5
    assert "Novelite" in [name for name, _ in identifier.answer(spectrum, spectrum).top]  # its own spectrum: a candidate


def test_noise_about_an_offset_is_refused_and_nothing_is_said_removed_or_added_that_was_not(tmp_path):
    lib = tmp_path / "lib"
    a = spectrum_file(tmp_path / "a.csv", (200, 480, 1010))
    noise = tmp_path / "noise.csv"  # pure Gaussian noise about a detector offset: no Raman band at all
    noise.write_text("".join(f"{x:.1f}, {v:.3f}\n" for x, v in zip(GRID, 800 + np.random.default_rng(3).normal(0, 5, GRID.size))))
    result = runner.invoke(app, ["library", "add", str(noise), "--mineral", "Testite", "--library", str(lib)])
    assert result.exit_code == 1 and "signal too weak" in result.output and "added U" not in result.output
    assert runner.invoke(app, ["library", "add", str(a), "--mineral", "Testite", "--library", str(lib)]).exit_code == 0
    # one good selector and one bad: nothing removed, and nothing said removed
    result = runner.invoke(app, ["library", "remove", "U0001", "U0099", "--library", str(lib)])
    assert result.exit_code == 1 and "removed" not in result.output.replace("nothing removed", "")
    assert [e.id for e in UserLibrary(lib).entries] == ["U0001"]


def test_the_save_failing_says_no_added_or_removed(tmp_path, monkeypatch):
    """As on a read-only folder (which root, running CI, can still write): the save fails after the entries changed in memory."""
    lib = tmp_path / "lib"
    a = spectrum_file(tmp_path / "a.csv", (200, 480, 1010))
    assert runner.invoke(app, ["library", "add", str(a), "--mineral", "Testite", "--library", str(lib)]).exit_code == 0

    def read_only(self, path=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(UserLibrary, "save", read_only)
    b = spectrum_file(tmp_path / "b.csv", (300, 700))
    added = runner.invoke(app, ["library", "add", str(b), "--mineral", "Other", "--library", str(lib)])
    removed = runner.invoke(app, ["library", "remove", "U0001", "--library", str(lib)])
    assert added.exit_code == 1 and "cannot write the user library" in added.output and "added U0002" not in added.output
    assert removed.exit_code == 1 and "removed U0001" not in removed.output


def test_the_library_is_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    """A power cut keeps only what reached the disk: the new file's data before it replaces the old one,
    and the folder entry after the rename. Either fsync missing is a library a power cut can lose."""
    import os

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    library = UserLibrary(tmp_path)
    library.add("Testite", np.linspace(0, 1, GRID.size), "a.csv")
    library.save()
    assert events == ["fsync file", "rename", "fsync folder"]
