"""A readable log (imgscraper.extensions.failurelines.FewLinesPerFailureHost, listening to the failure signals the
pipeline and the spider send): per failure reason and host, the first few failures are WARNING lines, the rest
one line at the end; items and stats keep them all."""

from __future__ import annotations

import logging
import sys

import pytest
from scrapy.crawler import Crawler
from scrapy.http import Request
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from imgscraper import signals as imgscraper_signals
from imgscraper.extensions.failurelines import FewLinesPerFailureHost, OneLineRobotsErrors
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

MISSING_IMAGES = 50
MISSING_PAGES = 5
OTHER_MISSING = 4


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A page with 50 missing images and links to 5 missing pages on its host, 4 missing images
    on another host (127.0.0.2), and 2 good images."""
    root, other_root = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("other")
    with HTTPTestServer(root) as server, HTTPTestServer(other_root, host="127.0.0.2") as other:
        for i in range(2):
            (root / f"good{i}.png").write_bytes(png(i))
        html = "".join(f'<img src="/missing/{i}.png">' for i in range(MISSING_IMAGES))
        html += "".join(f'<img src="{other.url}missing/{i}.png">' for i in range(OTHER_MISSING))
        html += '<img src="/good0.png"><img src="/good1.png">'
        html += "".join(f'<a href="/nope/{i}.html">page {i}</a>' for i in range(MISSING_PAGES))
        (root / "index.html").write_text(html)
        yield server, other


def warnings(result) -> list[str]:
    return [line.partition(" WARNING: ")[2] for line in result.stderr.splitlines() if " WARNING: " in line]


def test_first_three_failures_per_reason_and_host_then_one_line(site, run_crawl):
    server, other = site
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1"])
    assert result.returncode == 0, result.tail()
    lines = warnings(result)
    assert len(lines) == 3 + 3 + 2, lines
    # The end: one line per (reason, host), most failures first.
    assert lines[-2:] == [
        f"... and {MISSING_IMAGES + MISSING_PAGES - 3} more http-404 from {server.netloc}",
        f"... and {OTHER_MISSING - 3} more http-404 from {other.netloc}",
    ]
    first = lines[:-2]
    assert len([line for line in first if server.netloc in line]) == 3
    assert len([line for line in first if other.netloc in line and line.startswith("Image failed (http-404)")]) == 3
    # Items and stats keep every failure.
    failed = [item for item in result.items if item["status"] == "failed"]
    assert len(failed) == MISSING_IMAGES + OTHER_MISSING
    assert {item["reason"] for item in failed} == {"http-404"}
    assert result.stats.get("imgscraper/images/failed/http-404") == MISSING_IMAGES + OTHER_MISSING
    assert result.stats.get("imgscraper/pages_failed/http-404") == MISSING_PAGES


def test_a_line_per_failure_when_off(site, run_crawl):
    server, _ = site
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1", "-s", "IMGSCRAPER_FAILURE_LINES=0"])
    assert result.returncode == 0, result.tail()
    lines = warnings(result)
    assert len([line for line in lines if line.startswith("Image failed (http-404)")]) == MISSING_IMAGES + OTHER_MISSING
    assert len([line for line in lines if line.startswith("Cannot fetch page")]) == MISSING_PAGES
    assert not [line for line in lines if " more " in line]


def extension_crawler(lines: int) -> tuple[Crawler, FewLinesPerFailureHost]:
    """A crawler, and the extension (IMGSCRAPER_FAILURE_LINES=lines) listening to its signals."""
    crawler = get_crawler(settings_dict={"IMGSCRAPER_FAILURE_LINES": lines})
    return crawler, build_from_crawler(FewLinesPerFailureHost, crawler)


def image_failed(crawler: Crawler, url: str, reason: str, status: str = "failed", detail: str = "") -> None:
    crawler.signals.send_catch_log(imgscraper_signals.image_failed, url=url, page="", status=status, reason=reason,
                                   detail=detail)


def page_failed(crawler: Crawler, url: str, reason: str, start_page: bool = False) -> None:
    crawler.signals.send_catch_log(imgscraper_signals.page_failed, url=url, reason=reason, detail="HTTP 404",
                                   start_page=start_page)


def logged(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "imgscraper.extensions.failurelines"]


def test_counted_only_reasons_skips_and_start_pages(caplog):
    """host-unreachable failures are never logged one by one: their host's own line said it;
    the closing line counts images and pages. Skipped images are DEBUG lines, never counted;
    a start page is the spider's own ERROR line."""
    crawler, extension = extension_crawler(lines=2)
    with caplog.at_level(logging.DEBUG):
        for i in range(40):
            image_failed(crawler, f"http://dead.example:8080/{i}.png", "host-unreachable")
        page_failed(crawler, "http://dead.example:8080/p", "host-unreachable")
        for n in "abc":
            image_failed(crawler, f"https://u@A.example/{n}", "http-404")
        image_failed(crawler, "data:image/png;base64,AAAA", "not-an-image", detail="unknown type")
        page_failed(crawler, "https://a.example/start", "http-404", start_page=True)
        for _ in range(3):
            image_failed(crawler, "https://a.example/dot.png", "too-small", status="skipped", detail="1x1")
        image_failed(crawler, "file:///etc/passwd", "unsupported-scheme", status="skipped")
        extension.spider_closed()
    assert logged(caplog) == [
        ("WARNING", "Image failed (http-404): https://u@A.example/a"),
        ("WARNING", "Image failed (http-404): https://u@A.example/b"),
        ("WARNING", "Image failed (not-an-image): data:image/png;base64,AAAA - unknown type"),
        *[("DEBUG", "Image skipped (too-small): https://a.example/dot.png - 1x1")] * 3,
        ("WARNING", "Image skipped (unsupported-scheme): file:///etc/passwd"),
        ("WARNING", "40 images and 1 page failed as host-unreachable from dead.example:8080"),
        ("WARNING", "... and 1 more http-404 from a.example"),
    ]


