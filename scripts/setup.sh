#!/usr/bin/env bash
# Creates .venv with RNNControl's dependencies and, where we are root on Debian,
# installs FluidSynth and the FluidR3 General MIDI SoundFont for the default data set,
# and Chromium for the live-play browser test (Playwright drives Debian's build, never a downloaded one).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    if ! dpkg -s libfluidsynth3 fluid-soundfont-gm >/dev/null 2>&1; then
        echo "== installing FluidSynth and the FluidR3 GM SoundFont (apt)"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            libfluidsynth3 fluid-soundfont-gm
    fi
    if ! dpkg -s jackd2 libportaudio2 >/dev/null 2>&1; then
        echo "== installing the JACK server and PortAudio for live play (apt)"
        # jackd2 asks whether to allow real-time scheduling for the audio group: no (live.py needs no group).
        echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends jackd2 libportaudio2
    fi
    if ! dpkg -s chromium >/dev/null 2>&1; then
        echo "== installing Chromium for the browser test (apt)"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
    fi
else
    echo "== not root on Debian: install FluidSynth and a GM SoundFont yourself (see README);"
    echo "   without them the default data set falls back to additive synthesis."
    echo "   For live play install a JACK server (jackd2) and PortAudio (libportaudio2);"
    echo "   for the browser test, Chromium at /usr/bin/chromium."
fi

if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha1sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$stamp"
fi
