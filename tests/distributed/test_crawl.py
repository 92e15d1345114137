"""One crawl shared by several workers (``IMGSCRAPER_REDIS_URL``), against a
real ``redis-server``, a real S3 endpoint (``moto_server``) as the shared
store, and the generated site on a real HTTP server.

Each worker is a ``scrapy crawl images`` process with its own User-Agent, so
the server's request log says which worker fetched what.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as redis

from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment, parse_stats
from tests.support.servers import S3_ENV, s3_client
from tests.support.sitegen import serve_site

BUCKET = "shared"
DEPTH = 3


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return s3_endpoint, client


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    # A little latency, so that a crawl of this small site lasts long enough to be shared.
    with serve_site(tmp_path_factory.mktemp("www"), latency=0.05) as server:
        yield server


class Worker:
    """A ``scrapy crawl images`` process of a shared crawl."""

    def __init__(self, name: str, out: Path, args: list[str], env: dict[str, str]):
        self.name = name
        self.items_path = out / f"{name}.jsonl"
        self.log_path = out / f"{name}.log"
        out.mkdir(parents=True, exist_ok=True)
        cmd = crawl_command([*args, "-s", f"USER_AGENT={name}"], items=self.items_path)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=crawl_environment(env), stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.wait()

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stats(self) -> dict[str, object]:
        return parse_stats(self.output)

    @property
    def items(self) -> list[dict]:
        if not self.items_path.exists():
            return []
        return [json.loads(line) for line in self.items_path.read_text().splitlines() if line.strip()]


def start_workers(n, srv, redis_url, s3, tmp_path, prefix, *extra, env=None):
    endpoint, _ = s3
    args = ["-a", f"url={srv.url}", "-a", f"depth={DEPTH}",
            "-s", f"IMGSCRAPER_REDIS_URL={redis_url}",
            "-s", f"IMAGES_STORE=s3://{BUCKET}/{prefix}", "-s", f"AWS_ENDPOINT_URL={endpoint}",
            # Few requests per worker: the other one gets its share of this small site.
            "-s", "CONCURRENT_REQUESTS=2", "-s", "IMGSCRAPER_PROGRESS=false", *extra]
    return [Worker(f"worker-{i}", tmp_path, args, {**S3_ENV, **(env or {})}) for i in range(1, n + 1)]


def start_together(n, srv, *args, **kwargs) -> list[Worker]:
    """Start ``n`` workers and hold the site back (slow responses) until all
    of them have joined the crawl, however slowly a loaded machine starts them."""
    srv.server.latency = 2.0
    try:
        workers = start_workers(n, srv, *args, **kwargs)
        deadline = time.monotonic() + 60
        while not all("shared crawl" in w.output for w in workers):
            assert time.monotonic() < deadline, "\n".join(w.output[-2000:] for w in workers)
            assert all(w.proc.poll() is None for w in workers), "\n".join(w.output[-2000:] for w in workers)
            time.sleep(0.05)
    finally:
        srv.server.latency = 0.05
    return workers


def bucket_images(client, prefix: str) -> dict[str, str]:
    """path -> sha256 of every image under ``prefix`` (the record's folder left out)."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for entry in page.get("Contents", []):
            path = entry["Key"][len(prefix) + 1:]
            if not path.startswith(".imgscraper/"):
                body = client.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
                out[path] = hashlib.sha256(body).hexdigest()
    return out


def image_requests(srv, requests, urls=None) -> list:
    """Requests for the site's images (or those of ``urls``): pages, style sheets and robots.txt left out."""
    paths = {srv.site.request_path(u) for u in (srv.site.images if urls is None else urls) if srv.site.on_host(u)}
    return [r for r in requests if r.host == srv.server.netloc and r.path in paths]


@pytest.mark.crawl
def test_two_workers_share_one_crawl(srv, redis_url, s3, tmp_path):
    _, client = s3
    srv.clear_logs()
    workers = start_together(2, srv, redis_url, s3, tmp_path, "two")
    codes = [w.wait() for w in workers]
    assert codes == [0, 0], "\n".join(w.output[-3000:] for w in workers)
    srv.server.log.wait_idle()
    requests = srv.all_requests()

    # Together: one item per image URL found, every expected image stored once, byte-exact.
    items = [item for w in workers for item in w.items]
    counts = collections.Counter(item["url"] for item in items)
    assert {u: n for u, n in counts.items() if n > 1} == {}
    assert set(counts) == srv.site.discovered_at(DEPTH)
    expected = srv.site.stored_at(DEPTH)
    by_url = {item["url"]: item for item in items}
    assert {u: by_url[u]["status"] for u in expected} == dict.fromkeys(expected, "downloaded")
    stored = bucket_images(client, "two")
    assert sorted(stored.values()) == sorted(set(expected.values()))
    assert {by_url[u]["path"] for u in expected} == set(stored)

    # No page and no image fetched twice (across both workers), as the server saw it.
    fetched = collections.Counter(r.path for r in requests if r.host == srv.server.netloc and r.path != "/robots.txt")
    assert {p: n for p, n in fetched.items() if n > 1} == {}

    # Each worker did part of the work.
    per_worker = collections.Counter(r.header("User-Agent") for r in image_requests(srv, requests))
    assert set(per_worker) == {"worker-1", "worker-2"}, per_worker
    assert all(w.items for w in workers)


@pytest.mark.crawl
def test_recrawl_starts_afresh(srv, redis_url, s3, tmp_path):
    """The same crawl started again after it finished: pages are fetched again
    (a fresh duplicate filter), stored images are up to date (the record in the bucket)."""
    srv.clear_logs()
    first = start_workers(1, srv, redis_url, s3, tmp_path / "first", "again")
    assert first[0].wait() == 0, first[0].output[-3000:]
    srv.clear_logs()
    again = start_workers(1, srv, redis_url, s3, tmp_path / "again", "again")
    assert again[0].wait() == 0, again[0].output[-3000:]
    srv.server.log.wait_idle()
    requests = srv.all_requests()
    assert "Started shared crawl" in again[0].output
    pages = {srv.site.request_path(p) for p in srv.site.pages_at(DEPTH)}
    assert pages <= {r.path for r in requests}
    expected = srv.site.stored_at(DEPTH)
    assert image_requests(srv, requests, expected) == []
    by_url = {item["url"]: item for item in again[0].items}
    assert {u: by_url.get(u, {}).get("status") for u in expected} == dict.fromkeys(expected, "uptodate")


@pytest.mark.crawl
def test_killed_worker_is_taken_over(srv, redis_url, s3, tmp_path):
    _, client = s3
    srv.clear_logs()
    try:
        workers = start_together(
            2, srv, redis_url, s3, tmp_path, "kill",
            "-s", "IMGSCRAPER_CRAWL_ID=kill-test", "-s", "IMGSCRAPER_REDIS_WORKER_TIMEOUT=2",
        )
        srv.server.latency = 0.2
        victim, survivor = workers
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            mine = [r for r in image_requests(srv, srv.server.log.snapshot()) if r.header("User-Agent") == victim.name]
            if len(mine) >= 2 or victim.proc.poll() is not None:
                break
            time.sleep(0.05)
        assert victim.proc.poll() is None, "the worker to kill finished before it fetched two images"
        victim.kill()
        assert survivor.wait() == 0, survivor.output[-3000:]
    finally:
        srv.server.latency = 0.05
    expected = srv.site.stored_at(DEPTH)
    assert sorted(bucket_images(client, "kill").values()) == sorted(set(expected.values()))
    assert "shared crawl kill-test" in survivor.output
    assert "imgscraper/shared/pages_recovered" in survivor.stats  # it took over the victim's pages


@pytest.mark.crawl
def test_ctrl_c_leaves_the_rest_of_the_crawl_to_the_next_worker(srv, redis_url, s3, tmp_path):
    """A worker stopped with Ctrl-C starts no new image; the pages and image claims it did not
    finish go back to the shared crawl, and the next worker stores the rest."""
    _, client = s3
    srv.clear_logs()
    crawl = ("-s", "IMGSCRAPER_CRAWL_ID=stop-test")
    try:
        srv.server.latency = 0.2
        (first,) = start_workers(1, srv, redis_url, s3, tmp_path / "first", "stop", *crawl)
        deadline = time.monotonic() + 30
        while len(image_requests(srv, srv.server.log.snapshot())) < 3:
            assert first.proc.poll() is None and time.monotonic() < deadline, first.output[-3000:]
            time.sleep(0.05)
        first.proc.send_signal(signal.SIGINT)
        assert first.wait() == 1, first.output[-3000:]
    finally:
        srv.server.latency = 0.05
    assert "images not downloaded: the crawl stopped first" in first.output, first.output[-3000:]
    (second,) = start_workers(1, srv, redis_url, s3, tmp_path / "second", "stop", *crawl)
    assert second.wait() == 0, second.output[-3000:]
    expected = srv.site.stored_at(DEPTH)
    assert sorted(bucket_images(client, "stop").values()) == sorted(set(expected.values()))


def test_without_redis_url_nothing_of_redis_is_imported(srv, run_crawl, redis_url):
    """Python's import log (PYTHONPROFILEIMPORTTIME) of a crawl without, then with, the setting."""

    def imported(*extra):
        result = run_crawl(["-a", f"url={srv.url}", "-a", "download=no", *extra],
                           env={"PYTHONPROFILEIMPORTTIME": "1"})
        assert result.returncode == 0, result.tail()
        return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}

    # Components Scrapy loads by their dotted path (importlib) are not in the log: the add-on imports these.
    redis_modules = {"redis", "scrapy_redis", "imgscraper.distributed.crawl", "imgscraper.distributed.middleware"}
    alone = imported()
    assert "imgscraper.downloader" in alone  # the log is there
    assert redis_modules & alone == set()
    assert redis_modules <= imported("-s", f"IMGSCRAPER_REDIS_URL={redis_url}", "-s", "IMGSCRAPER_CRAWL_ID=imports")


