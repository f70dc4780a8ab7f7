# Two set-up commands (see README):
#   make run    create .venv, install longtail (CPU torch first), run the main job
#   make test   create .venv, install longtail with its dev tools, lint and run the tests
# Override the torch requirement with e.g.  make test TORCH_SPEC="torch==2.5.1"
# (the default pins the CPU build that this machine installs from local disk; a plain
# `torch` requirement would pull a multi-GB CUDA build).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/longtail losses
	$(BIN)/python benchmarks/bench_losses.py --quick

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_losses.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
