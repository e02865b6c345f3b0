"""What the tests (and benchmarks) build on: run folders, backend comparisons, a JACK server, a browser."""