@pytest.mark.parametrize("value", ["0", "soon"])
def test_bad_worker_timeout_is_refused(srv, run_crawl, redis_url, value):
    result = run_crawl(["-a", f"url={srv.url}", "-s", f"IMGSCRAPER_REDIS_URL={redis_url}",
                        "-s", f"IMGSCRAPER_REDIS_WORKER_TIMEOUT={value}"])
    assert result.returncode == 1
    assert len(result.error_lines()) == 1 and "IMGSCRAPER_REDIS_WORKER_TIMEOUT" in result.error_lines()[0], result.tail()
    assert "Traceback" not in result.stderr


def test_unreachable_redis_is_one_error_line(srv, run_crawl):
    srv.clear_logs()
    result = run_crawl(["-a", f"url={srv.url}", "-s", "IMGSCRAPER_REDIS_URL=redis://127.0.0.1:9/0"])
    assert result.returncode == 1
    assert len(result.error_lines()) == 1 and "redis://127.0.0.1:9/0" in result.error_lines()[0], result.tail()
    assert "Traceback" not in result.stderr
    assert [r.path for r in srv.server.log.snapshot()] == []


def test_work_ledger_holds_a_page_until_its_outputs_are_through():
    from scrapy import Request

    from imgscraper.distributed.ledger import PARENT, TOKEN, WorkLedger

    done: list[str] = []
    ledger = WorkLedger(max_images=4, on_done=done.append)
    page = ledger.take(Request("http://example.com/p1"))
    token = page.meta[TOKEN]
    assert ledger.busy()  # a page being fetched is expected to bring images
    ledger.fetched(page)
    items = [{"url": f"http://example.com/{n}.png"} for n in range(3)]
    link = Request("http://example.com/p2")
    for obj in [*items, link]:
        ledger.output(token, obj)
    ledger.parsed(token, images=3)
    assert not ledger.busy() and done == []
    ledger.output_done(link.meta[PARENT])
    for item in items[:2]:
        ledger.item_done(item)
    assert done == []
    ledger.item_done(items[2])
    assert done == [token]
    assert ledger.images_in_progress == 0


