from __future__ import annotations

import numpy as np
import pytest

from edge.spectrum_files import (
    MIN_POINTS,
    SpectrumFileError,
    parse_rruff_filename,
    read_spectrum_file,
    specimen_of,
)
from tests.conftest import two_column

XS = np.arange(100.0, 100.0 + 20 * 5, 5)
YS = np.linspace(1.0, 3.0, XS.size)


def test_every_shared_rruff_file_reads(rruff_sample):
    files = sorted(rruff_sample.glob("*.txt"))
    assert len(files) == 300
    for path in files:
        s = read_spectrum_file(path)
        info = parse_rruff_filename(path.name)
        assert s.mineral == info["mineral"] and s.header["NAMES"]
        assert s.rruff_id == info["rruff_id"]
        assert s.specimen == specimen_of(s.header["RRUFFID"])
        assert s.kind == ("raw" if "_RAW__" in path.name else "processed")
        assert s.laser_nm in (514.0, 532.0, 780.0, 785.0)
        assert s.x.size == s.y.size >= MIN_POINTS
        assert np.all(np.diff(s.x) > 0)


def test_rruff_header_crlf_and_end_marker(write):
    text = (
        "##NAMES=Calcite\r\n##RRUFFID=R040070-2\r\n##IDEAL CHEMISTRY=CaCO_3_\r\n"
        + two_column(XS, YS, eol="\r\n")
        + "##END=\r\n\r\n\r\n"
    )
    s = read_spectrum_file(write("Calcite__R040070-2__Raman__785__0__unoriented__Raman_Data_RAW__1.txt", text))
    assert (s.mineral, s.rruff_id, s.specimen, s.laser_nm, s.kind) == ("Calcite", "R040070-2", "R040070", 785.0, "raw")
    np.testing.assert_allclose(s.x, XS)
    np.testing.assert_allclose(s.y, YS)


def test_latin1_header_byte_is_read(write):
    data = b"##NAMES=Quartz\n##LOCALITY=S\xe3o Paulo\n" + two_column(XS, YS).encode()
    s = read_spectrum_file(write("q.txt", data))
    assert s.header["LOCALITY"] == "São Paulo"


@pytest.mark.parametrize("sep", [",", ";", "\t", "  ", ", "])
def test_plain_two_column_separators_with_title_line(write, sep):
    s = read_spectrum_file(write("plain.csv", f"shift{sep}counts\n" + two_column(XS, YS, sep=sep)))
    assert s.mineral is None and s.rruff_id is None
    np.testing.assert_allclose(s.y, YS)


def test_descending_x_is_accepted(write):
    s = read_spectrum_file(write("desc.txt", two_column(XS[::-1], YS[::-1])))
    assert s.x[0] > s.x[-1]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "empty file"),
        ("   \n\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "binary data"),
        ("##NAMES=Calcite\n##END=\n", "no numeric rows"),
        ("".join(f"{x}\n" for x in XS), "one column; expected two"),
        ("".join(f"{x}, 1, 2\n" for x in XS), "3 columns; expected two"),
        (two_column(XS[:5], YS[:5]), f"only 5 data rows; a spectrum needs at least {MIN_POINTS}"),
        (two_column(XS, YS[:-1]) + f"{XS[-1]}, nan\n", "line 20: non-finite value"),
        (two_column(XS, YS[:-1]) + f"{XS[-1]}, inf\n", "line 20: non-finite value"),
        (two_column(XS, YS) + "oops, 1\n", "line 21: not numeric"),
        (two_column(np.r_[XS[:10], XS[9], XS[11:]], YS), "line 11: duplicate x value 145"),
        (two_column(np.r_[XS[:10], XS[5], XS[11:]], YS), "line 11: x is not monotonic (145 then 125)"),
    ],
)
def test_malformed_files_give_one_line_naming_file_and_problem(write, content, problem):
    path = write("broken.txt", content)
    with pytest.raises(SpectrumFileError) as info:
        read_spectrum_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert problem in message
    assert "\n" not in message


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(SpectrumFileError, match=r"nope\.txt: No such file"):
        read_spectrum_file(tmp_path / "nope.txt")


