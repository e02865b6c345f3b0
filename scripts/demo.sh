#!/usr/bin/env bash
# The main job on a fresh machine: set up, build the default data set, train with the quick preset
# (about four minutes on two CPU cores), generate two examples with their plots, and measure how well the
# model follows pitch, loudness and instrument.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
py=.venv/bin/python

$py -m audioDataLoader.render_dataset
run_line=$($py train.py --preset quick "$@" | tee /dev/stderr | tail -n 1)
run_dir=${run_line#run folder: }

$py inference.py --run_directory "$run_dir" --seed 0 --length_seconds 3 \
    --param instID=2 --param p=64:76 --param a=0.7 --output_wav_path "$run_dir/trumpet_rising.wav"
$py inference.py --run_directory "$run_dir" --seed 0 --length_seconds 3 \
    --param instID=1 --param p=76:64 --param a=0.7 --output_wav_path "$run_dir/clarinet_falling.wav"
$py evaluate.py --run_directory "$run_dir"
echo
echo "Done. Listen to $run_dir/*.wav; plots are beside them, the loss curve in $run_dir/loss_curve.png,"
echo "the control measurements in $run_dir/evaluation/."
echo "Open Inference.ipynb in JupyterLab (.venv/bin/jupyter lab) to play the model with sliders."