def test_every_failure_its_line_when_off(caplog):
    """IMGSCRAPER_FAILURE_LINES=0: a line per failure, host-unreachable ones too, and nothing to count at the end."""
    crawler, extension = extension_crawler(lines=0)
    with caplog.at_level(logging.DEBUG):
        for i in range(5):
            image_failed(crawler, f"http://dead.example:8080/{i}.png", "host-unreachable")
            page_failed(crawler, f"http://a.example/{i}.html", "http-404")
        extension.spider_closed()
    lines = logged(caplog)
    assert len(lines) == 10
    assert lines[:2] == [
        ("WARNING", "Image failed (host-unreachable): http://dead.example:8080/0.png"),
        ("WARNING", "Cannot fetch page http://a.example/0.html: HTTP 404"),
    ]


def robots_error_record(url: str) -> logging.LogRecord:
    """The record Scrapy's RobotsTxtMiddleware logs when robots.txt cannot be fetched for ``url``."""
    try:
        raise ConnectionRefusedError("Connection was refused")
    except ConnectionRefusedError as exc:
        record = logging.LogRecord("scrapy.downloadermiddlewares.robotstxt", logging.ERROR, __file__, 1,
                                   "Error downloading %(request)s: %(f_exception)s", None, sys.exc_info())
        record.args = {"request": Request(url), "f_exception": exc}
    return record


def test_a_robots_txt_line_names_robots_txt_and_a_dead_hosts_is_silent():
    extension = OneLineRobotsErrors()
    record = robots_error_record("http://cdn.example:8080/img/a.png")
    assert extension.filter(record)
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage() == "Cannot fetch http://cdn.example:8080/robots.txt: Connection was refused"
    extension.host_down(host="cdn.example:8080")
    assert not extension.filter(robots_error_record("http://cdn.example:8080/img/b.png"))
    assert extension.filter(robots_error_record("http://other.example/img/b.png"))