@pytest.mark.crawl
def test_images_left_out_by_a_filter_are_counted_once_across_workers(srv, redis_url, s3, tmp_path):
    """``image_deny``: every left-out image is one ``skipped``/``filtered`` item and counted once
    in the workers' stats together, and no worker requests it."""
    deny = r"\.png($|\?)"
    srv.clear_logs()
    workers = start_together(2, srv, redis_url, s3, tmp_path, "filtered", "-a", f"image_deny={deny}")
    codes = [w.wait() for w in workers]
    assert codes == [0, 0], "\n".join(w.output[-3000:] for w in workers)
    srv.server.log.wait_idle()
    left_out = {u for u in srv.site.discovered_at(DEPTH) if re.search(deny, u)}
    assert left_out, "the site has PNG images"
    items = [item for w in workers for item in w.items]
    assert {i["url"] for i in items if (i["status"], i["reason"]) == ("skipped", "filtered")} == left_out
    assert sum(w.stats.get("imgscraper/images/skipped/filtered", 0) for w in workers) == len(left_out)
    assert image_requests(srv, srv.all_requests(), left_out) == []


@pytest.mark.parametrize("turns", range(6))
def test_a_worker_leaves_at_once_after_joining(redis_url, turns):
    """A worker that leaves a few turns of the event loop after joining (a local worker that joins
    as the crawl ends), while its listener is still subscribing: it leaves, its Redis keys gone.
    (redis-py 8.1 swallowed that cancellation, and the worker waited for messages for ever.)"""
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from imgscraper import settings as project_settings
    from imgscraper.distributed.crawl import SharedCrawl

    settings = {name: getattr(project_settings, name) for name in dir(project_settings)
                if name.startswith("IMGSCRAPER_")}
    crawl_id = f"leave-{turns}"
    crawler = get_crawler(Spider, settings_dict={**settings, "REDIS_URL": redis_url, "IMGSCRAPER_CRAWL_ID": crawl_id})

    async def join_and_leave() -> set[bytes]:
        shared = SharedCrawl(crawler)
        await shared.join(Spider(name="images"))
        await shared.server.ping()  # a connection of the pool in use, as in a crawl
        for _ in range(turns):
            await asyncio.sleep(0)
        await asyncio.wait_for(shared.leave(), 10)
        return await redis.Redis.from_url(redis_url).smembers(f"imgscraper:{crawl_id}:workers")

    assert asyncio.run(join_and_leave()) == set()


