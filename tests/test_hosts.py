"""Dead hosts (imgscraper.hosts): a host that stops answering costs about one timeout, not one per image.

Real servers on 127.0.0.0/8: the pages on an :class:`HTTPTestServer` on
127.0.0.1, the dead host a :class:`BlackHole` on 127.0.0.3 (accepts
connections, never answers).
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest

from blackhole import BlackHole
from faultsite import make_png
from httpserver import HTTPTestServer, RequestHandler

TIMEOUT = 2
GOOD_IMAGES = 10
DEAD_IMAGES = 40


def stat(result, name: str) -> float | None:
    found = re.search(rf"'{re.escape(name)}': ([\d.]+)", result.stderr)
    return float(found.group(1)) if found else None


@pytest.fixture
def dead_host_site(tmp_path):
    """A page with GOOD_IMAGES images on its own server and DEAD_IMAGES on a black hole."""
    root = tmp_path / "site"
    (root / "good").mkdir(parents=True)
    with BlackHole("127.0.0.3") as hole, HTTPTestServer(root) as server:
        for i in range(GOOD_IMAGES):
            (root / "good" / f"{i}.png").write_bytes(make_png(i))
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
    assert dead[("failed", "host-unreachable")] >= DEAD_IMAGES - 8, dead
    assert dead[("failed", "host-unreachable")] + dead[("failed", "timeout")] == DEAD_IMAGES, dead
    assert stat(result, "imgscraper/images/failed/host-unreachable") == dead[("failed", "host-unreachable")]
    assert stat(result, "imgscraper/hosts/down") == 1
    # robots.txt and its 2 retries, then at most two rounds of CONCURRENT_REQUESTS_PER_DOMAIN (8): the
    # downloader starts the next requests as the first ones fail, before the host counts as down.
    assert hole.accepted <= 3 + 2 * 8, hole.accepted
    # Two timeouts plus the retries of the first requests; every image its timeout would be 20.
    assert stat(result, "elapsed_time_seconds") < 4 * TIMEOUT + 2, result.tail()
    messages = [line.partition(" WARNING: ")[2] for line in result.stderr.splitlines()
                if " WARNING: " in line and hole.netloc in line and "robots.txt" not in line]
    timeouts, unreachable = dead[("failed", "timeout")], dead[("failed", "host-unreachable")]
    expected = [
        f"Host {hole.netloc} is unreachable (3 connection failures or timeouts in a row, the last: timeout): "
        "its requests fail as host-unreachable until it answers a probe, in 60 s",
        *[m for m in messages if m.startswith("Image failed (timeout)")][:3],
        *([f"... and {timeouts - 3} more timeout from {hole.netloc}"] if timeouts > 3 else []),
        f"{unreachable} images failed as host-unreachable from {hole.netloc}",
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


def test_host_back_after_the_cooldown_has_its_images_stored(tmp_path, run_crawl):
    """A host dead while the start page's images are fetched, then answering when the next page's
    are (after the cool-down): the first of these probes it, the others wait for the probe's
    answer, and all are stored, each requested once."""
    root, cdn_root = tmp_path / "site", tmp_path / "cdn"
    (cdn_root / "b").mkdir(parents=True)
    root.mkdir()
    images = {f"/b/{i}.png": make_png(100 + i) for i in range(6)}
    for path, body in images.items():
        (cdn_root / path.lstrip("/")).write_bytes(body)
    hole = BlackHole("127.0.0.3")
    cdn: list[HTTPTestServer] = []
    revived = threading.Lock()

    def revive_cdn(handler: RequestHandler) -> bool:
        # Page 2 is requested DOWNLOAD_SLOTS' delay after the start page: the host comes back then.
        with revived:
            if not cdn:
                hole.close()
                cdn.append(HTTPTestServer(cdn_root, host=hole.host, port=hole.port).start())
        return False  # the file server answers

    try:
        with HTTPTestServer(root) as server:
            server.add_handler("/page2.html", revive_cdn)
            base = f"http://{hole.netloc}"
            (root / "index.html").write_text(
                "".join(f'<img src="{base}/a/{i}.png">' for i in range(6)) + '<a href="/page2.html">next</a>')
            (root / "page2.html").write_text("".join(f'<img src="{base}{path}">' for path in images))
            result = run_crawl([
                "-a", f"url={server.url}", "-a", "depth=1", "-s", "DOWNLOAD_TIMEOUT=1", "-s", "ROBOTSTXT_OBEY=False",
                "-s", "IMGSCRAPER_HOST_COOLDOWN=1",
                # Page 2 comes 4.5 s after the start page: after its images failed (2 s) and the cool-down.
                "-s", 'DOWNLOAD_SLOTS={"127.0.0.1": {"delay": 4.5, "jitter": 0}}',
            ])
            assert cdn, "page 2 was never requested"
            cdn[0].log.wait_idle()
            requests = cdn[0].log.snapshot()
    finally:
        hole.close()
        for server in cdn:
            server.stop()
    assert result.returncode == 0, result.tail()
    items = result.by_url()
    first = Counter(items[f"{base}/a/{i}.png"]["reason"] for i in range(6))
    assert first["host-unreachable"] >= 3 and first.total() == first["host-unreachable"] + first["timeout"], first
    for path, body in images.items():
        item = items[f"{base}{path}"]
        assert item["status"] == "downloaded", item
        assert (result.store / item["path"]).read_bytes() == body
    assert sorted(r.path for r in requests) == sorted(images)
    assert stat(result, "imgscraper/hosts/probes") == 1
    assert stat(result, "imgscraper/hosts/back") == 1
    assert f"Host {hole.netloc} answers again: its requests are sent again" in result.stderr
