#!/usr/bin/env bash
# Sets up .venv with the test tools (first time only), lints, checks the layering contracts and
# runs the test suite. Extra arguments go to pytest, e.g. ./test.sh -k config
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
echo "== Lint (ruff) ==" >&2
.venv/bin/ruff check --quiet .
echo "== Layering contracts (import-linter) ==" >&2
.venv/bin/lint-imports --no-cache
echo "== Tests ==" >&2
# pytest exits 5 when it collects no test, so an empty run fails here too.
exec .venv/bin/python -m pytest "$@"
