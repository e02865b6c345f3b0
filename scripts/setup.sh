#!/usr/bin/env bash
# Creates .venv with RNNControl's dependencies and, where we are root on Debian, installs the system packages:
# FluidSynth and the FluidR3 General MIDI SoundFont (the default data set), a JACK server and PortAudio (live
# play), a C compiler and headless Pure Data with its headers (the C runtime and the Pd external, which it then
# builds), and Chromium (the live-play browser test; Playwright drives Debian's build, never a downloaded one).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libfluidsynth3 fluid-soundfont-gm jackd2 libportaudio2
          gcc make libc6-dev puredata-core puredata-dev pd-lib-builder chromium)
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
        echo "== installing system packages (apt): ${packages[*]}"
        # jackd2 asks whether to allow real-time scheduling for the audio group: no (live play needs no group).
        echo "jackd2 jackd/tweak_rt_limits boolean false" | debconf-set-selections
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}"
    fi
else
    echo "== not root on Debian: install these yourself (see README): FluidSynth and a GM SoundFont (without"
    echo "   them the default data set falls back to additive synthesis); for live play a JACK server (jackd2)"
    echo "   and PortAudio; for the C runtime and the Pd external a C compiler, make, Pure Data and pd-lib-builder;"
    echo "   for the browser test, Chromium at /usr/bin/chromium."
fi

if command -v cc >/dev/null && command -v make >/dev/null; then
    echo "== building the C runtime (runtime/librnncontrol.so)"
    make -s -C runtime
    if [ -f /usr/share/pd-lib-builder/Makefile.pdlibbuilder ]; then
        echo "== building the Pd external (pd/rnncontrol~/rnncontrol~.pd_linux)"
        make -s -C pd/rnncontrol~ >/dev/null
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "== creating .venv"
    python3 -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(cat requirements.txt pyproject.toml | sha1sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "== installing Python packages into .venv, and RNNControl itself (editable)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -r requirements.txt
    .venv/bin/python -m pip install -q --no-deps -e .
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
    echo "$want" > "$stamp"
fi
