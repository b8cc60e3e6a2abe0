# natsfleet: `make demo` and `make test` are the two commands a new machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# Installed when pyproject.toml changes; the package itself is re-linked every
# run because a strict editable install only exposes files present at install.
STAMP  := $(VENV)/.deps-stamp
PYTEST_ARGS ?=

.PHONY: venv install test lint typecheck pytest demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $(STAMP)

venv: $(STAMP)

install: $(STAMP)
	$(PY) -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy -p natsfleet.protocols -p natsfleet.telemetry -p natsfleet.process -p natsfleet.bus -p natsfleet.client -p natsfleet.supervisor -p natsfleet.agents -p natsfleet.deploy -p natsfleet.gateway -p natsfleet.cli
	$(BIN)/mypy --strict bench/  # a bench importing another's changed function fails here, not in a run

# Two workers, a test file at a time each: most tests wait on real processes
# and servers, so two files side by side roughly halve the wall time on a
# 2-core machine (9.5 -> 5 min). PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
pytest: install
	$(BIN)/pytest $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

test: lint typecheck pytest

demo: install
	$(BIN)/natsfleet demo

bench: install
	$(PY) bench/bus_overhead.py
	$(PY) bench/llm_router.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .natsfleet