@pytest.fixture(scope="module")
def busy_page(tmp_path_factory):
    """index.html shows 30 images and links to next.html, which shows 2; 200 ms per response."""
    from tests.support.httpserver import HTTPTestServer
    from tests.support.images import png

    root = tmp_path_factory.mktemp("busy")
    (root / "img").mkdir()
    for n in range(32):
        (root / "img" / f"{n}.png").write_bytes(png(n, (8, 8)))
    tags = "".join(f'<img src="img/{n}.png">' for n in range(30))
    (root / "index.html").write_text(f'<html><body>{tags}<a href="next.html">next</a></body></html>')
    (root / "next.html").write_text('<html><body><img src="img/30.png"><img src="img/31.png"></body></html>')
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    with HTTPTestServer(root, latency=0.2) as server:
        yield server


def busy_page_requests(busy_page, result) -> tuple[list[str], list[str]]:
    """The paths the site was asked for, in order, and those of index.html's images; after a crawl that
    stored all 32 images."""
    assert result.returncode == 0, result.tail()
    assert len([i for i in result.items if i.get("status") == "downloaded"]) == 32, result.tail()
    busy_page.log.wait_idle()
    started = [r.url_path for r in sorted(busy_page.log.snapshot(), key=lambda r: r.start)]
    index_images = [path for path in started if path.startswith("/img/") and int(path[5:-4]) < 30]
    assert len(index_images) == 30
    return started, index_images


