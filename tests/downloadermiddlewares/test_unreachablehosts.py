"""Dead hosts (imgscraper.downloadermiddlewares.unreachablehosts): a host that stops answering costs about one timeout, not one per image.

Real servers on 127.0.0.0/8: the pages on an :class:`HTTPTestServer` on
127.0.0.1, the dead host a :class:`BlackHole` on 127.0.0.3 (accepts
connections, never answers).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import pytest

from tests.support.blackhole import BlackHole
from tests.support.crawl import CrawlResult
from tests.support.httpserver import HTTPTestServer, RequestHandler
from tests.support.images import png

TIMEOUT = 2
GOOD_IMAGES = 10
DEAD_IMAGES = 40


@pytest.fixture
def dead_host_site(tmp_path):
    """A page with GOOD_IMAGES images on its own server and DEAD_IMAGES on a black hole."""
    root = tmp_path / "site"
    (root / "good").mkdir(parents=True)
    with BlackHole("127.0.0.3") as hole, HTTPTestServer(root) as server:
        for i in range(GOOD_IMAGES):
            (root / "good" / f"{i}.png").write_bytes(png(i))
        dead = [f"http://{hole.netloc}/img/{i}.png" for i in range(DEAD_IMAGES)]
        good = [f"/good/{i}.png" for i in range(GOOD_IMAGES)]
        # Interleaved, as a page mixing a CDN and its own images would be.
        refs = [url for pair in zip(dead, good + [""] * DEAD_IMAGES) for url in pair if url]
        (root / "index.html").write_text("".join(f'<img src="{url}">' for url in refs))
        yield server, hole


@pytest.mark.parametrize("robots", [True, False], ids=["robots", "no-robots"])
def test_dead_host_costs_one_timeout_and_spares_the_others(dead_host_site, run_crawl, robots):
    """40 images on a host that never answers: its first requests time out, then it is down and
    the rest fail at once as host-unreachable, with their retries; the other host's images are stored.
    Before: every image waited its timeout and two retries (54 s with DOWNLOAD_TIMEOUT=3)."""
    server, hole = dead_host_site
    result = run_crawl(["-a", f"url={server.url}", "-s", f"DOWNLOAD_TIMEOUT={TIMEOUT}",
                        "-s", f"ROBOTSTXT_OBEY={robots}"])
    assert result.returncode == 0, result.tail()
    items = result.by_url()
    assert len(items) == GOOD_IMAGES + DEAD_IMAGES
    good = [item for url, item in items.items() if url.startswith(server.url)]
    assert [item["status"] for item in good] == ["downloaded"] * GOOD_IMAGES
    dead = Counter((item["status"], item["reason"]) for url, item in items.items() if hole.netloc in url)
    # The few whose last try timed out before the host went down fail as timeouts.
    assert dead[("failed", "host-unreachable")] >= DEAD_IMAGES - 2 * 8, dead
    assert dead[("failed", "host-unreachable")] + dead[("failed", "timeout")] == DEAD_IMAGES, dead
    assert result.stats.get("imgscraper/images/failed/host-unreachable") == dead[("failed", "host-unreachable")]
    assert result.stats.get("imgscraper/hosts/down") == 1
    # host-unreachable only for the images never tried; a tried one (retries included) says how it failed.
    tried = set(hole.requested_paths())
    for url, item in items.items():
        if hole.netloc in url:
            assert item["reason"] == ("timeout" if url.partition(hole.netloc)[2] in tried else "host-unreachable"), url
    # robots.txt and its 2 retries, then at most two rounds of CONCURRENT_REQUESTS_PER_DOMAIN (8): the
    # downloader starts the next requests as the first ones fail, before the host counts as down.
    assert hole.accepted <= 3 + 2 * 8, hole.accepted
    # Two timeouts plus the retries of the first requests; every image its timeout would be 20.
    assert result.stats.get("elapsed_time_seconds") < 4 * TIMEOUT + 2, result.tail()
    messages = [line.partition(" WARNING: ")[2] for line in result.stderr.splitlines()
                if " WARNING: " in line and hole.netloc in line]
    timeouts, unreachable = dead[("failed", "timeout")], dead[("failed", "host-unreachable")]
    # The closing lines, most failures first.
    closing = sorted([(-unreachable, "host-unreachable", f"{unreachable} images failed as host-unreachable from {hole.netloc}"),
                      *([(3 - timeouts, "timeout", f"... and {timeouts - 3} more timeout from {hole.netloc}")]
                        if timeouts > 3 else [])])
    expected = [
        f"Host {hole.netloc} is unreachable (3 connection failures or timeouts in a row, the last: timeout): "
        "its requests fail as host-unreachable until it answers a probe, in 60 s",
        *[m for m in messages if m.startswith("Image failed (timeout)")][:3],
        *[line for _, _, line in closing],
    ]
    assert len([m for m in messages if m.startswith("Image failed (timeout)")]) == min(timeouts, 3)
    assert messages == expected, messages


def test_dead_host_detection_off(dead_host_site, run_crawl):
    """IMGSCRAPER_HOST_FAILURES=0: every image waits its own timeout, as before."""
    server, hole = dead_host_site
    result = run_crawl(["-a", f"url={server.url}", "-s", "DOWNLOAD_TIMEOUT=1", "-s", "RETRY_TIMES=0",
                        "-s", "ROBOTSTXT_OBEY=False", "-s", "IMGSCRAPER_HOST_FAILURES=0"])
    assert result.returncode == 0, result.tail()
    reasons = Counter(item["reason"] for item in result.items if hole.netloc in item["url"])
    assert reasons == {"timeout": DEAD_IMAGES}
    assert hole.accepted >= DEAD_IMAGES


IMAGES_BACK = {f"/b/{i}.png": png(100 + i) for i in range(6)}


@dataclass
class TwoPageCrawl:
    result: CrawlResult
    base: str  # the dead host's http://host:port
    cdn_requests: list  # what the real server that took the host's port over saw
    accepted_before_page2: int  # connections the black hole accepted until page 2 was requested
    accepted: int  # in all


def crawl_two_pages(tmp_path, run_crawl, comes_back: bool) -> TwoPageCrawl:
    """A start page with 6 images on a dead host (a black hole) and a link to page 2, which has 6
    more there and is requested 4.5 s later (DOWNLOAD_SLOTS' delay): after the first 6 failed (by
    2 s) and the cool-down (1 s). When page 2 is requested the host comes back (a real server takes
    the port over) or stays dead."""
    root, cdn_root = tmp_path / "site", tmp_path / "cdn"
    (cdn_root / "b").mkdir(parents=True)
    root.mkdir()
    for path, body in IMAGES_BACK.items():
        (cdn_root / path.lstrip("/")).write_bytes(body)
    hole = BlackHole("127.0.0.3")
    base = f"http://{hole.netloc}"
    cdn: list[HTTPTestServer] = []
    accepted_before_page2: list[int] = []
    lock = threading.Lock()

    def page2_requested(handler: RequestHandler) -> bool:
        with lock:
            if not accepted_before_page2:
                accepted_before_page2.append(hole.accepted)
                if comes_back:
                    hole.close()
                    cdn.append(HTTPTestServer(cdn_root, host=hole.host, port=hole.port).start())
        return False  # the file server answers

    try:
        with HTTPTestServer(root) as server:
            server.add_handler("/page2.html", page2_requested)
            (root / "index.html").write_text(
                "".join(f'<img src="{base}/a/{i}.png">' for i in range(6)) + '<a href="/page2.html">next</a>')
            (root / "page2.html").write_text("".join(f'<img src="{base}{path}">' for path in IMAGES_BACK))
            result = run_crawl([
                "-a", f"url={server.url}", "-a", "depth=1", "-s", "DOWNLOAD_TIMEOUT=1", "-s", "ROBOTSTXT_OBEY=False",
                "-s", "IMGSCRAPER_HOST_COOLDOWN=1", "-s", 'DOWNLOAD_SLOTS={"127.0.0.1": {"delay": 4.5, "jitter": 0}}',
            ])
            assert accepted_before_page2, "page 2 was never requested"
            for cdn_server in cdn:
                cdn_server.log.wait_idle()
    finally:
        hole.close()
        for cdn_server in cdn:
            cdn_server.stop()
    assert result.returncode == 0, result.tail()
    first = Counter(result.by_url()[f"{base}/a/{i}.png"]["reason"] for i in range(6))
    # All 6 were tried at once (CONCURRENT_REQUESTS_PER_DOMAIN 8): their retries fail at once, as timeouts.
    assert first == Counter({"timeout": 6}), first
    return TwoPageCrawl(result, base, cdn[0].log.snapshot() if cdn else [], accepted_before_page2[0], hole.accepted)


def test_host_back_after_the_cooldown_has_its_images_stored(tmp_path, run_crawl):
    """The first of page 2's images probes the host, the others wait for the probe's answer:
    all are stored, each requested once."""
    crawl = crawl_two_pages(tmp_path, run_crawl, comes_back=True)
    items = crawl.result.by_url()
    for path, body in IMAGES_BACK.items():
        item = items[f"{crawl.base}{path}"]
        assert item["status"] == "downloaded", item
        assert (crawl.result.store / item["path"]).read_bytes() == body
    assert sorted(r.path for r in crawl.cdn_requests) == sorted(IMAGES_BACK)
    assert crawl.result.stats.get("imgscraper/hosts/probes") == 1
    assert crawl.result.stats.get("imgscraper/hosts/back") == 1
    netloc = crawl.base.removeprefix("http://")
    assert f"Host {netloc} answers again: its requests are sent again" in crawl.result.stderr


def test_host_still_dead_after_the_cooldown_costs_one_probe(tmp_path, run_crawl):
    """The first of page 2's images probes the host, the others wait for the probe: it times out
    (its item says so) and the others fail as host-unreachable; only the probe reached the host."""
    crawl = crawl_two_pages(tmp_path, run_crawl, comes_back=False)
    items = crawl.result.by_url()
    reasons = Counter(items[f"{crawl.base}{path}"]["reason"] for path in IMAGES_BACK)
    assert reasons == Counter({"timeout": 1, "host-unreachable": len(IMAGES_BACK) - 1}), reasons
    assert crawl.accepted - crawl.accepted_before_page2 == 1
    assert crawl.result.stats.get("imgscraper/hosts/probes") == 1
    assert crawl.result.stats.get("imgscraper/hosts/back") is None
