#!/usr/bin/env bash
# Retrains and re-exports the shipped models (models/*.safetensors) with their cards, reproducibly from the seed:
# bash scripts/remake_models.sh [NAME...]   (about 20 minutes a model; models/remake.py says how)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
.venv/bin/python -m models.remake "$@"
.venv/bin/python export.py --card models/*.safetensors --markdown > output/model_cards.md
echo "the cards as tables: output/model_cards.md (paste them into models/README.md)"
