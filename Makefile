# Two set-up commands (see README):
#   make run    create .venv, install longtail (CPU torch first), run the main job (about 13
#               minutes: three methods on Fashion-MNIST exp-100, cpu preset, beside the paper's
#               CIFAR-10 numbers); then use .venv/bin/longtail
#   make test   create .venv, install longtail with its dev tools, lint and run the tests
# Override the torch requirement with e.g.  make test TORCH_SPEC="torch==2.5.1"
# (the default pins the CPU build that this machine installs from local disk; a plain
# `torch` requirement would pull a multi-GB CUDA build).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: run fashion-mnist test lint bench clean docs package-check

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the main job needs longtail and its report's plotting only; the tests add every extra below
$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[bench]"
	touch $@

# Fashion-MNIST: the Debian package when we may install it, else the loader downloads it.
# Installing a system package is said in one line (apt-get's own output goes to APT_LOG);
# nothing is printed when the package is already there.
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
APT_LOG ?= $${TMPDIR:-/tmp}/longtail-apt-fashion-mnist.log
MAIN_OUT ?= results/main

fashion-mnist:
	@if [ -d $(FMNIST_DIR) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make: installing the Debian package dataset-fashion-mnist with apt-get, as root (log: $(APT_LOG))"; \
		apt-get install -y -q dataset-fashion-mnist >$(APT_LOG) 2>&1 || \
			echo "make: apt-get failed (see $(APT_LOG)); longtail will download Fashion-MNIST"; \
	else \
		echo "Fashion-MNIST not installed system-wide; longtail will download it"; \
	fi

run: $(VENV)/.installed fashion-mnist
	$(BIN)/longtail bench table1 --dataset fashion-mnist --preset cpu \
		--methods erm,ldam-drw,mm-drw --settings exp100 --jobs 3 --out $(MAIN_OUT)
	@echo "make run: one seed per method (seed 0), so no claim here has an interval (a"
	@echo "difference under about 1 point is within one seed's noise on this data): the 3-seed"
	@echo "Table 1 with paired intervals is results/table1-fashion-mnist-cpu. The cpu preset"
	@echo "(cnn5, 60 epochs) was chosen by convergence on a validation split"
	@echo "(docs/preset-selection.md). The paper's numbers are CIFAR-10 with ResNet-32 for 200"
	@echo "epochs: compare which method wins, not the values."

# the tests also exercise the optional integrations (Lightning, transformers, TensorBoard,
# submitit, Ray) and build the documentation site, so they install every extra
TEST_EXTRAS ?= dev,bench,regression,images,hf-datasets,torchmetrics,lightning,transformers,tensorboard,launchers,docs

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[$(TEST_EXTRAS)]"
	touch $@

test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_train.py

# the documentation site, into site/: mkdocs.yml's hooks (docs/hooks.py) write the loss pages
# from the registry at build time; --strict makes any warning (a broken link, a docstring that
# does not parse) an error
SITE ?= site

docs: $(VENV)/.installed-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d $(SITE)

# the packages users install: build the sdist and, from it, the wheel (in an isolated build
# environment, as pip would), check both with twine, then install the wheel into a fresh venv
# (the CPU torch first, so that pip does not resolve a CUDA build) and run it from outside the
# repository
DIST ?= dist

package-check: $(VENV)/.installed-test
	rm -rf $(DIST)
	$(BIN)/python -m build --outdir $(DIST) .
	$(BIN)/twine check --strict $(DIST)/*
	$(BIN)/python scripts/check_dist.py $(DIST)
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "make: installing the wheel into a fresh venv in $$tmp"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install -q "$(TORCH_SPEC)"; \
	"$$tmp/venv/bin/python" -m pip install -q $(DIST)/longtail-*.whl; \
	cd "$$tmp"; \
	"$$tmp/venv/bin/longtail" losses --family imbalance; \
	"$$tmp/venv/bin/python" -c "import longtail, sys; assert longtail.__file__.startswith('$$tmp'), longtail.__file__; print('installed', longtail.__version__, 'at', longtail.__file__)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache $(SITE) $(DIST)
