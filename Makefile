# The two commands of the README: `make run` (main job) and `make test` (all tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test test-unit generate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,e2e]'
	# kfp pins protobuf<7 but runs on the protobuf 7 MindSpore 2.10 requires: install it on its own,
	# then put MindSpore's protobuf back (pip warns about the pin; the KFP tests prove it works).
	$(PY) -m pip install --quiet -e '.[kfp]'
	$(PY) -m pip install --quiet 'protobuf==7.34.1'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/msjob-local demo

# Lint, type-check and check the layering first (seconds), then every test.
test: $(STAMP) lint
	$(PY) -m pytest tests

.PHONY: lint
lint: $(STAMP)
	$(VENV)/bin/ruff check operator tests scripts examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

generate: $(STAMP)
	$(PY) scripts/generate.py

.PHONY: manifests
manifests: $(STAMP)  # manifests/ from the Helm chart (builds helm from its Go module if needed)
	$(PY) scripts/render_manifests.py

clean:
	rm -rf $(VENV)
