#!/usr/bin/env bash
# Creates .venv in the checkout and installs the project into it; does nothing when the
# pinned dependencies are already installed. Usage: scripts/bootstrap.sh [app|test]
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-app}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found. Install Python 3.10-3.13 or set PYTHON=/path/to/python3." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$python" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13)))'; then
        echo "error: TensorFlow 2.21 needs Python 3.10-3.13; $("$python" --version) found." \
             "Set PYTHON=/path/to/python3.11 and run again." >&2
        exit 1
    fi
    echo "Creating virtual environment in .venv ..." >&2
    "$python" -m venv .venv
fi

extras=""
[ "$profile" = "test" ] && extras="[test]"
stamp=".venv/.installed-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)-$profile"
if [ ! -f "$stamp" ]; then
    echo "Installing pinned dependencies into .venv (first run takes a minute or two) ..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"
    rm -f .venv/.installed-*
    touch "$stamp"
    # A test install is also a full app install.
    [ "$profile" = "test" ] && touch "${stamp%-test}-app"
fi
