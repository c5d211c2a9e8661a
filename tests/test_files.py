"""Reading the tables and text files users give: dialects, number formats, encodings, empty values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlapps.data.files import read_table, sniff_delimiter
from dlapps.data.text import read_labelled_text, texts_from_inputs
from dlapps.errors import UserError

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases" / "robustness"
ROWS = [["a", "b", "place"], ["-122.23", "8.3252", "NEAR BAY"], ["-118.3", "3.1", "INLAND"]]
EXPECTED_A, EXPECTED_B = [-122.23, -118.3], [8.3252, 3.1]


def write_rows(path: Path, sep: str, rows=ROWS, encoding="utf-8") -> Path:
    path.write_text("\n".join(sep.join(row) for row in rows) + "\n", encoding=encoding)
    return path


@pytest.mark.parametrize("sep, suffix", [(",", ".csv"), (";", ".csv"), ("\t", ".tsv"), ("\t", ".csv"), ("|", ".txt")])
def test_delimiters_are_sniffed(tmp_path, sep, suffix):
    path = write_rows(tmp_path / f"t{suffix}", sep)
    assert sniff_delimiter(path) == sep
    frame = read_table(path)
    assert list(frame.columns) == ["a", "b", "place"]
    np.testing.assert_allclose(frame["a"], EXPECTED_A)
    np.testing.assert_allclose(frame["b"], EXPECTED_B)
    assert list(frame["place"]) == ["NEAR BAY", "INLAND"]


def test_decimal_commas_with_semicolons(tmp_path):
    rows = [["a", "b", "place"], ["-122,23", "8,3252", "NEAR BAY"], ["-118,3", "3,1", "INLAND"]]
    frame = read_table(write_rows(tmp_path / "t.csv", ";", rows))
    np.testing.assert_allclose(frame["a"], EXPECTED_A)
    np.testing.assert_allclose(frame["b"], EXPECTED_B)


def test_european_thousands_and_decimal_comma(tmp_path):
    rows = [["rooms", "income"], ["1.234,5", "2,5"], ["880", "3"]]
    frame = read_table(write_rows(tmp_path / "t.csv", ";", rows))
    np.testing.assert_allclose(frame["rooms"], [1234.5, 880])
    np.testing.assert_allclose(frame["income"], [2.5, 3])


def test_thousands_separators_keep_a_column_numeric(tmp_path):
    """A few `"2,100"` cells must not turn a numeric column into text categories."""
    path = tmp_path / "t.csv"
    path.write_text('rooms,value\n880,452600\n"2,100","210,000"\n"1 500",95000\n3000,\n', encoding="utf-8")
    frame = read_table(path)
    np.testing.assert_allclose(frame["rooms"], [880, 2100, 1500, 3000])
    assert frame["value"].iloc[:3].tolist() == [452600, 210000, 95000] and np.isnan(frame["value"].iloc[3])


def test_a_text_column_stays_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("code,n\n007,1\nA12,2\n", encoding="utf-8")
    frame = read_table(path)
    assert list(frame["code"]) == ["007", "A12"]


@pytest.mark.parametrize("name", ["tab_plain.csv", "tab_semicolon.csv", "tab_thousands.csv"])
def test_shared_housing_cases_read_the_same(name):
    if not CASES.is_dir():
        pytest.skip("../shared/cases not found")
    plain = read_table(CASES / "tab_plain.csv")
    other = read_table(CASES / name)
    assert list(other.columns) == list(plain.columns)
    numeric = [c for c in plain.columns if c != "ocean_proximity"]
    np.testing.assert_allclose(other[numeric].to_numpy(float), plain[numeric].to_numpy(float))


def test_bom_is_accepted_and_latin1_is_refused(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffa,b\n1,2\n".encode("utf-8"))
    assert list(read_table(bom).columns) == ["a", "b"]
    latin = write_rows(tmp_path / "latin.csv", ",", [["a", "b"], ["Müller", "1"]], encoding="latin-1")
    with pytest.raises(UserError, match="not UTF-8"):
        read_table(latin)


@pytest.mark.parametrize("content, message", [("", "is empty"), ("a,b\n", "no rows")])
def test_empty_tables(tmp_path, content, message):
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_table(path)


def test_texts_from_txt_tsv_csv_and_plain_strings(tmp_path):
    (tmp_path / "a.txt").write_text("first text\n\nsecond text\n", encoding="utf-8")
    (tmp_path / "b.tsv").write_text("label\tSentence\n1\tgreat film\n0\tdull\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text('Text\n"hello, world"\n', encoding="utf-8")
    texts = texts_from_inputs([str(tmp_path / "a.txt"), str(tmp_path / "b.tsv"), "just a string",
                               str(tmp_path / "c.csv")], text_columns=("text", "sentence"))
    assert texts == ["first text", "second text", "great film", "dull", "just a string", "hello, world"]


def test_texts_file_errors(tmp_path):
    (tmp_path / "x.tsv").write_text("label\tbody\n1\tx\n", encoding="utf-8")
    with pytest.raises(UserError, match="no text column"):
        texts_from_inputs([str(tmp_path / "x.tsv")], text_columns=("text",))
    (tmp_path / "l.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        texts_from_inputs([str(tmp_path / "l.txt")])


def test_labelled_text_headers_in_any_case(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("LABEL\tText\nham\thello\nspam\tWIN now\n", encoding="utf-8")
    table = read_labelled_text(path, ["ham", "spam"])
    assert table.texts == ["hello", "WIN now"] and table.labels.tolist() == [0, 1]
