# Two commands set up a fresh machine: `make demo` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo core-demo test test-fast lint typecheck docs linkcheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when pyproject.toml changed (the stamps record what was installed). The extras:
# train (the gru-jax command; brings flax), test (train, docs, the peers, the checkers).
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[train]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-docs

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[docs]'
	touch $@ $(VENV)/.installed

# The main job: train the adding problem from configs/adding.yaml into runs/adding/, then print
# the next commands, each runnable as printed from here (.ci/first_hour runs them).
demo: $(VENV)/.installed
	$(VENV)/bin/gru-jax train configs/adding.yaml --workdir runs/adding $(if $(wildcard runs/adding/checkpoints),--resume,)
	@echo "results: runs/adding/summary.json, runs/adding/metrics.jsonl, runs/adding/plots/"
	@echo
	@echo "Next, from this folder. The gru-jax command is in .venv/bin (or run: source .venv/bin/activate)."
	@echo "Evaluate the demo's latest checkpoint on fresh data:"
	@echo "  .venv/bin/gru-jax eval configs/adding.yaml --workdir runs/adding"
	@echo "Train another task (configs/ has one YAML file per task):"
	@echo "  .venv/bin/gru-jax train configs/forecast.yaml --workdir runs/forecast"
	@echo "Export the demo's model for serving, then serve it with jax alone:"
	@echo "  .venv/bin/gru-jax export configs/adding.yaml --workdir runs/adding --out runs/adding/model.jax"
	@echo "  .venv/bin/python examples/serve.py runs/adding/model.jax"

# The GRU core on random data, jitted and vmapped, with timings.
core-demo: $(VENV)/.installed
	$(PY) examples/core_demo.py --config configs/core_demo.yaml

# Two workers (the machine has 2 cores); tests of one file stay together to share compiles.
test: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 --dist loadfile

# A fast subset while you work: the suite without the tests marked slow (CI runs them all).
test-fast: $(VENV)/.installed-test
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

# Lint and format (the one ruff version pinned in pyproject.toml and .pre-commit-config.yaml).
lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The public API type-checks cleanly (mypy; the files and settings are in pyproject.toml).
typecheck: $(VENV)/.installed-test
	$(PY) -m mypy

# The docs site: HTML into docs/_build/html, every warning an error.
docs: $(VENV)/.installed-docs
	$(VENV)/bin/sphinx-build -b html -W --keep-going -q docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# Every link of the built site: internal ones (pages, anchors, files) must resolve.
linkcheck: $(VENV)/.installed-docs
	$(VENV)/bin/sphinx-build -b linkcheck -W --keep-going -q docs docs/_build/linkcheck

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache docs/_build
