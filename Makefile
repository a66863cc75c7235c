# Two commands set everything up on a fresh machine:
#   make run    create .venv if missing, install, migrate, create a development key, install OVOS (its own
#               virtualenv, cached) and serve on 127.0.0.1:8000 with a local ovos-core behind the gateway
#   make test   install everything the suite needs (system packages included), then lint, type-check, test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system-packages lint typecheck pytest clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# The gateway starts ovos-messagebus and ovos-core from the OVOS virtualenv (MEDIA_GATEWAY_OVOS_VENV), unless
# the environment points it at an OVOS already running (MEDIA_GATEWAY_OVOS_BUS_URL) or names its own.
run: $(STAMP)
	$(BIN)/media-gateway migrate
	$(BIN)/media-gateway keys create --name development --output-file --if-missing
	@if [[ -z "$${MEDIA_GATEWAY_OVOS_BUS_URL:-}$${MEDIA_GATEWAY_OVOS_VENV:-}" ]]; then \
	    export MEDIA_GATEWAY_OVOS_VENV="$$(bash scripts/install-ovos.sh)"; \
	fi; exec $(BIN)/media-gateway serve

system-packages:
	bash scripts/install-system-packages.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

test: system-packages $(STAMP) lint typecheck
	bash scripts/install-opa.sh > /dev/null
	bash scripts/install-compose-check.sh > /dev/null
	bash scripts/install-promtool.sh > /dev/null
	bash scripts/install-kafka.sh > /dev/null
	bash scripts/install-ovos.sh > /dev/null
	bash scripts/install-node-clients.sh > /dev/null
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
