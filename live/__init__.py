"""Live play: a trained run played in real time, controlled from Python, OSC, MIDI or the notebook widget.

`engine` renders voices on demand with timed events, `synth` (LiveSynth) adds an audio output and a generator
thread, `control` listens to OSC and MIDI, `widget` plays in JupyterLab. `python -m live` is the command line.
"""
