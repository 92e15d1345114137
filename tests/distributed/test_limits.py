"""A shared crawl's limits hold for the crawl as a whole, and its workers never wait for Redis
with their event loop stopped: workers of one crawl (separate ``scrapy crawl`` processes
sharing a real ``redis-server``, as on several machines, and local workers), one local store,
a site on a real HTTP server that counts what it serves.

The site: :data:`N_PAGES` pages, each showing :data:`PER_PAGE` PNGs of its own and linking to
every other page, those after it first (so that workers reading different pages find links in
different orders), served slowly enough for every worker to take part.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

pytestmark = [pytest.mark.crawl, pytest.mark.services]

N_PAGES, PER_PAGE = 30, 4
_REASON = re.compile(r"'finish_reason': '([^']+)'")
_ELAPSED = re.compile(r"'elapsed_time_seconds': ([\d.]+)")


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www", latency=0.1) as server:
        for page in range(N_PAGES):
            imgs = "".join(f'<img src="/i/{page}-{k}.png">' for k in range(PER_PAGE))
            links = "".join(f'<a href="/p{(page + n) % N_PAGES}.html">page</a>' for n in range(1, N_PAGES))
            html = f"<html><body>{imgs}{links}</body></html>"
            server.add_handler(f"/p{page}.html", lambda h, t=html: h.send_body(t, content_type="text/html") or True)
        server.add_handler("/i/*", lambda h: h.send_body(png(hash(h.url_path) % 100_000, noise=True),
                                                         content_type="image/png") or True)
        yield server


class Worker:
    """A ``scrapy crawl images`` process of a shared crawl, with its own feed and log."""

    def __init__(self, name: str, server: HTTPTestServer, tmp: Path, *settings: str):
        tmp.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / f"{name}.log"
        self.feed = tmp / f"{name}.jsonl"
        arguments = ["-a", f"url={server.url}p0.html", "-a", "depth=3",
                     "-s", "IMGSCRAPER_PROGRESS=false", "-s", "IMGSCRAPER_GALLERY=false"]
        for setting in settings:
            arguments += ["-s", setting]
        command = crawl_command(arguments, store=tmp / "store", items=self.feed)
        env = crawl_environment({"PYTHONUNBUFFERED": "1"})
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def items(self) -> list[dict]:
        return [json.loads(line) for line in self.feed.read_text().splitlines()] if self.feed.exists() else []

    def stat(self, pattern: re.Pattern) -> str:
        found = pattern.search(self.output)
        assert found, self.output[-3000:]
        return found[1]


def shared(redis_url: str, crawl_id: str) -> list[str]:
    return [f"IMGSCRAPER_REDIS_URL={redis_url}", f"IMGSCRAPER_CRAWL_ID={crawl_id}"]


def pages_served(server: HTTPTestServer) -> list[str]:
    server.log.wait_idle()
    return [r.url_path for r in server.log if r.url_path.endswith(".html")]


def test_max_pages_holds_for_three_workers(site, redis_url, tmp_path):
    """IMGSCRAPER_MAX_PAGES=5 with three workers: five pages fetched, as the server counts them,
    and one budget warning for the crawl."""
    settings = [*shared(redis_url, "max-pages"), "IMGSCRAPER_MAX_PAGES=5", "CONCURRENT_REQUESTS=2"]
    workers = [Worker(f"worker-{n}", site, tmp_path, *settings) for n in range(3)]
    codes = [w.wait() for w in workers]
    assert codes == [0, 0, 0], "\n".join(w.output[-3000:] for w in workers)
    pages = pages_served(site)
    assert len(pages) == len(set(pages)) == 5, pages
    taken = [int(m[1]) for w in workers if (m := re.search(r"'imgscraper/shared/pages_taken': (\d+)", w.output))]
    assert sum(taken) == 5 and len(taken) >= 2, taken  # more than one worker took part
    assert sum(w.output.count("Page budget reached") for w in workers) == 1


def test_itemcount_holds_for_the_crawl(site, redis_url, tmp_path):
    """CLOSESPIDER_ITEMCOUNT=20 with three workers: every worker closes for it, and together they
    scrape no more than what was in progress when the crawl reached it (each alone would scrape 20)."""
    settings = [*shared(redis_url, "itemcount"), "CLOSESPIDER_ITEMCOUNT=20", "CONCURRENT_REQUESTS=2"]
    workers = [Worker(f"worker-{n}", site, tmp_path, *settings) for n in range(3)]
    for w in workers:
        w.wait()
    assert [w.stat(_REASON) for w in workers] == ["closespider_itemcount"] * 3
    items = [item for w in workers for item in w.items]
    assert len({item["url"] for item in items}) == len(items)
    assert 20 <= len(items) < 40, len(items)


def test_timeout_holds_for_the_crawl(site, redis_url, tmp_path):
    """CLOSESPIDER_TIMEOUT=6: a worker that joins 3 s after the first closes with it, about 6 s after the
    crawl started, not 6 s after its own start."""
    site.latency = 0.3
    settings = [*shared(redis_url, "timeout"), "CLOSESPIDER_TIMEOUT=6", "CONCURRENT_REQUESTS=2"]
    first = Worker("first", site, tmp_path, *settings)
    deadline = time.monotonic() + 60
    while "shared crawl timeout" not in first.output:
        assert first.proc.poll() is None and time.monotonic() < deadline, first.output[-3000:]
        time.sleep(0.05)
    time.sleep(3)
    second = Worker("second", site, tmp_path, *settings)
    for w in (first, second):
        w.wait()
    assert [w.stat(_REASON) for w in (first, second)] == ["closespider_timeout"] * 2
    # The second worker's crawl (from its spider opening to its close) lasted at most 6 - 3 s, plus the
    # requests in flight: not the 6 s it would have had alone.
    assert float(second.stat(_ELAPSED)) < 5, second.output[-3000:]


def test_no_sync_redis_call_on_the_reactor_thread(site, redis_url, tmp_path):
    """Two machine-style workers and a lead with a local worker, with every shared component on
    (limits, leases, CLOSESPIDER_ITEMCOUNT counted): from the spider opening to its close, no
    command goes through redis-py's synchronous client on the reactor's thread."""
    guard = ["EXTENSIONS={\"tests.support.redisguard.RedisCalls\": 0}", f"REDISGUARD_DIR={tmp_path / 'calls'}",
             "CLOSESPIDER_ITEMCOUNT=100000", "IMGSCRAPER_MAX_PAGES=100", "CONCURRENT_REQUESTS_PER_DOMAIN=3"]
    machines = [Worker(f"worker-{n}", site, tmp_path / "machines", *shared(redis_url, "no-sync"), *guard)
                for n in range(2)]
    local = Worker("lead", site, tmp_path / "local", "IMGSCRAPER_WORKERS=2", *guard)
    for w in (*machines, local):
        assert w.wait() == 0, w.output[-3000:]
    reports = [json.loads(path.read_text()) for path in (tmp_path / "calls").glob("*.json")]
    assert len(reports) == 4  # two machine-style workers, the lead and its local worker
    for report in reports:
        assert report["sync_on_reactor"] == 0, report["first_sync"]
        assert report["async"] > 0, report  # the guard saw this worker's Redis traffic
