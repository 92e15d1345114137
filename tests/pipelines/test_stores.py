"""Stored files dated by the server (IMGSCRAPER_FILE_TIMES): the Last-Modified read, the date set
before the file takes its name."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest
from scrapy.http import Response

from imgscraper.pipelines.stored import server_time
from imgscraper.pipelines.stores import AtomicFSFilesStore

MAY_2021 = datetime(2021, 5, 4, 3, 2, 1, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(("header", "expected"), [
    ("Tue, 04 May 2021 03:02:01 GMT", MAY_2021),
    ("Tue, 04 May 2021 03:02:01 -0000", MAY_2021),
    ("Tue, 04 May 2021 05:02:01 +0200", MAY_2021),
    ("", None),
    ("yesterday", None),
    ("Tue, 99 May 2021 03:02:01 GMT", None),
])
def test_the_server_time_is_the_last_modified_header(header, expected):
    headers = {"Last-Modified": header} if header else {}
    assert server_time(Response("http://127.0.0.1/a.png", headers=headers)) == expected


def test_a_file_written_with_a_time_has_it_and_without_has_now(tmp_path):
    store = AtomicFSFilesStore(tmp_path)
    store.write_file("full/old.png", b"old", mtime=MAY_2021)
    store.write_file("full/new.png", b"new")
    assert os.stat(tmp_path / "full" / "old.png").st_mtime == MAY_2021
    assert abs(os.stat(tmp_path / "full" / "new.png").st_mtime - datetime.now().timestamp()) < 60
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["new.png", "old.png"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_a_stored_file_has_the_mode_a_new_file_gets(tmp_path, umask):
    """As ``open()`` would create it (0o666 less the umask), not 0o600 as the temporary file it was."""
    previous = os.umask(umask)
    try:
        store = AtomicFSFilesStore(str(tmp_path))
        store.write_file("full/a.png", b"bytes")
    finally:
        os.umask(previous)
    assert (tmp_path / "full" / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_store_folder_made_meanwhile_by_another_process_is_used(tmp_path, monkeypatch):
    """Two processes of one crawl open the store at once: the folder appears between one's check and
    its mkdir (a local worker died of it: FileExistsError)."""
    from pathlib import Path

    store = tmp_path / "store"
    store.mkdir()
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self == store else real_exists(self))
    AtomicFSFilesStore(str(store)).write_file("full/a.png", b"bytes")
    assert (store / "full" / "a.png").read_bytes() == b"bytes"
