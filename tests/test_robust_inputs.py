"""Awkward inputs of the tabular and text tasks (issue 12): CSV dialects and numbers, command-line
rows, texts without words, non-UTF-8 files and files of texts. Each kind is tested with the shared
case of ../shared/cases/robustness (skipped when absent) and with cases written here, against the
committed models in saved_models/."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dlapps
from dlapps import config
from dlapps.errors import UserError
from dlapps.runs import load_model, model_config

REPO = Path(__file__).resolve().parents[1]
CASES = REPO.parent / "shared" / "cases" / "robustness"
HEADER = ("longitude,latitude,housing_median_age,total_rooms,total_bedrooms,population,households,"
          "median_income,median_house_value,ocean_proximity")
PLAIN_ROWS = ["-122.23,37.88,41,880,129,322,126,8.3252,452600,NEAR BAY",
              "-118.30,34.05,30,2100,450,1200,420,3.1000,210000,<1H OCEAN",
              "-121.50,38.60,15,3000,600,1500,550,2.5000,95000,INLAND"]
INLAND = "-121.50,38.60,15,3000,600,1500,550,2.5000,INLAND"  # the 9 features of the last row


def _case(name: str) -> Path:
    if not CASES.is_dir():
        pytest.skip(f"shared robustness cases not found at {CASES}")
    return CASES / name


def _saved(task_name: str):
    folder = REPO / "saved_models" / task_name
    if not (folder / "model.keras").exists():
        pytest.skip(f"no committed model at {folder}")
    task = dlapps.get_task(task_name)
    model, info = load_model(folder)
    cfg, _ = model_config(task, folder / "model.keras", {})
    return task, model, info, cfg


@pytest.fixture(scope="module")
def tabular():
    return _saved("tabular")


@pytest.fixture(scope="module")
def sentiment():
    return _saved("sentiment")


@pytest.fixture(scope="module")
def spam():
    return _saved("spam")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "dlapps", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)


# ----------------------------------------------------------------------------- CSV dialects and numbers
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _own_dialects(tmp_path) -> dict[str, str]:
    """The plain rows written in other dialects: ';' with decimal commas, tab, '|', upper-case
    header names with an extra column, and ' '-grouped thousands."""
    semi = [HEADER.replace(",", ";")] + [r.replace(",", ";").replace(".", ",") for r in PLAIN_ROWS]
    tab = [HEADER.replace(",", "\t")] + [r.replace(",", "\t") for r in PLAIN_ROWS]
    pipe = [HEADER.replace(",", "|")] + [r.replace(",", "|") for r in PLAIN_ROWS]
    upper = ["ID," + HEADER.upper()] + [f"{i},{r}" for i, r in enumerate(PLAIN_ROWS)]
    spaced = [HEADER] + [r.replace("2100", "2 100").replace("1500", "1 500") for r in PLAIN_ROWS]
    return {"semicolon_decimal_comma": _write(tmp_path, "a.csv", "\n".join(semi) + "\n"),
            "tab": _write(tmp_path, "b.tsv", "\n".join(tab) + "\n"),
            "pipe": _write(tmp_path, "c.csv", "\n".join(pipe) + "\n"),
            "upper_case_header_and_extra_column": _write(tmp_path, "d.csv", "\n".join(upper) + "\n"),
            "space_thousands": _write(tmp_path, "e.csv", "\n".join(spaced) + "\n")}


@pytest.mark.parametrize("case", ["shared:tab_semicolon.csv", "shared:tab_thousands.csv",
                                  "semicolon_decimal_comma", "tab", "pipe",
                                  "upper_case_header_and_extra_column", "space_thousands"])
def test_csv_dialects_and_numbers_predict_like_the_plain_file(tabular, tmp_path, case, capsys):
    task, model, info, cfg = tabular
    plain = _write(tmp_path, "plain.csv", "\n".join([HEADER, *PLAIN_ROWS]) + "\n")
    path = str(_case(case.split(":")[1])) if case.startswith("shared:") else _own_dialects(tmp_path)[case]
    expected = task.predict(model, [plain], info, cfg, {})
    assert task.predict(model, [path], info, cfg, {}) == expected
    assert len(set(expected)) == 3  # three different predictions: no column read as missing
    if case == "upper_case_header_and_extra_column":
        assert "column(s) ID not used by the model: ignored" in capsys.readouterr().err


@pytest.mark.parametrize("case, missing", [
    ("shared:tab_few_columns.csv", "total_rooms, total_bedrooms, population, households, median_income, "
                                   "ocean_proximity"),
    ("no_category", "ocean_proximity"),
    ("misspelled", "median_income"),
])
def test_a_prediction_file_missing_model_columns_is_an_error_naming_them(tabular, tmp_path, case, missing):
    task, model, info, cfg = tabular
    if case.startswith("shared:"):
        path = str(_case(case.split(":")[1]))
    elif case == "no_category":
        path = _write(tmp_path, "x.csv", HEADER.rsplit(",", 1)[0] + "\n" + PLAIN_ROWS[0].rsplit(",", 1)[0] + "\n")
    else:
        path = _write(tmp_path, "y.csv", HEADER.replace("median_income", "income") + "\n" + PLAIN_ROWS[0] + "\n")
    with pytest.raises(UserError, match=f"missing the model's column\\(s\\) {missing};"):
        task.predict(model, [path], info, cfg, {})


def test_unseen_categories_and_bad_cells_are_counted_in_warnings(tabular, tmp_path, capsys):
    task, model, info, cfg = tabular
    rows = [HEADER, PLAIN_ROWS[0].replace("NEAR BAY", "MOON"), PLAIN_ROWS[1].replace("<1H OCEAN", "MOON"),
            PLAIN_ROWS[2].replace(",15,", ",n.a.,")]
    out = task.predict(model, [_write(tmp_path, "z.csv", "\n".join(rows) + "\n")], info, cfg, {})
    err = capsys.readouterr().err
    assert len(out) == 3
    assert "categories not seen in training (read as unknown): ocean_proximity: 2 row(s) ('MOON')" in err
    assert "column 'housing_median_age': 1 cell(s) are not numbers (e.g. 'n.a.'); read as missing" in err


def test_training_reads_separated_thousands_as_numbers_and_reports_dropped_rows(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rooms = rng.integers(100, 5000, size=200)
    frame = pd.DataFrame({"rooms": [f"{r:,}" if i % 40 == 0 else str(r) for i, r in enumerate(rooms)],
                          "kind": rng.choice(["a", "b"], size=200),
                          "price": [("" if i in (3, 7, 11) else str(2 * r)) for i, r in enumerate(rooms)]})
    path = tmp_path / "houses.csv"
    frame.to_csv(path, index=False)
    assert sum("," in r for r in frame["rooms"]) >= 3  # some cells really carry a separator
    task = dlapps.get_task("tabular")
    data = task.load_data(config.resolve(task, "smoke", {"data": str(path), "target": "price"}))
    assert data.info["kinds"]["rooms"] == "numeric"  # not a category of 200 levels
    assert data.info["dropped_rows_without_target"] == 3
    assert "dlapps: note: 3 of 200 rows have no value in the target column 'price': dropped" in capsys.readouterr().err


def test_evaluate_checks_the_files_columns_against_the_model(tabular, tmp_path, capsys):
    from dlapps import training

    task, model, info, cfg = tabular
    folder = REPO / "saved_models" / "tabular"
    extra = _write(tmp_path, "extra.csv", "\n".join(["note," + HEADER] + [f"x,{r}" for r in PLAIN_ROWS]) + "\n")
    model_file = folder / "model.keras"
    metrics = training.evaluate(task, folder, model_config(task, model_file, {"data": extra})[0], whole_file=True)
    assert metrics["n"] == 3 and metrics["r2"] > 0.5
    assert "column(s) note not used by the model: ignored" in capsys.readouterr().err
    few = _write(tmp_path, "few.csv", "latitude,median_house_value\n37.88,452600\n34.05,210000\n")
    with pytest.raises(UserError, match="lack the model's column\\(s\\) longitude, housing_median_age"):
        training.evaluate(task, folder, model_config(task, model_file, {"data": few})[0], whole_file=True)


# ----------------------------------------------------------------------------- command-line rows
@pytest.mark.parametrize("row", [
    '-121.50,38.60,15,"3,000",600,"1,500",550,2.5000,INLAND',      # quoted thousands
    "-121.50,38.60,15,3000,600,1500,550,2.5000,95000,INLAND",      # a row copied from the file (target in place)
    "-121.50,38.60,15,3000,600,1500,550,2.5000,INLAND,95000",      # the target appended
    "-121.50;38.60;15;3000;600;1500;550;2,5000;INLAND",             # ';' with a decimal comma
])
def test_command_line_rows_in_every_layout_predict_the_same(tabular, row):
    task, model, info, cfg = tabular
    assert task.predict(model, [row], info, cfg, {}) == task.predict(model, [INLAND], info, cfg, {})


@pytest.mark.parametrize("row, message", [
    ("-121.50,38.60,15,3000,600,1500,550,2.5000,INLAND,foo", "not a plausible target 'median_house_value'"),
    ("38.60,15,3000,600,1500,550,2.5000,INLAND,95000,-121.50", "not a plausible target"),  # shifted
    ("-121.50,38.60,15,3000,600,1500,550,INLAND", "has 8 fields; expected 9"),
    ("-121.50,38.60,fifteen,3000,600,1500,550,2.5000,INLAND", "'housing_median_age' is a number column"),
])
def test_bad_command_line_rows_are_errors_not_shifted_rows(tabular, row, message):
    task, model, info, cfg = tabular
    with pytest.raises(UserError, match=message):
        task.predict(model, [row], info, cfg, {})


def test_cli_row_beginning_with_a_minus_and_options_on_either_side():
    """`dlapps predict tabular "-121.5,..."` with --model before or after (shared case's INLAND row)."""
    _case("tab_plain.csv")
    before = _cli("predict", "tabular", "--model", "saved_models/tabular", INLAND)
    after = _cli("predict", "tabular", INLAND, "--model", "saved_models/tabular", str(CASES / "tab_few_columns.csv"))
    assert before.returncode == 0, before.stderr
    assert before.stdout.startswith("median_house_value = ")
    assert after.returncode == 2 and "Traceback" not in after.stderr
    assert after.stderr.strip().endswith("(the target 'median_house_value' is optional)")


# ----------------------------------------------------------------------------- texts
NO_WORDS = ["", ":)", "!!!", "... ?", " "]


@pytest.mark.parametrize("task_name", ["sentiment", "spam"])
def test_texts_without_words_get_the_documented_answer_alone_or_in_a_batch(task_name, request):
    task, model, info, cfg = request.getfixturevalue(task_name)
    alone = [task.predict(model, [text], info, cfg, {})[0] for text in NO_WORDS]
    batch = task.predict(model, NO_WORDS + ["a really wonderful film , great fun"], info, cfg, {})
    assert all(line.endswith("(no words)") for line in alone)
    assert not batch[-1].endswith("(no words)")
    if task_name == "sentiment":  # no tokens: the model's answer for an empty sequence, the same for all
        assert len({line.split()[1] for line in alone}) == 1
    assert [line.split()[1] for line in alone] == [line.split()[1] for line in batch[:-1]]


def test_evaluate_a_file_of_punctuation_only_texts(sentiment, tmp_path):
    from dlapps import training

    task, model, info, cfg = sentiment
    folder = REPO / "saved_models" / "sentiment"
    own = _write(tmp_path, "faces.tsv", "Label\tText\npositive\t:-)\nnegative\t:-(\npositive\t<3\n")
    paths = [own] + ([str(CASES / "sent_punct_only.tsv")] if CASES.is_dir() else [])
    for path in paths:
        cfg_for_file = model_config(task, folder / "model.keras", {"data": path})[0]
        metrics = training.evaluate(task, folder, cfg_for_file, whole_file=True)
        assert metrics["n"] >= 3 and 0 <= metrics["accuracy"] <= 1


def test_cli_sentiment_smiley_and_punctuation_file():
    _case("sent_punct_only.tsv")
    done = _cli("predict", "sentiment", ":)", str(CASES / "sent_punct_only.tsv"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all(line.endswith("(no words)") for line in lines)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("task_name", ["sentiment", "spam", "translation"])
def test_files_of_texts_are_read_and_non_utf8_files_are_errors(task_name, tmp_path, capsys):
    task, model, info, cfg = _saved(task_name)
    texts = ["a dog runs on the beach .", "a man is reading a newspaper ."]
    column = {"sentiment": "Sentence", "spam": "MESSAGE", "translation": "EN"}[task_name]
    files = [_write(tmp_path, "t.txt", "\n".join(texts) + "\n"),
             _write(tmp_path, "t.tsv", f"id\t{column}\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts))),
             _write(tmp_path, "t.csv", f"{column},id\n" + "".join(f'"{t}",{i}\n' for i, t in enumerate(texts)))]
    expected = task.predict(model, texts, info, cfg, {})
    for path in files:
        assert task.predict(model, [path], info, cfg, {}) == expected, path
    missing = str(tmp_path / "mistyped.txt")
    assert len(task.predict(model, [missing], info, cfg, {})) == 1
    assert f"no file {missing}: read as a text itself" in capsys.readouterr().err
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("a man in a café .\n".encode("latin-1"))
    shared = [str(CASES / "trans_latin1.txt")] if CASES.is_dir() else []
    for path in [str(latin1), *shared]:
        with pytest.raises(UserError, match="not UTF-8 text"):
            task.predict(model, [path], info, cfg, {})


def test_cli_translation_of_a_latin1_file_is_exit_2():
    path = _case("trans_latin1.txt")
    done = _cli("predict", "translation", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "not UTF-8 text" in done.stderr and done.stdout == ""


@pytest.mark.parametrize("task_name, settings", [
    ("sentiment", {}),                                                   # final LSTM state
    ("sentiment", {"pooling": "max", "conv_filters": 4, "rnn": "gru"}),  # max over time + CNN branch
    ("spam", {"model": "sequence"}),                                     # embedding + Conv-free BiGRU
])
def test_word_level_models_score_batches_of_texts_without_tokens(task_name, settings):
    """A fresh (untrained) model of each word-level kind: a batch of texts without tokens (an
    empty sequence after tokenization) gets the model's empty-sequence answer, as in a batch."""
    from dlapps.data.text import text_probabilities

    task = dlapps.get_task(task_name)
    cfg = config.resolve(task, "smoke", settings)
    vocabulary = ["the", "film", "good", "bad", "win", "cash"]
    info = {"vocabulary": vocabulary, "word_vocabulary": vocabulary, "class_names": ["a", "b"]}
    model = task.build_model(cfg, info)
    alone = text_probabilities(model, [":)", "", "!!!"])
    mixed = text_probabilities(model, [":)", "the good film", "", "!!!"])
    assert np.all(np.isfinite(alone)) and np.ptp(alone) < 1e-6
    np.testing.assert_allclose(alone, mixed[[0, 2, 3]], atol=1e-6)
