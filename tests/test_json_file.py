import os

import pytest

from tests.harness.blocking import exception_within
from utils.json_file import MAX_CSV_FIELD, csv_rows, parse_json, read_json, read_regular_bytes


def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "labels.json"
    os.mkfifo(fifo)
    error = exception_within(lambda: read_json(fifo))
    assert isinstance(error, ValueError) and f"{fifo} is not a regular file" in str(error)


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000 + "]" * 100_000, "nests its brackets deeper"),
    ('{"p": ' + "9" * 401 + "}", r"whole number 9{20}\.\.\. \(401 digits\) is beyond 64 bits"),
    ('{"p": 64, "a": 1, "p": 76}', "the key 'p' appears twice"),
    ('{"p": ', "is not valid JSON"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
])
def test_json_beyond_the_limits_is_one_value_error_naming_the_file(tmp_path, text, message):
    assert_refused_naming_the_file(read_json, tmp_path / "config.json", text, message)


def assert_refused_naming_the_file(read, path, text: str | bytes, message: str) -> None:
    """Write `text` to `path`; reading it must raise one ValueError matching `message` that starts with the path."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as error:
        read(path)
    assert str(error.value).startswith(str(path))


def test_json_within_the_limits_reads_as_json_does():
    text = '{"a": [1, -9223372036854775807, 2.5e300, "[[{"], "b": {"c": null, "d": true}}'
    assert parse_json(text, "test") == {"a": [1, -9223372036854775807, 2.5e300, "[[{"], "b": {"c": None, "d": True}}


def test_a_file_above_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 101)
    with pytest.raises(ValueError, match="holds 101 bytes, more than the 100"):
        read_regular_bytes(path, max_bytes=100)


def read_table(path):
    with csv_rows(path) as reader:
        return list(reader)


@pytest.mark.parametrize("text, message", [
    ("file,p\nx.wav," + "9" * 131_073 + "\n", f"line 2 holds 131,080 characters, more than the {MAX_CSV_FIELD:,}"),
    ("file,p\nx.wav,64\ncaf\xe9.wav,70\n".encode("latin-1"), "line 3 is not UTF-8 text"),
    ('file,p\n"' + ("x" * 999 + "\n") * 200 + '",64\n', "the row starting on line 2: field larger than field limit"),
])
def test_csv_errors_name_the_file_and_the_line(tmp_path, text, message):
    assert_refused_naming_the_file(read_table, tmp_path / "labels.csv", text, message)


def test_a_csv_with_a_bom_and_quoted_line_breaks_reads_as_csv_does(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes('\ufefffile,p\r\n"a\nb.wav",64\r\n'.encode())
    assert read_table(path) == [{"file": "a\nb.wav", "p": "64"}]
