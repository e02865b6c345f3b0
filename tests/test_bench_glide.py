from bench.bench_glide import main
from tests.harness.run_folders import QUICK_RUN


def test_glide_ends_are_measured_for_each_instrument_and_silence_is_counted(capsys):
    main(["--run_directory", str(QUICK_RUN)])
    out = capsys.readouterr().out
    assert "| instID=1 |" in out and "| instID=2 |" in out
    assert "up to 76 (cents)" in out and "down to 64 (cents)" in out
    assert "glide ends:" in out and " silent" in out.splitlines()[-1]
