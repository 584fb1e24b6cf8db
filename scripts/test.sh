#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k golden
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