@pytest.mark.parametrize(
    ("rruff_id", "specimen"),
    [("R040063-4", "R040063"), ("R040063", "R040063"), ("R050111_a", "R050111"), ("X050012.3", "X050012"), ("R050075-3b", "R050075")],
)
def test_specimen_is_the_id_without_its_suffix(rruff_id, specimen):
    assert specimen_of(rruff_id) == specimen


def test_filename_parsing():
    info = parse_rruff_filename("Actinolite__R040063-4__Raman__514__0__ccw__Raman_Data_Processed__1507.txt")
    assert info == {"mineral": "Actinolite", "rruff_id": "R040063-4", "laser_nm": 514.0, "kind": "processed"}
    assert parse_rruff_filename("my_spectrum.csv") == {}


def test_oversized_and_endless_files_are_refused_in_bounded_memory(tmp_path):
    import resource

    from edge.spectrum_files import MAX_FILE_BYTES

    big = tmp_path / "huge.csv"
    with big.open("w") as fh:
        line = "100.0, 1.0\n" * 100_000
        while fh.tell() <= MAX_FILE_BYTES:
            fh.write(line)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SpectrumFileError, match=r"huge.csv: larger than 16 MB"):
        read_spectrum_file(big)
    with pytest.raises(SpectrumFileError, match="larger than 16 MB"):
        read_spectrum_file("/dev/zero")  # endless: read only up to the limit
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 80


def test_decimal_commas_and_utf16_are_read_and_a_comma_only_file_gets_a_hint(tmp_path):
    from edge.spectrum_files import SpectrumFileError, read_spectrum_file

    x = np.arange(100.0, 140.0)
    y = np.linspace(0.0, 1.0, x.size)
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text("".join(f"{a:.4f};{b:.4f}\n".replace(".", ",") for a, b in zip(x, y)))
    tabs = tmp_path / "tabs.txt"
    tabs.write_text("x\ty\n" + "".join(f"{a:.4f}\t{b:.4f}\n".replace(".", ",") for a, b in zip(x, y)))
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("".join(f"{a:.4f}, {b:.4f}\r\n" for a, b in zip(x, y)).encode("utf-16"))
    for path in (semicolons, tabs, utf16):
        spectrum = read_spectrum_file(path)
        np.testing.assert_allclose(spectrum.x, x)
        np.testing.assert_allclose(spectrum.y, y, atol=1e-4)
    commas = tmp_path / "commas.csv"
    commas.write_text("".join(f"{a:.4f},{b:.4f}\n".replace(".", ",", 1) for a, b in zip(x, y)).replace(".", ","))
    with pytest.raises(SpectrumFileError, match=r"line 1: 4 columns; expected two \(x, y\) \(decimal commas\?"):
        read_spectrum_file(commas)


def test_a_spectrum_in_wavelength_is_refused_without_the_laser_and_converted_with_it(tmp_path, edge_bundle):
    """Read as Raman shift, a 785 nm spectrum's 800-1000 nm axis would be answered as some mineral: never guess."""
    from typer.testing import CliRunner

    from edge.cli import app
    from edge.model_input import read_model_input

    nm = np.linspace(790.0, 900.0, 600)
    shift = 1e7 / 785.0 - 1e7 / nm
    y = np.exp(-0.5 * ((shift - 464.0) / 4.0) ** 2) + 0.5 * np.exp(-0.5 * ((shift - 206.0) / 5.0) ** 2)
    path = tmp_path / "quartz_nm.csv"
    path.write_text("wavelength_nm,intensity\n" + "".join(f"{a:.4f},{b:.5f}\n" for a, b in zip(nm, y)))
    refused = CliRunner().invoke(app, ["classify", str(path)])
    assert refused.exit_code == 1 and "x is wavelength (nm), not Raman shift; give --laser NM" in refused.output
    read = read_model_input(path, laser_nm=785.0)
    np.testing.assert_allclose(read.spectrum.x, shift, atol=0.01)  # the file holds 4 decimals of nm
    assert abs(read.spectrum.x[np.argmax(read.spectrum.y)] - 464.0) < 1.0
    assert CliRunner().invoke(app, ["classify", str(path), "--laser", "785"]).exit_code == 0
