# Two entry points (see README):  make repro   |   make test
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro test lint bench wheel clean-cache

# Everything (all extras), at the exact versions of constraints.txt; pyproject.toml has ranges.
# System packages first (scripts/install-system-deps.sh: python3-venv, OpenCV's libGL).
$(STAMP): pyproject.toml constraints.txt
	PY=$(PY) bash scripts/install-system-deps.sh repro
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

setup: $(STAMP)

# Rebuild everything on the shipped sample corpus: manifests, folds, features, training, reports.
# The stages find the venv's Python themselves (stages/python): no PATH needed.
repro: $(STAMP)
	PY=$(PY) bash scripts/install-system-deps.sh repro
	$(BIN)/dvc repro
	@echo; cat data/reports/sample/report.md | sed -n '1,20p'
	@echo; echo "features: data/features/sample/  metrics: .venv/bin/dvc metrics show  QA page: data/qa/sample/index.html"

test: $(STAMP)
	PY=$(PY) bash scripts/install-system-deps.sh test
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check pipeline stages tests bench scripts

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# A wheel of the package (core dependencies; extras as declared) under dist/.
wheel: $(STAMP)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -w dist .

clean-cache:
	rm -rf data/cache
