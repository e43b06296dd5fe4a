# The two commands of README.md: `make demo` and `make test`. Both set themselves up first.
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	FACESTREAM_HOME="$${FACESTREAM_HOME:-var/facestream}" .venv/bin/facestream demo --purpose "demo: local walkthrough"

# The exact command CI runs (.ci/run): lint, type-check, the import contracts (.importlinter), then
# the whole suite incl. slow tests.
test: setup
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python -m bench.accuracy
	.venv/bin/python -m bench.embed_throughput
