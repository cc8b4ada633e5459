# linefleet: every target sets itself up (virtualenv, packages, broker) on a fresh machine.
# Packages come from the committed lock (requirements-dev.txt, with hashes), never from whatever
# is newest today; `make lock` re-resolves it from pyproject.toml's ranges.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
LOCK   := requirements-dev.txt
STAMP  := $(VENV)/.installed
PYTEST := $(BIN)/pytest -q -p no:cacheprovider
export MLFLOW_DISABLE_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup services test lint typecheck unit demo bench soak lock clean

setup: $(STAMP) services

services:
	@command -v mosquitto >/dev/null 2>&1 || bash .ci/install-mosquitto
	@bash .ci/install-brokers
	@command -v docker-registry >/dev/null 2>&1 || bash .ci/install-docker-registry
	@command -v chromium >/dev/null 2>&1 || bash .ci/install-chromium

# The lock pins pip and setuptools too; the project itself is installed from the checkout
# without build isolation, so nothing unpinned is fetched. pip compiles the bytecode of what it
# installs on one core; compileall does the same on every core (half the wall time on two).
# Like pip, it leaves a file that does not compile on 3.11 as source (a torch test helper);
# the packages' own test suites (`*/tests/*`, a fifth of the files) are never imported here.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile --require-hashes -r $(LOCK)
	$(BIN)/python -m compileall -q -j 0 -x 'site-packages/.*/tests/' $(VENV)/lib >/dev/null || true
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python .ci/lockcheck.py $(LOCK)
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The two runs side by side (one core each), each with its own cache: sharing one, they
# overwrote each other's entries and neither was ever warm.
typecheck: $(STAMP)
	@mkdir -p .mypy_cache; \
	$(BIN)/mypy > .mypy_cache/src.out 2>&1 & src=$$!; \
	$(BIN)/mypy --config-file tests/mypy.ini --cache-dir .mypy_cache/tests tests \
	  > .mypy_cache/tests.out 2>&1; tests=$$?; wait $$src; src=$$?; \
	echo "$(BIN)/mypy"; cat .mypy_cache/src.out; \
	echo "$(BIN)/mypy --config-file tests/mypy.ini tests"; cat .mypy_cache/tests.out; \
	[ $$src -eq 0 ] && [ $$tests -eq 0 ]

# The fast inner loop: pure unit tests (no broker, no database server, no MLflow, no demo),
# spread over the machine's cores.
unit: $(STAMP)
	$(PYTEST) -n auto -m "not integration and not acceptance and not slow" tests/unit

# Everything: lint, types, and every test (slow ones included), spread over the cores
# (each test starts its own brokers and servers on free ports, so workers never share one).
# `loadgroup` here is tests/conftest.py's scheduler: tests sharing a module fixture or a
# session broker stay on one worker, and the slow tests start first. The suite waits more than
# it computes (brokers booting, leader elections, reconnects, timeouts: ~420 CPU seconds in a
# 625 s run on 2 cores), so it runs more workers than cores (TEST_WORKERS=auto: one per core).
TEST_WORKERS ?= 4
test: setup lint typecheck
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder

demo: setup
	$(BIN)/linefleet demo --state-dir .demo

bench: setup
	$(BIN)/python bench/run.py

# The full soak (docs/reliability.md): 200 simulated devices + 4 real edge processes, faults.
soak: setup
	$(BIN)/python -m tests.reliability.soak --devices 200 --edges 4 --cycles 2 --write-doc docs/reliability.md

# Re-resolve requirements-*.txt from pyproject.toml (UPGRADE=1 takes the newest releases).
lock: $(STAMP)
	BIN=$(BIN) UPGRADE=$(UPGRADE) bash .ci/lock

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache
