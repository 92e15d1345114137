"""A shared crawl's limits hold for the crawl as a whole, and its workers never wait for Redis
with their event loop stopped: workers of one crawl (separate ``scrapy crawl`` processes
sharing a real ``redis-server``, as on several machines, and local workers), one local store,
a site on a real HTTP server that counts what it serves.

The site: :data:`N_PAGES` pages, each showing :data:`PER_PAGE` PNGs of its own and linking to
every other page, those after it first (so that workers reading different pages find links in
different orders), served slowly enough for every worker to take part. ``max_images`` is tried on
a larger site (:class:`GatedSite`) whose images, or pages, wait until every worker has joined.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from imgscraper import settings as project_settings

from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment, parse_stats
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

    def __init__(self, name: str, server: HTTPTestServer, tmp: Path, *settings: str, listing: bool = False):
        tmp.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp / f"{name}.log"
        self.feed = tmp / f"{name}.jsonl"
        arguments = ["-a", f"url={server.url}p0.html", "-a", "depth=3",
                     "-s", "IMGSCRAPER_PROGRESS=false", "-s", "IMGSCRAPER_GALLERY=false"]
        if listing:
            arguments += ["-a", "download=no"]
        for setting in settings:
            arguments += ["-s", setting]
        command = crawl_command(arguments, store=tmp / "store", items=self.feed)
        env = crawl_environment({"PYTHONUNBUFFERED": "1"})
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 120) -> int:
        """The exit status; a worker still running after ``timeout`` is stopped (SIGTERM, then
        SIGKILL) and the test fails with the end of its log, which says where it was."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            pytest.fail(f"worker {self.log_path.stem} still running after {timeout:.0f} s:\n{self.output[-5000:]}")
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


# -- max_images ----------------------------------------------------------------

GATED_PAGES, GATED_PER_PAGE = 40, 8
#: Seconds each image takes to serve, and the site's concurrency for the whole crawl.
IMAGE_LATENCY, PER_DOMAIN = 0.15, 4
MAX_IMAGES = 20


class GatedSite:
    """:data:`GATED_PAGES` pages, each showing :data:`GATED_PER_PAGE` PNGs of its own and a logo
    every page shows (so that workers find it many times), each linking to every other page. The
    last image of every page is missing (404: a failure, which gives its place back). The images
    (or, with :attr:`gate_pages`, the pages but the first) are held back until
    :meth:`open_when_joined` sees every worker in the crawl: each worker takes part."""

    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.gate = threading.Event()
        self.gate_pages = False
        self.missing = {f"/i/{p}-{GATED_PER_PAGE - 1}.png" for p in range(GATED_PAGES)}
        self.images = {f"/i/{p}-{k}.png": png(50_000 + p * GATED_PER_PAGE + k)
                       for p in range(GATED_PAGES) for k in range(GATED_PER_PAGE - 1)}
        self.images["/i/logo.png"] = png(49_999)
        self.by_sha = {hashlib.sha256(body).hexdigest(): path for path, body in self.images.items()}
        for page in range(GATED_PAGES):
            imgs = '<img src="/i/logo.png">' + "".join(f'<img src="/i/{page}-{k}.png">' for k in range(GATED_PER_PAGE))
            links = "".join(f'<a href="/p{(page + n) % GATED_PAGES}.html">page</a>' for n in range(1, GATED_PAGES))
            html = f"<html><body>{imgs}{links}</body></html>"
            server.add_handler(f"/p{page}.html", lambda h, t=html, first=page == 0: self._page(h, t, first))
        server.add_handler("/i/*", self._image)

    def _page(self, handler, html: str, first: bool) -> bool:
        if self.gate_pages and not first:
            self.gate.wait(60)
        return handler.send_body(html, content_type="text/html") or True

    def _image(self, handler) -> bool:
        self.gate.wait(60)
        time.sleep(IMAGE_LATENCY)
        if handler.url_path in self.missing:
            return handler.send_body("gone", status=404) or True
        return handler.send_body(self.images[handler.url_path], content_type="image/png") or True

    def open_when_joined(self, redis_url: str, crawl_id: str, count: int, workers: list[Worker]) -> float:
        """Open the gate once ``count`` workers are in the crawl; when (monotonic)."""
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 90
        try:
            while client.scard(f"imgscraper:{crawl_id}:workers") < count:
                running = all(w.proc.poll() is None for w in workers)
                assert running and time.monotonic() < deadline, "\n".join(w.output[-3000:] for w in workers)
                time.sleep(0.02)
        finally:
            client.close()
        self.gate.set()
        return time.monotonic()

    def served(self, prefix: str, status: int | None = None) -> list[str]:
        """The paths requested under ``prefix`` (answered with ``status``, when given), in order."""
        self.server.log.wait_idle()
        return [r.url_path for r in self.server.log
                if r.url_path.startswith(prefix) and status in (None, r.status)]

    def stored(self, store: Path) -> list[str]:
        """Site paths of the files in ``store``; fails on anything that is not a whole served image."""
        files = list((store / "full").iterdir())
        assert all(hashlib.sha256(f.read_bytes()).hexdigest() in self.by_sha for f in files), "not a served image"
        return [self.by_sha[hashlib.sha256(f.read_bytes()).hexdigest()] for f in files]

    def unlimited_floor(self) -> float:
        """The least time the crawl takes without a limit: every image served at the site's concurrency,
        which holds for the whole crawl (test_per_domain_limit_holds_across_three_workers)."""
        return len(self.images) * IMAGE_LATENCY / PER_DOMAIN


@pytest.fixture
def gated_site(tmp_path):
    with HTTPTestServer(tmp_path / "www") as server:
        yield GatedSite(server)


