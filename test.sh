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
# Two test processes where there are two cores (pytest-xdist; each test module stays in one
# process): about 17 minutes instead of 35 on 2 cores. TEST_WORKERS=0 runs them in this process,
# as does -n 0 among the arguments.
workers="${TEST_WORKERS:-$(( $(nproc 2>/dev/null || echo 1) >= 2 ? 2 : 0 ))}"
parallel=()
if [ "$workers" != "0" ]; then
    parallel=(-n "$workers" --dist loadfile)
fi
echo "== Tests ==" >&2
# pytest exits 5 when it collects no test, so an empty run fails here too.
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
