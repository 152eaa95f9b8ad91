VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8700

.PHONY: run test lint typecheck bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	@echo "Herald on http://$(HOST):$(PORT)  (API docs: http://$(HOST):$(PORT)/docs)"
	$(VENV)/bin/herald serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.installed
	$(PY) -m bench all

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
