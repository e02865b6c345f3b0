"""Measuring control: how well a run plays the pitch, loudness and instrument it is asked for.

`run` generates the note grid and glides and measures them (`evaluate_run`), `measures` holds the measures,
`plots` and `report` show and write the results. `python evaluate.py` is the command line.
"""
