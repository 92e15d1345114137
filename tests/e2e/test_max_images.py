"""``-a max_images=N`` crawled whole: exactly N images stored (failures do not count), no image
downloaded for nothing, the crawl stopped at once with the finish reason max_images and exit status 0,
the summary saying so; listing lists N; a re-crawl counts the images up to date. With workers:
tests/distributed/test_limits.py."""

from __future__ import annotations

import re

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

PAGES = 30
IMAGES_PER_PAGE = 8
MISSING = "/p0-1.png"  # named by the start page, not served: a failure, which does not count


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("many-images")
    links = "".join(f'<a href="page{n}.html">{n}</a>' for n in range(1, PAGES + 1))
    for page in range(PAGES + 1):
        images = "".join(f'<img src="/p{page}-{n}.png">' for n in range(IMAGES_PER_PAGE))
        name = "index.html" if page == 0 else f"page{page}.html"
        (root / name).write_text(f"<html><body>{images}{links if page == 0 else ''}</body></html>", encoding="utf-8")
        for n in range(IMAGES_PER_PAGE):
            (root / f"p{page}-{n}.png").write_bytes(png(f"{page}-{n}", (20, 20)))
    (root / MISSING.lstrip("/")).unlink()
    with HTTPTestServer(root, latency=0.05) as served:
        yield served


def image_requests(result) -> list[str]:
    return [request.url_path for request in result.requests if request.url_path.endswith(".png")]


def page_requests(result) -> list[str]:
    return [request.url_path for request in result.requests if request.url_path.endswith((".html", "/"))]


def test_exactly_n_images_are_stored_and_the_crawl_stops_at_once(server, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1", "-a", "max_images=5"],
                       out_dir=tmp_path, store=tmp_path / "store", servers=[server])
    assert result.returncode == 0, result.tail()
    assert result.stats["finish_reason"] == "max_images"
    downloaded = [item for item in result.items if item["status"] == "downloaded"]
    assert len(downloaded) == 5 and len(result.stored_files()) == 5
    assert [item["url"] for item in result.items if item["status"] == "failed"] == [f"{server.url.rstrip('/')}{MISSING}"]
    assert {item["status"] for item in result.items} == {"downloaded", "failed"}  # the others were dropped
    # No image downloaded for nothing: the five stored and the failure, each once.
    assert sorted(image_requests(result)) == sorted([MISSING, *(item["url"][len(server.url) - 1:] for item in downloaded)])
    assert len(page_requests(result)) < PAGES + 1, "pages after the limit are not requested"
    assert result.stats["imgscraper/max_images_reached"] == 5
    assert "Crawl summary (max_images)" in result.log and re.search(r"stopped at +max_images +5\n", result.log)
    assert not result.error_lines()

    again = run_crawl(["-a", f"url={server.url}", "-a", "depth=1", "-a", "max_images=5"],
                      out_dir=tmp_path / "again", store=tmp_path / "store", servers=[server])
    assert again.returncode == 0, again.tail()
    # The images up to date count as kept: five in all, the stored ones not requested again. (Which
    # five depends on the order the items reach the pipeline: an image not stored yet may come first.)
    uptodate = {item["url"] for item in again.items if item["status"] == "uptodate"}
    fetched = [item["url"][len(server.url) - 1:] for item in again.items if item["status"] == "downloaded"]
    assert uptodate <= {item["url"] for item in downloaded} and len(uptodate) + len(fetched) == 5, again.items
    assert sorted(image_requests(again)) == sorted([MISSING, *fetched])


def test_requests_waiting_for_the_downloader_are_not_sent(server, run_crawl, tmp_path):
    """With a delay between requests, the requests queued when the limit is reached would go out
    one a delay after another: they fail at once instead, as on Ctrl-C."""
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1", "-a", "max_images=3", "-s", "DOWNLOAD_DELAY=0.3"],
                       out_dir=tmp_path, servers=[server])
    assert result.returncode == 0, result.tail()
    stored = {item["url"][len(server.url) - 1:] for item in result.items if item["status"] == "downloaded"}
    assert len(stored) == 3
    reached = max(request.end for request in result.requests if request.url_path in stored)
    assert [request.url_path for request in result.requests if request.start > reached] == []
    assert result.stats["scheduler/enqueued"] > len(page_requests(result)), "pages were left in the queue"


def test_listing_lists_n_images(server, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1", "-a", "download=no", "-a", "max_images=7"],
                       out_dir=tmp_path, servers=[server])
    assert result.returncode == 0, result.tail()
    assert result.stats["finish_reason"] == "max_images"
    assert len(result.items) == 7 and {item["status"] for item in result.items} == {"listed"}
    assert image_requests(result) == []


def test_a_bad_max_images_is_a_bad_argument(server, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={server.url}", "-a", "max_images=many"], out_dir=tmp_path, servers=[server])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert "Bad argument: max_images 'many' is not a non-negative integer: pass e.g. -a max_images=100" in line
