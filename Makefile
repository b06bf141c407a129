# `make demo` and `make test` each create or refresh .venv (when pyproject.toml changes) and then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgecv-installed

.PHONY: demo test test-all lint bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,openvino,executorch,timm,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgecv pipeline --data digits --model quick --out runs/demo-study

# the report's rendering test screenshots it with Debian's chromium
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (used to check that report.html renders offline)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# the tests marked slow (killed and rerun pipelines and trainings, study resumption, HTTP load, determinism) run in
# test-all
test: $(STAMP) chromium
	$(BIN)/ruff check edgecv tests tools benchmarks examples
	$(BIN)/python -m pytest -q -m "not slow" --durations=15

test-all: $(STAMP) chromium
	$(BIN)/ruff check edgecv tests tools benchmarks examples
	$(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check edgecv tests tools benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/quantize_flavours.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/int8_limit.py
	$(BIN)/python benchmarks/fp32_floor.py
	$(BIN)/python benchmarks/real_size.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
