# The README's two commands: `make demo` (the whole fleet on this machine) and `make test`
# (the whole test suite). Both install what they need first (.ci/bootstrap is idempotent).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: bootstrap demo test lint bench

bootstrap:
	@bash .ci/bootstrap

demo: bootstrap
	$(VENV)/bin/morag-fleet demo

test: bootstrap lint
	$(VENV)/bin/pytest -q

lint: bootstrap
	$(VENV)/bin/ruff check agent tests

bench: bootstrap
	@for script in tests/bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done
