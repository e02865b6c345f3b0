#!/usr/bin/env bash
# Sets up .venv (see setup.sh) and runs the test suite, notebooks included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
exec .venv/bin/python -m pytest -q tests "$@"
