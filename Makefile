# The README's two commands: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/selfheal: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/selfheal
	$(BIN)/selfheal demo $(ARGS)

test: $(BIN)/selfheal
	$(BIN)/pytest $(ARGS)

lint: $(BIN)/selfheal
	$(BIN)/ruff check selfheal_kg api tests demo bench scripts
	$(BIN)/mypy

bench: $(BIN)/selfheal
	for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
