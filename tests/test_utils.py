"""imgscraper.utils: the IMGSCRAPER_EXPIRES / schedule ``every`` format."""

import pytest

from imgscraper.utils import parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [("30s", 30), ("90m", 5400), ("12h", 43200), ("1.5h", 5400), ("7d", 604800), ("2w", 1209600),
     ("3", 259200), (" 12H ", 43200), ("0", 0), (2, 172800)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_bare_number_takes_the_default_unit():
    assert parse_duration("5", default_unit="s") == 5


@pytest.mark.parametrize("text", ["", "h", "-1d", "12 hours", "1y", "1h30m", "abc"])
def test_bad_durations_raise(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_new_file_mode_is_what_open_gives(tmp_path):
    from imgscraper.utils import new_file_mode

    (tmp_path / "plain").write_bytes(b"")
    assert new_file_mode() == (tmp_path / "plain").stat().st_mode & 0o777
