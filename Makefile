# The two set-up commands of the README: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
SHELL_SCRIPTS := $(shell git ls-files '*.sh' 2>/dev/null) tools/install-deps.sh .ci/run

.PHONY: deps test lint unit demo bench clean

deps:
	bash tools/install-deps.sh

lint: deps
	$(PY) -m ruff check ns_letsencrypt tests bench ns-copytons.py
	$(PY) -m mypy
	shellcheck -x $(sort $(SHELL_SCRIPTS))

unit: deps
	$(PY) -m pytest -q $(PYTEST_ARGS)

test: lint unit

demo: deps
	bash tools/demo.sh

bench: deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .demo
