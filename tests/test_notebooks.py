"""Every tutorial notebook (jupytext percent .py) executes top to bottom with the smoke profile.

A failing cell fails the test with the cell's number, its first lines and the error (not only
nbclient's traceback); `test_a_failing_cell_is_reported` proves that on a notebook written here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.py"))


def run_notebook(path: Path, workdir: Path, monkeypatch) -> None:
    """Execute the jupytext notebook `path` in `workdir`; AssertionError naming the first failing cell."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("DLAPPS_NOTEBOOK_PROFILE", "smoke")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(path.parents[1]), os.environ.get("PYTHONPATH", "")]))
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellExecutionError:
        pass  # execution stops at the failing cell, whose error output is reported below
    failures = [(number, cell, output) for number, cell in enumerate(notebook.cells, start=1)
                for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    if failures:
        number, cell, output = failures[0]
        first_lines = "\n    ".join(cell.source.splitlines()[:3])
        raise AssertionError(f"{path.name}: cell {number} failed with {output['ename']}: {output['evalue']}\n"
                             f"    {first_lines}")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)


def test_a_failing_cell_is_reported(tmp_path, monkeypatch):
    notebook = tmp_path / "broken.py"
    notebook.write_text("# %% [markdown]\n# A lesson with a mistake.\n\n"
                        "# %%\nanswer = 41\n\n"
                        "# %%\nassert answer == 42, 'the claim in the prose'\n\n"
                        "# %%\nprint('never reached')\n", encoding="utf-8")
    with pytest.raises(AssertionError, match=r"broken\.py: cell 3 failed with AssertionError: the claim in the prose"
                                             r"\n    assert answer == 42"):
        run_notebook(notebook, tmp_path, monkeypatch)
    # ... and a notebook without a mistake passes.
    notebook.write_text("# %%\nanswer = 42\n\n# %%\nassert answer == 42\n", encoding="utf-8")
    run_notebook(notebook, tmp_path, monkeypatch)
