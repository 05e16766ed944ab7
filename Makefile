# fedmodel: `make demo` and `make test` set themselves up (a .venv with pinned
# installs) on a fresh machine. torch comes first and pinned: a looser spec
# would pull a multi-GB CUDA build.
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

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/fedmodel simulate

test: install
	$(BIN)/pytest -q; status=$$?; [ $$status -ne 5 ] || echo 'pytest collected no tests'; exit $$status

lint: install
	$(BIN)/ruff check fedmodel tests benchmarks simulations
	$(BIN)/mypy fedmodel

bench: install
	$(BIN)/python benchmarks/privacy_utility.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .mypy_cache .ruff_cache