def limited(tmp_path: Path) -> list[str]:
    """The settings of the max_images crawls: the limit, the site's concurrency, and the project's
    extensions with the Redis guard (tests/support/redisguard.py), which writes each worker's finish
    reason too (a local worker logs no INFO line)."""
    return [f"IMGSCRAPER_MAX_IMAGES={MAX_IMAGES}", f"CONCURRENT_REQUESTS_PER_DOMAIN={PER_DOMAIN}",
            "CONCURRENT_REQUESTS=2",
            f"EXTENSIONS={json.dumps({**project_settings.EXTENSIONS, 'tests.support.redisguard.RedisCalls': 0})}",
            f"REDISGUARD_DIR={tmp_path / 'calls'}"]


def finish_reasons(tmp_path: Path) -> list[str]:
    reports = [json.loads(path.read_text()) for path in (tmp_path / "calls").glob("*.json")]
    for report in reports:
        assert report["sync_on_reactor"] == 0, report["first_sync"]
    return [report["reason"] for report in reports]


def assert_n_stored_and_served(site: GatedSite, store: Path, items: list[dict]) -> None:
    """Exactly MAX_IMAGES images stored and exported as downloaded, and served: an image holds its place
    from before its request until it is stored, so the server sees the images stored and those that
    failed (each exported as failed, its place given back to the next image), and no other."""
    served = site.served("/i/", status=200)
    assert len(served) == len(set(served)) == MAX_IMAGES, served
    assert sorted(site.stored(store)) == sorted(served)
    paths = {status: sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items
                            if item["status"] == status) for status in ("downloaded", "failed")}
    assert paths["downloaded"] == sorted(served)
    assert paths["failed"] == sorted(site.served("/i/", status=404)) and paths["failed"], "no image failed"
    assert len(items) == MAX_IMAGES + len(paths["failed"])


def test_max_images_holds_for_three_workers(gated_site, redis_url, tmp_path):
    """IMGSCRAPER_MAX_IMAGES=20, three workers: 20 images stored and served in all, every worker
    closes with max_images and says so in its summary, well before the crawl could have ended
    without the limit."""
    settings = [*shared(redis_url, "max-images"), *limited(tmp_path)]
    workers = [Worker(f"worker-{n}", gated_site.server, tmp_path, *settings) for n in range(3)]
    opened = gated_site.open_when_joined(redis_url, "max-images", 3, workers)
    assert [w.wait() for w in workers] == [0, 0, 0], "\n".join(w.output[-3000:] for w in workers)
    took = time.monotonic() - opened
    assert_n_stored_and_served(gated_site, tmp_path / "store", [item for w in workers for item in w.items])
    assert sum(1 for w in workers if "downloaded" in {item["status"] for item in w.items}) >= 2, \
        "one worker stored every image"
    assert finish_reasons(tmp_path) == ["max_images"] * 3
    for w in workers:
        assert "Crawl summary (max_images)" in w.output
        assert re.search(rf"stopped at +max_images +{MAX_IMAGES}\n", w.output), w.output[-3000:]
    assert took < gated_site.unlimited_floor() / 3, (took, gated_site.unlimited_floor())


def test_max_images_holds_for_local_workers(gated_site, redis_url, tmp_path):
    """The same with IMGSCRAPER_WORKERS=3 (through the given Redis, where the test sees them join):
    one feed of 20 items, one summary that says why the crawl stopped."""
    settings = [f"IMGSCRAPER_REDIS_URL={redis_url}", "IMGSCRAPER_CRAWL_ID=max-images-local", "IMGSCRAPER_WORKERS=3",
                *limited(tmp_path)]
    lead = Worker("lead", gated_site.server, tmp_path, *settings)
    opened = gated_site.open_when_joined(redis_url, "max-images-local", 3, [lead])
    assert lead.wait() == 0, lead.output[-3000:]
    took = time.monotonic() - opened
    assert_n_stored_and_served(gated_site, tmp_path / "store", lead.items)
    stats = parse_stats(lead.output)
    assert 0 < stats["imgscraper/workers/items"] < len(lead.items)  # every worker took part
    assert stats["imgscraper/max_images_reached"] == MAX_IMAGES
    assert finish_reasons(tmp_path) == ["max_images"] * 3
    assert lead.output.count("Crawl summary (max_images)") == 1
    assert re.search(rf"stopped at +max_images +{MAX_IMAGES}\n", lead.output)
    assert took < gated_site.unlimited_floor() / 3, (took, gated_site.unlimited_floor())


def test_listing_with_three_workers_lists_n_images(gated_site, redis_url, tmp_path):
    """-a download=no: 20 images listed in all, each once, though every worker finds the logo on every page
    (the images are counted once claimed); none is requested; the crawl stops before its last page."""
    gated_site.gate_pages = True
    settings = [*shared(redis_url, "max-images-listing"), *limited(tmp_path)]
    workers = [Worker(f"worker-{n}", gated_site.server, tmp_path, *settings, listing=True) for n in range(3)]
    gated_site.open_when_joined(redis_url, "max-images-listing", 3, workers)
    assert [w.wait() for w in workers] == [0, 0, 0], "\n".join(w.output[-3000:] for w in workers)
    items = [item for w in workers for item in w.items]
    assert len(items) == len({item["url"] for item in items}) == MAX_IMAGES
    assert {item["status"] for item in items} == {"listed"}
    assert sum(1 for w in workers if w.items) >= 2, "one worker listed every image"
    assert gated_site.served("/i/") == []
    assert len(set(gated_site.served("/p"))) < GATED_PAGES
    assert finish_reasons(tmp_path) == ["max_images"] * 3
