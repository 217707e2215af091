# Every target sets up what it needs itself; re-running is quick when nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# pip's warnings about local mirrors that this machine lacks are noise; real errors still show.
PIP = $(PY) -m pip install --quiet --disable-pip-version-check 2> >(grep -v 'is ignored: it is neither' >&2)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: replay test unit lint format typecheck synth bench storm clean wheel bytecode

-include infra/infra.mk

$(STAMP): pyproject.toml requirements/lambda.txt requirements/dev.txt requirements/infra.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/dev.txt -r requirements/infra.txt
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

# The package's bytecode, as pip writes it for an installed package (an editable install gets none, and
# PYTHONDONTWRITEBYTECODE stops Python writing it): every cold start would compile the source otherwise.
# compileall skips what is up to date, so this is quick.
bytecode: $(STAMP)
	@$(PY) -m compileall -q -j 0 lambda/pagerduty_bridge

## replay: replay every sample in events/ on a fresh embedded store, printing what PagerDuty receives
replay: $(STAMP) bytecode
	@rm -f .pagerduty-bridge/replay-demo.db
	$(VENV)/bin/pagerduty-bridge replay --state .pagerduty-bridge/replay-demo.db events/

## test: the whole suite (unit, integration, infra, lint)
test: $(STAMP) node_modules/.installed lint
	$(PY) -m pytest -n 2 --dist loadgroup -q

## unit: the fast loop while editing (no network, no synth, no lint): a few seconds
unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

## lint: ruff and mypy
lint: $(STAMP)
	$(VENV)/bin/ruff check lambda infra tests
	$(VENV)/bin/ruff format --check lambda infra tests
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format lambda infra tests
	$(VENV)/bin/ruff check --fix lambda infra tests

clean:
	rm -rf $(VENV) node_modules cdk.out .pagerduty-bridge .pytest_cache .mypy_cache .ruff_cache build dist

## wheel: the distribution (pagerduty_bridge, pagerduty_bridge_cdk, samples and pins as package data) in dist/
wheel: $(STAMP)
	@rm -rf build dist
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w dist .
	@rm -rf build

## bench: the figures against a minimal reference bridge, side by side (a report, not a test: machines are shared)
bench: $(STAMP) bytecode
	$(PY) tests/benchmarks/bench.py

## storm: 1,000 notifications across 200 alarms against a rate-limited PagerDuty stand-in, paced
storm: $(STAMP) bytecode
	$(PY) tests/benchmarks/storm.py
