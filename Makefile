# `make demo` and `make test` each create or refresh .venv (when pyproject.toml changes) and then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgecv-installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgecv train --data digits --out runs/demo --overwrite
	$(BIN)/edgecv export runs/demo
	$(BIN)/edgecv quantize runs/demo
	$(BIN)/edgecv bench runs/demo --seconds 0.5

test: $(STAMP)
	$(BIN)/ruff check edgecv tests benchmarks examples
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check edgecv tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/quantize_flavours.py
	$(BIN)/python benchmarks/inference.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
