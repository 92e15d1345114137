"""IMGSCRAPER_FILE_TIMES crawled: a stored file is dated by the server's Last-Modified (the default),
or when it was stored; either way IMGSCRAPER_EXPIRES counts from when it was stored."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

MAY_2021 = datetime(2021, 5, 4, 3, 2, 1, tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("dated-site")
    (root / "index.html").write_text('<html><body><img src="old.png"><img src="b.png"></body></html>', encoding="utf-8")
    (root / "old.png").write_bytes(png("old", (30, 20)))
    (root / "b.png").write_bytes(png("b", (30, 20)))
    os.utime(root / "old.png", (MAY_2021, MAY_2021))  # the server's Last-Modified
    with HTTPTestServer(root) as served:
        yield served


def mtimes(result) -> dict[str, float]:
    return {item["url"].rsplit("/", 1)[1]: os.stat(result.store / item["path"]).st_mtime for item in result.items}


def test_files_have_the_servers_dates_and_expiry_counts_from_storing(server, run_crawl, tmp_path):
    first = run_crawl(["-a", f"url={server.url}"], out_dir=tmp_path / "first", store=tmp_path / "store")
    assert first.returncode == 0, first.tail()
    dates = mtimes(first)
    assert dates["old.png"] == MAY_2021
    assert dates["b.png"] == os.stat(server.root / "b.png").st_mtime // 1  # HTTP dates have whole seconds
    # Four years old by its date, stored a moment ago: fresh for IMGSCRAPER_EXPIRES=1d.
    again = run_crawl(["-a", f"url={server.url}", "-s", "IMGSCRAPER_EXPIRES=1d"], out_dir=tmp_path / "again",
                      store=tmp_path / "store", servers=[server])
    assert {item["status"] for item in again.items} == {"uptodate"}
    assert [r.url_path for r in again.requests if r.url_path.endswith(".png")] == []


def test_stored_dates_the_files_when_they_were_written(server, run_crawl, tmp_path):
    started = time.time()
    result = run_crawl(["-a", f"url={server.url}", "-s", "IMGSCRAPER_FILE_TIMES=stored"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert all(started - 1 <= mtime <= time.time() + 1 for mtime in mtimes(result).values())
