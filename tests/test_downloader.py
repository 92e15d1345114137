"""Concurrency limits and delays hold for image requests, as the server sees them.

A page on 127.0.0.1 references images on 127.0.0.1 and on 127.0.0.2; both
servers answer each request after a latency and record when each request
starts and ends. The crawl runs as a subprocess with the project's settings
(``DOWNLOADER = imgscraper.downloader.LimitedDownloader``); the same crawl
with Scrapy's stock downloader shows what the test would catch.
"""

from __future__ import annotations


import pytest

from tests.support.httpserver import HTTPTestServer, RecordedRequest
from tests.support.images import png

IMAGES_PER_HOST = 24


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory):
    """``(a, b)``: servers on 127.0.0.1 and 127.0.0.2; a's page shows every image."""
    root = tmp_path_factory.mktemp("limits")
    servers = []
    for host in ("127.0.0.1", "127.0.0.2"):
        (root / host / "img").mkdir(parents=True)
        servers.append(HTTPTestServer(root / host, host=host).start())
    a, b = servers
    tags = []
    for index, server in enumerate(servers):
        for n in range(IMAGES_PER_HOST):
            (server.root / "img" / f"{n}.png").write_bytes(png(index * 100 + n, (8, 8)))
            tags.append(f'<img src="{server.url}img/{n}.png">')
    (a.root / "index.html").write_text(f"<html><body>{''.join(tags)}</body></html>", encoding="utf-8")
    # The same images over 8 pages linked from pages.html (a crawl that processes can share).
    for part in range(8):
        (a.root / f"part{part}.html").write_text(f"<html><body>{''.join(tags[part::8])}</body></html>", encoding="utf-8")
    links = "".join(f'<a href="part{part}.html">{part}</a>' for part in range(8))
    (a.root / "pages.html").write_text(f"<html><body>{links}</body></html>", encoding="utf-8")
    (a.root / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="utf-8")
    (b.root / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="utf-8")
    yield a, b
    for server in servers:
        server.stop()


def crawl_logged(two_hosts, run_crawl, latency: float, *settings: str, pages: bool = False):
    """Crawl a's page (``pages``: the pages linked from pages.html); return (result, a's requests, b's requests)."""
    a, b = two_hosts
    for server in (a, b):
        server.latency = latency
    args = ["-a", f"url={a.url}pages.html", "-a", "depth=1"] if pages else ["-a", f"url={a.url}"]
    for setting in settings:
        args += ["-s", setting]
    result = run_crawl(args, env={"PYTHONHASHSEED": "0"}, timeout=180, servers=[a, b])
    assert a.log.wait_idle() and b.log.wait_idle()
    stored = [item for item in result.items if item.get("status") == "downloaded"]
    assert result.returncode == 0, result.tail()
    assert len(stored) == 2 * IMAGES_PER_HOST, result.tail()
    return result, a.log, b.log


def overall_in_flight(*groups: list[RecordedRequest]) -> int:
    events = sorted(
        (time, delta)
        for group in groups
        for rec in group
        for time, delta in ((rec.start, 1), (rec.end, -1))
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def start_gaps(requests: list[RecordedRequest]) -> list[float]:
    starts = sorted(rec.start for rec in requests)
    return [later - earlier for earlier, later in zip(starts, starts[1:])]


def test_per_host_and_total_limits_hold(two_hosts, run_crawl):
    result, log_a, log_b = crawl_logged(
        two_hosts, run_crawl, 0.1, "CONCURRENT_REQUESTS=6", "CONCURRENT_REQUESTS_PER_DOMAIN=4"
    )
    # Tuned defaults: no per-crawl telnet console or remote control server.
    assert "Telnet console listening" not in result.output
    assert "Remote control HTTP server listening" not in result.output
    per_host = (log_a.max_in_flight(), log_b.max_in_flight())
    total = overall_in_flight(log_a.snapshot(), log_b.snapshot())
    assert max(per_host) <= 4, per_host
    assert total <= 6, total
    # The limits are used, not just respected.
    assert total >= 3, total


def test_stock_downloader_overshoots(two_hosts, run_crawl):
    """Without the project's downloader the same crawl breaks both limits (seen on the wire)."""
    _, log_a, log_b = crawl_logged(
        two_hosts, run_crawl, 0.1,
        "CONCURRENT_REQUESTS=6", "CONCURRENT_REQUESTS_PER_DOMAIN=4",
        "DOWNLOADER=scrapy.core.downloader.Downloader",
    )
    assert max(log_a.max_in_flight(), log_b.max_in_flight()) > 4
    assert overall_in_flight(log_a.snapshot(), log_b.snapshot()) > 6


def test_download_delay_applies_to_images(two_hosts, run_crawl):
    _, log_a, log_b = crawl_logged(
        two_hosts, run_crawl, 0.0, "DOWNLOAD_DELAY=0.15", "DOWNLOAD_DELAY_JITTER=0"
    )
    for log in (log_a, log_b):
        gaps = start_gaps(log.snapshot())
        assert len(log.requests(path_prefix="/img/")) == IMAGES_PER_HOST
        # The server notes a start when it reads the request, a little late
        # under load, which shortens the gap before it: hence the mean.
        assert sum(gaps) / len(gaps) >= 0.135, gaps
        assert min(gaps) >= 0.05, gaps
        assert log.max_in_flight() <= 2  # a response slower than the delay may overlap


def test_autothrottle_applies_to_images(two_hosts, run_crawl):
    # AutoThrottle aims at latency / TARGET_CONCURRENCY between requests to a
    # host, starting from AUTOTHROTTLE_START_DELAY and never below it while
    # the delay decreases halfway at each response.
    _, log_a, log_b = crawl_logged(
        two_hosts, run_crawl, 0.1,
        "AUTOTHROTTLE_ENABLED=True", "AUTOTHROTTLE_START_DELAY=0.4",
        "AUTOTHROTTLE_TARGET_CONCURRENCY=1", "DOWNLOAD_DELAY_JITTER=0",
    )
    for log in (log_a, log_b):
        gaps = start_gaps(log.requests(path_prefix="/img/"))
        # Without throttling 8 requests would share each 0.1 s of latency.
        assert sum(gaps) / len(gaps) >= 0.085, gaps
        assert min(gaps) >= 0.03, gaps
        # The start delay applied too: the first gaps are well above latency.
        assert sum(gaps[:2]) / 2 >= 0.12, gaps
        assert log.max_in_flight() <= 2


def test_priority_queue_serves_the_highest_priority_first_in_order():
    from scrapy import Request

    from imgscraper.downloader import PriorityQueue

    queue = PriorityQueue()
    for name, priority in (("img1", -1000), ("img2", -1000), ("page1", 0), ("img3", -1000), ("page2", 0),
                           ("redirected", 2)):
        queue.append((Request(f"http://a.test/{name}", priority=priority), None))
    assert [request.url.rsplit("/", 1)[1] for request, _ in queue] == [
        "redirected", "page1", "page2", "img1", "img2", "img3"]

