# The two commands of the README. Each works on a fresh machine with only Python >= 3.11:
# it creates .venv if missing, installs dlapps with what it needs, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes for `make test` (CI has 2 cores); TEST_WORKERS=0 runs the tests in one process
TEST_WORKERS ?= 2

.PHONY: demo test notebooks clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m dlapps.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --dist loadgroup

notebooks: $(STAMP)
	$(BIN)/jupytext --to ipynb --execute notebooks/*.py  # executed: figures and numbers inline

clean:
	rm -rf $(VENV) runs .pytest_cache
