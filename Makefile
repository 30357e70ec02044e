# The README's two commands: `make demo` (the whole fleet on this machine) and `make test`
# (the whole test suite). Both install what they need first (.ci/bootstrap is idempotent).
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

# `make lock` resolves with this uv, so the same registry gives the same lock on any machine.
UV_VERSION := 0.13.9
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
# Extra arguments for uv, e.g. `make lock LOCK_ARGS=--upgrade` to move every pin to the newest.
LOCK_ARGS ?=
LATEST_VENV := .venv-latest

.PHONY: bootstrap demo test lint bench lock test-latest

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

# agent/requirements.lock: every package of pyproject.toml and all its extras, hashed, plus pip
# and the build tools of pyproject's [build-system] (bootstrap builds the project without
# fetching). Resolved for the fleet's hosts (Linux x86_64, any Python 3.11 from 3.11.0 on) on
# whichever machine runs it. Pins already in the lock stay unless pyproject needs others.
lock: $(UV_VENV)/.uv-$(UV_VERSION)
	{ echo pip; $(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'; } \
	  | $(UV) pip compile pyproject.toml - --all-extras --generate-hashes \
	      --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
	      --custom-compile-command "make lock" --quiet --output-file agent/requirements.lock $(LOCK_ARGS)

$(UV_VENV)/.uv-$(UV_VERSION):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/pip install -q uv==$(UV_VERSION)
	touch $@

# The test suite against the newest releases the registry serves (no lock), in its own venv:
# finds drift on purpose, before a `make lock LOCK_ARGS=--upgrade` does.
test-latest: bootstrap
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install -q --upgrade pip
	$(LATEST_VENV)/bin/pip install -q --upgrade --upgrade-strategy eager -e ".[all,image-hard,test]"
	$(LATEST_VENV)/bin/pytest -q
