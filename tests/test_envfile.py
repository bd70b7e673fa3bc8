"""docker's env-file syntax: comments, values kept as written, names from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotswap.envfile import EnvFileError, parse_env_file, read_env_file


def test_values_are_kept_as_written_and_comments_skipped() -> None:
    text = (
        "# database\n"
        "DATABASE_URL=postgres://app:s3cret@db/app\n"
        "  INDENTED=yes\n"
        'QUOTED="kept with quotes"\n'
        "EMPTY=\n"
        "EQUALS=a=b\n"
        "\n"
        "FROM_ENV\n"
        "UNSET_NAME\n"
    )
    env = parse_env_file(text, {"FROM_ENV": "host value"})
    assert env == {
        "DATABASE_URL": "postgres://app:s3cret@db/app",
        "INDENTED": "yes",
        "QUOTED": '"kept with quotes"',
        "EMPTY": "",
        "EQUALS": "a=b",
        "FROM_ENV": "host value",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\n=value\n", "line 2: no variable name before the ="),
        ("MY VAR=secret\n", "line 1: the variable name 'MY VAR' contains whitespace"),
        (
            "A=1\nPASSWORD secret\n",  # "=" forgotten: the whole line may be a value
            'line 2: no "=" and whitespace in the name (the line is not shown: it may hold '
            "a value)",
        ),
    ],
)
def test_an_invalid_line_is_named_without_its_value(text: str, message: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env_file(text, {})
    assert str(caught.value) == message
    assert "secret" not in str(caught.value)


def test_reading_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    with pytest.raises(EnvFileError, match=f"cannot read {path}: No such file"):
        read_env_file(str(path))
    path.write_bytes(b"\xef\xbb\xbfA=1\nB=\xff\n")
    with pytest.raises(EnvFileError, match="not UTF-8 text"):
        read_env_file(str(path))
    path.write_bytes(b"\xef\xbb\xbfA=1\n")  # a byte order mark is skipped, as docker does
    assert read_env_file(str(path)) == {"A": "1"}


def test_only_newlines_end_a_line_as_in_docker() -> None:
    # docker reads lines split at "\n" (a "\r" before it dropped); other characters Python
    # calls line breaks (form feed, U+2028, a lone "\r") belong to the value.
    text = "CRLF=1\r\nODD=a\x0cb\u2028c\x85d\re\nLAST=2"
    assert parse_env_file(text, {}) == {"CRLF": "1", "ODD": "a\x0cb\u2028c\x85d\re", "LAST": "2"}
