# Each target builds its own virtual environment in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export ADVREC_DATA_DIR ?= $(abspath ../shared/datasets)

.PHONY: setup test demo bench lint clean

$(BIN)/advrec: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $(BIN)/advrec

setup: $(BIN)/advrec

test: setup
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/advrec run examples/handson.yaml

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/pip install --quiet -r requirements/bench.txt
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
