# Two entry points (see README): `make demo` and `make test`. Both create .venv and
# install everything on first use; later runs reuse it (re-installed when pyproject.toml changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint install benchmark benchmark-baselines system-deps clean-demo

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch/torchvision first, pinned: pip takes them from this machine's local wheels
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# Debian tools for the classical baselines (ffmpeg/x265, avifenc, cjxl); never fails the build
	PYTHON=$(BIN)/python scripts/install-system-deps.sh
	touch $(INSTALLED)

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/mvarchive demo

# Lint and type checks first (about a minute from a fresh clone, seconds after), then the suite.
test: lint
	$(BIN)/python -m pytest

# ruff (lint + import order) and mypy, configured in pyproject.toml; also a pre-commit hook.
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/mypy

benchmark: $(INSTALLED)
	$(BIN)/python benchmarks/codec_speed.py

benchmark-baselines: $(INSTALLED)
	$(BIN)/python benchmarks/baselines_rd.py

system-deps:
	PYTHON=$(BIN)/python scripts/install-system-deps.sh

clean-demo:
	rm -rf demo-output .mvarchive