def test_a_worker_fetches_its_next_page_while_images_wait(busy_page, run_crawl, redis_url):
    """Four requests in flight, two per host: a worker of a shared crawl takes next.html while images
    of index.html still wait in its downloader (about two rounds of transfers in hand: 8 images), and
    fetches it as soon as a transfer ends. (Scrapy's engine took it only once fewer than four requests
    were in the downloader, and the host's queue served it after the images queued before it: at every
    page the transfers went idle.)"""
    result = run_crawl(["-a", f"url={busy_page.url}", "-a", "depth=1", "-s", "CONCURRENT_REQUESTS=4",
                        "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", "-s", f"IMGSCRAPER_REDIS_URL={redis_url}",
                        "-s", "IMGSCRAPER_CRAWL_ID=next-page"], servers=[busy_page])
    started, index_images = busy_page_requests(busy_page, result)
    assert started.index("/next.html") < started.index(index_images[-3]), started


def test_a_second_worker_takes_a_link_before_the_pages_images_are_stored(busy_page, run_crawl):
    """Two local workers, four images of a page handled at once (CONCURRENT_ITEMS): next.html goes to
    the crawl's queue as index.html is parsed, and is fetched while index.html's 30 images are (it
    waited for 27 of them to be stored: Scrapy handles a callback's output CONCURRENT_ITEMS at a time)."""
    result = run_crawl(["-a", f"url={busy_page.url}", "-a", "depth=1", "-s", "CONCURRENT_REQUESTS=4",
                        "-s", "CONCURRENT_ITEMS=4", "-s", "IMGSCRAPER_WORKERS=2"], servers=[busy_page])
    started, index_images = busy_page_requests(busy_page, result)
    assert started.index("/next.html") < started.index(index_images[15]), started


def test_a_local_worker_joins_once_its_lead_has(redis_url):
    """A local worker, forked as its lead starts, may ask to join first: it waits for its lead
    (rather than start the crawl afresh itself, or find the last run finished and leave)."""
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from imgscraper import settings as project_settings
    from imgscraper.distributed.crawl import SharedCrawl

    settings = {name: getattr(project_settings, name) for name in dir(project_settings)
                if name.startswith("IMGSCRAPER_")}
    settings.update(REDIS_URL=redis_url, IMGSCRAPER_CRAWL_ID="lead-first")
    lead_crawler = get_crawler(Spider, settings_dict=settings)
    worker_crawler = get_crawler(Spider, settings_dict={**settings, "IMGSCRAPER_LEAD_WORKER": "pending"})

    async def run() -> tuple[bool, bool | None, list[bytes]]:
        lead, worker = SharedCrawl(lead_crawler), SharedCrawl(worker_crawler)
        worker.lead = lead.worker
        joining = asyncio.ensure_future(worker.join(Spider(name="images")))
        await asyncio.sleep(0.3)
        waited = not joining.done()
        assert await lead.join(Spider(name="images")) is True  # the lead starts the crawl
        joined = await asyncio.wait_for(joining, 5)
        members = sorted(await lead.server.smembers(lead.key("workers")))
        await worker.leave()
        await lead.leave()
        return waited, joined, members

    waited, joined, members = asyncio.run(run())
    assert waited and joined is False  # joined the lead's run, not started afresh
    assert len(members) == 2
