# Each target sets up what it needs from a fresh clone: a virtual environment with edgeevo in it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_CONFIG ?= examples/quickstart.toml
DEMO_STATE ?= runs/quickstart/state.db
DEMO_RUNS ?= runs/quickstart

.PHONY: demo test lint clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edgeevo serve --config $(DEMO_CONFIG)
	$(BIN)/edgeevo pareto --state $(DEMO_STATE) \
		--plot $(DEMO_RUNS)/front.png --html $(DEMO_RUNS)/report
	$(BIN)/edgeevo pareto --state $(DEMO_STATE) --format csv --out $(DEMO_RUNS)/front.csv
	$(BIN)/edgeevo pareto --state $(DEMO_STATE) --format json --out $(DEMO_RUNS)/front.json

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-demo:
	rm -rf runs/quickstart
