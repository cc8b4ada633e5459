# linefleet: every target sets itself up (virtualenv, packages, broker) on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test lint typecheck unit demo bench soak clean

setup: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || bash .ci/install-chromium

$(STAMP): pyproject.toml
	@command -v mosquitto >/dev/null 2>&1 || bash .ci/install-mosquitto
	@command -v docker-registry >/dev/null 2>&1 || bash .ci/install-docker-registry
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

demo: setup
	$(BIN)/linefleet demo --state-dir .demo

bench: setup
	$(BIN)/python bench/run.py

# The full soak (docs/reliability.md): 200 simulated devices + 4 real edge processes, faults.
soak: setup
	$(BIN)/python -m tests.reliability.soak --devices 200 --edges 4 --cycles 2 --write-doc docs/reliability.md

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache
