#!/usr/bin/env bash
# Sets up .venv (first time only) and starts the desktop app on the built-in sample dataset.
# Extra arguments go to `python main.py gui`, e.g. ./run.sh --data ~/Pictures/flowers
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh app
exec .venv/bin/python main.py gui "$@"
