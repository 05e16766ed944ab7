# fedmodel: `make demo` and `make test` set themselves up (a .venv with pinned
# installs) on a fresh machine. torch comes first, pinned at the lock file's
# version (from PyPI on Linux that wheel still brings its CUDA libraries).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export RAY_USAGE_STATS_ENABLED := 0
export FLWR_TELEMETRY_ENABLED := 0

.PHONY: help install demo smoke test test-fast lint bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

install: $(STAMP) ## a .venv with pinned installs (torch first)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

demo: install ## the default federated simulation (7 to 25 min on 2 cores, by machine)
	$(BIN)/fedmodel simulate

smoke: install ## a quick end-to-end check (fedmodel simulate debug=smoke)
	$(BIN)/fedmodel simulate debug=smoke

test: install ## the whole test suite, as CI runs it (two workers, a file each)
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder; status=$$?; [ $$status -ne 5 ] || echo 'pytest collected no tests'; exit $$status

test-fast: install ## the tests not marked slow (the inner loop)
	$(BIN)/pytest -q -m "not slow"; status=$$?; [ $$status -ne 5 ] || echo 'pytest collected no tests'; exit $$status

lint: install ## ruff (lint and format) and mypy
	$(BIN)/ruff check fedmodel tests benchmarks simulations
	$(BIN)/ruff format --check fedmodel tests benchmarks simulations
	$(BIN)/mypy fedmodel benchmarks

bench: install ## the privacy-utility benchmark
	$(BIN)/python benchmarks/privacy_utility.py

clean: ## remove .venv, outputs, build/ and caches
	rm -rf $(VENV) outputs multirun build .pytest_cache .mypy_cache .ruff_cache
