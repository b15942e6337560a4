# Two entry points (see README):  make repro   |   make test
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro test lint bench clean-cache

# Everything (all extras), at the exact versions of constraints.txt; pyproject.toml has ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

setup: $(STAMP)

# Rebuild everything on the shipped sample corpus: manifests, folds, features, training, reports.
repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	@echo; cat data/reports/sample/report.md | sed -n '1,20p'
	@echo; echo "features: data/features/sample/  metrics: dvc metrics show  QA page: data/qa/sample/index.html"

test: $(STAMP)
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline stages tests bench scripts

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean-cache:
	rm -rf data/cache
