PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test bench lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,otel]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/wippy demo

test: $(DEVSTAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(DEVSTAMP)
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/actors.py
	@for b in registry lua lua_process durable agents selfmod store_micro; do \
	  if [ -f bench/$$b.py ]; then $(BIN)/python bench/$$b.py || exit 1; fi; done

lint: $(STAMP)
	$(BIN)/wippy lint

clean:
	rm -rf $(VENV) .wippy build *.egg-info
