"""IMGSCRAPER_PROCESSES: one crawl shared by more than one process, seen from the server, the store and the feed.

The site: 20 pages of 12 distinct PNGs each (240 images), served with a little
latency so that the crawl lasts long enough for the worker process to start
and take its share of the pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT
from faultsite import make_png
from httpserver import HTTPTestServer

from imgscraper.processes import PARENT, TOKEN, Channel, ImageClaims, WorkLedger

N_PAGES, PER_PAGE = 20, 12
_PROCESSES_STAT = re.compile(r"'imgscraper/processes/images': (\d+)")


class ManyImages:
    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.images = {f"/i/{p}-{k}.png": make_png(70_000 + p * PER_PAGE + k) for p in range(N_PAGES) for k in range(PER_PAGE)}
        links = "".join(f'<a href="/p{p}.html">page {p}</a>' for p in range(1, N_PAGES))
        for page in range(N_PAGES):
            imgs = "".join(f'<img src="/i/{page}-{k}.png">' for k in range(PER_PAGE))
            html = f"<html><body>{imgs}{links if page == 0 else ''}</body></html>"
            server.add_handler(f"/p{page}.html", lambda h, t=html: h.send_body(t, content_type="text/html") or True)
        server.add_handler("/i/*", lambda h: h.send_body(self.images[h.url_path], content_type="image/png") or True)
        self.by_sha = {hashlib.sha256(body).hexdigest(): path for path, body in self.images.items()}

    def stored_paths(self, store: Path) -> list[str]:
        """Site paths of the files in ``store``; fails on anything that is not a whole served image."""
        paths = []
        for file in (store / "full").iterdir():
            sha = hashlib.sha256(file.read_bytes()).hexdigest()
            assert sha in self.by_sha, f"{file.name} is not a served image"
            paths.append(self.by_sha[sha])
        return paths


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www", latency=0.02) as server:
        yield ManyImages(server)


def command(site: ManyImages, store: Path, *settings: str, runspider: bool = False) -> list[str]:
    """``scrapy crawl images`` (workers forked ahead), or ``scrapy runspider`` (workers started as new interpreters)."""
    run = ["runspider", "imgscraper/spiders/images.py"] if runspider else ["crawl", "images"]
    cmd = [sys.executable, "-m", "scrapy", *run, "-a", f"url={site.server.url}p0.html", "-a", "depth=1",
           "-s", f"IMAGES_STORE={store}", "-s", "LOG_LEVEL=INFO"]
    for setting in settings:
        cmd += ["-s", setting]
    return cmd


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def worker_processes_of(pid: int) -> list[int]:
    """PIDs of the worker processes the crawl ``pid`` started."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:  # forked by the crawl command: same command line
            children.append(int(entry.name))
    return children


def settings_copies() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("imgscraper-worker-*"))


@pytest.mark.parametrize("runspider", [False, True], ids=["crawl-forked", "runspider-spawned"])
def test_two_processes_share_the_pages_and_store_every_image_once(site, tmp_path, runspider):
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    copies_before = settings_copies()
    result = subprocess.run(
        command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS_PER_DOMAIN=8", runspider=runspider)
        + ["-O", str(feed)],
        cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    site.server.log.wait_idle()
    fetched = [r.url_path for r in site.server.log if r.url_path.startswith("/i/")]
    assert sorted(fetched) == sorted(site.images), "an image was fetched twice, or not at all"
    pages = [r.url_path for r in site.server.log if r.url_path.endswith(".html")]
    assert sorted(pages) == sorted(f"/p{n}.html" for n in range(N_PAGES)), "a page was fetched twice, or not at all"
    # Both processes did part of the work: the worker took pages and stored their images.
    handed = int(_PROCESSES_STAT.search(result.stderr)[1])
    assert 0 < handed < len(site.images), handed
    assert 0 < int(re.search(r"'imgscraper/processes/pages': (\d+)", result.stderr)[1]) < N_PAGES
    # One feed and one set of counts for the whole crawl.
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    assert sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items) == sorted(site.images)
    assert {item["status"] for item in items} == {"downloaded"}
    assert "'imgscraper/images/downloaded': 240" in result.stderr
    assert "'imgscraper/images/found': 240" in result.stderr
    assert "'item_scraped_count': 240" in result.stderr
    assert "Traceback" not in result.stderr and " ERROR: " not in result.stderr
    # The settings handed to the worker process (they may hold credentials) are not left behind.
    assert settings_copies() <= copies_before


def test_one_page_of_many_images_is_shared_within_the_limit(site, tmp_path):
    """Depth 0: the worker takes no page, it takes the images the main process's page has spare."""
    store = tmp_path / "store"
    site.server.latency = 0.05
    many = [f"/i/{page}-{k}.png" for page in range(5) for k in range(PER_PAGE)]
    html = "<html><body>" + "".join(f'<img src="{path}">' for path in many) + "</body></html>"
    site.server.add_handler("/one.html", lambda h: h.send_body(html, content_type="text/html") or True)
    cmd = command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS=8", "CONCURRENT_REQUESTS_PER_DOMAIN=4")
    cmd[cmd.index(f"url={site.server.url}p0.html")] = f"url={site.server.url}one.html"
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(site.stored_paths(store)) == sorted(many)
    site.server.log.wait_idle()
    assert sorted(r.url_path for r in site.server.log if r.url_path.startswith("/i/")) == sorted(many)
    # The worker stored part of them, and the two processes together kept to the per-host limit.
    by_worker = int(_PROCESSES_STAT.search(result.stderr)[1])
    assert 0 < by_worker < len(many), by_worker
    assert site.server.log.max_in_flight("/i/") <= 4
    assert f"'item_scraped_count': {len(many)}" in result.stderr
    assert "Traceback" not in result.stderr and " ERROR: " not in result.stderr


TAGGED_SPIDER = """
from imgscraper.spiders.images import ImagesSpider


class TaggedImagesSpider(ImagesSpider):
    name = "tagged"

    def new_images(self, refs, page, journal_page=None):
        for item in super().new_images(refs, page, journal_page):
            yield {"url": item.url, "page": item.page, "tag": "mine"}
"""


def test_a_spiders_own_items_reach_the_feed_from_every_process(site, tmp_path):
    """Items of another kind than ImageItem (a dict with a field of its own) travel whole from the worker."""
    store, feed, spider = tmp_path / "store", tmp_path / "items.jsonl", tmp_path / "tagged.py"
    spider.write_text(TAGGED_SPIDER)
    cmd = command(site, store, "IMGSCRAPER_PROCESSES=2", runspider=True) + ["-O", str(feed)]
    cmd[cmd.index("imgscraper/spiders/images.py")] = str(spider)
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(_PROCESSES_STAT.search(result.stderr)[1]) > 0, result.stderr[-3000:]
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    assert len(items) == len(site.images)
    assert {item["tag"] for item in items} == {"mine"}
    assert sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items) == sorted(site.images)
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    assert "Traceback" not in result.stderr and " ERROR: " not in result.stderr


PLAIN_SPIDER = """
import scrapy

from imgscraper.items import ImageItem


class PlainSpider(scrapy.Spider):
    name = "plain"

    async def start(self):
        yield scrapy.Request(self.start_page)

    def parse(self, response):
        for src in response.css("img::attr(src)").getall():
            yield ImageItem(url=response.urljoin(src), page=response.url)
"""


def test_a_spider_that_does_not_list_its_arguments_keeps_one_process(site, tmp_path):
    """A worker is built with the spider's arguments: a spider that cannot give them crawls alone."""
    store, spider = tmp_path / "store", tmp_path / "plain.py"
    spider.write_text(PLAIN_SPIDER)
    cmd = [sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"start_page={site.server.url}p0.html",
           "-s", f"IMAGES_STORE={store}", "-s", "LOG_LEVEL=INFO", "-s", "IMGSCRAPER_PROCESSES=2"]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMGSCRAPER_PROCESSES=2: using one process (spider 'plain' does not list its arguments" in result.stderr
    assert _PROCESSES_STAT.search(result.stderr) is None
    assert sorted(site.stored_paths(store)) == sorted(f"/i/0-{k}.png" for k in range(PER_PAGE))


@pytest.mark.parametrize("limits", [
    ("CONCURRENT_REQUESTS_PER_DOMAIN=8",),
    # 2 requests per process: a process keeps 4 of a page's 12 images, the rest go round in batches of 2.
    ("CONCURRENT_REQUESTS=4", "CONCURRENT_REQUESTS_PER_DOMAIN=4"),
], ids=["pages", "pages-and-spare-images"])
def test_worker_killed_mid_crawl_the_crawl_still_stores_everything(site, tmp_path, limits):
    store = tmp_path / "store"
    site.server.latency = 0.05
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_PROCESSES=2", *limits),
                            cwd=PROJECT_ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    killed = False
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        stored = len(list((store / "full").glob("*.png"))) if (store / "full").exists() else 0
        workers = worker_processes_of(proc.pid)
        if workers and stored >= 40:
            os.kill(workers[0], signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert killed, "the crawl ended before its worker process could be killed"
    assert proc.returncode == 0, err[-3000:]
    assert len(re.findall(r"WARNING: Worker process \d+ ended before the crawl", err)) == 1, err[-3000:]
    assert "'imgscraper/processes/lost': 1" in err
    if len(limits) == 2:
        assert re.search(r"'imgscraper/processes/spare_images': \d+", err), err[-3000:]
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    assert not [p for p in (store / "full").iterdir() if p.name.startswith(".tmp")]


def test_channel_after_the_end_of_the_stream():
    """Once one end closed writing, its sends are refused (it used to raise on the next flush,
    and a claim the worker sent then waited forever); the other end, which saw the end, still
    sends, and the first end still reads it until it closes."""

    async def exchange() -> tuple[list, list, list, bool, bool]:
        main_sock, worker_sock = socket.socketpair()
        main_got: list = []
        worker_got: list = []
        ends: list = []
        main = Channel(main_sock, main_got.append, lambda why: ends.append(("main", why)))
        worker = Channel(worker_sock, worker_got.append, lambda why: ends.append(("worker", why)))
        main.start()
        worker.start()
        main.send(("page", 1))
        await asyncio.sleep(0.05)
        main.close_writing()
        refused = not main.send(("claimed", 7, [True]))
        await asyncio.sleep(0.05)
        ended = worker.ended and not main.ended
        assert worker.send(("item", {"url": "u"}))
        await asyncio.sleep(0.05)
        worker.close_writing()
        await asyncio.gather(main.closed(1), worker.closed(1))
        return main_got, worker_got, ends, refused, ended

    main_got, worker_got, ends, refused, ended = asyncio.run(exchange())
    assert worker_got == [("page", 1)]
    assert main_got == [("item", {"url": "u"})]
    assert refused and ended
    assert sorted(ends) == [("main", ""), ("worker", "")]


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_stops_every_process_and_leaves_whole_files(site, tmp_path, presses):
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    site.server.latency = 0.05
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_PROCESSES=2") + ["-O", str(feed)], cwd=PROJECT_ROOT,
                            env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = workers or worker_processes_of(proc.pid)
        if workers and (store / "full").exists() and len(list((store / "full").glob("*.png"))) >= 40:
            break
        time.sleep(0.02)
    assert proc.poll() is None and workers, "the crawl ended before it could be interrupted"
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-3000:]  # not finished: a scheduler must not take it for done
    assert ("forcing unclean shutdown" in err) == (presses == 2), err[-3000:]
    ended = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < ended:
        time.sleep(0.05)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived the crawl"
    assert not [p for p in (store / "full").iterdir() if p.name.startswith(".tmp")]
    stored = site.stored_paths(store)  # fails on a partial file
    assert 0 < len(stored) < len(site.images)
    if presses == 1:
        assert "Traceback" not in err, err[-3000:]
        items = [json.loads(line) for line in feed.read_text().splitlines()]
        assert {item["path"] for item in items} <= {f"full/{p.name}" for p in (store / "full").iterdir()}


@pytest.mark.parametrize(("setting", "why"), [
    ("DOWNLOAD_DELAY=0.001", "DOWNLOAD_DELAY spaces the requests of one process"),
    ("IMGSCRAPER_MAX_PAGES=100", "IMGSCRAPER_MAX_PAGES is counted by one process"),
    ("CLOSESPIDER_PAGECOUNT=1000", "CLOSESPIDER_PAGECOUNT is counted by one process"),
])
def test_settings_that_pace_or_count_one_process_keep_one_process(site, tmp_path, setting, why):
    store = tmp_path / "store"
    result = subprocess.run(command(site, store, "IMGSCRAPER_PROCESSES=2", setting),
                            cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"IMGSCRAPER_PROCESSES=2: using one process ({why})" in result.stderr
    assert _PROCESSES_STAT.search(result.stderr) is None
    assert sorted(site.stored_paths(store)) == sorted(site.images)


def test_listing_crawl_keeps_one_process_and_its_limits(site, tmp_path):
    """-a download=no: nothing to hand over, so the limits are not divided either."""
    store = tmp_path / "store"
    cmd = command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS_PER_DOMAIN=6") + ["-a", "download=no"]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMGSCRAPER_PROCESSES=2: using one process (no images are downloaded" in result.stderr
    assert "'CONCURRENT_REQUESTS_PER_DOMAIN': 6" in result.stderr or "CONCURRENT_REQUESTS_PER_DOMAIN': '6'" in result.stderr
    assert "'item_scraped_count': 240" in result.stderr


def cores() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("per_host", "runspider", "expected"), [
    (8, False, 1),  # the default: one process
    (4, False, 1),
    (8, True, 1),
], ids=["crawl", "crawl-4-per-host", "runspider"])
def test_default_crawls_in_one_process(site, tmp_path, per_host, runspider, expected):
    store = tmp_path / "store"
    result = subprocess.run(command(site, store, f"CONCURRENT_REQUESTS_PER_DOMAIN={per_host}", runspider=runspider),
                            cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    site.server.log.wait_idle()
    assert sorted(r.url_path for r in site.server.log if r.url_path.startswith("/i/")) == sorted(site.images)
    by_worker = _PROCESSES_STAT.search(result.stderr)
    if expected > 1:
        assert by_worker is not None and 0 < int(by_worker[1]) < len(site.images), result.stderr[-3000:]
        assert f"'CONCURRENT_REQUESTS_PER_DOMAIN': {per_host // expected}" in result.stderr
    else:
        assert by_worker is None
        assert "using one process" not in result.stderr  # nothing was asked for
    assert "'imgscraper/images/found': 240" in result.stderr
    assert "'item_scraped_count': 240" in result.stderr


def test_automatic_processes_one_per_core_while_each_keeps_four_per_host():
    from scrapy.settings import Settings

    from imgscraper.processes import automatic_processes

    def processes(**values) -> int:
        return automatic_processes(Settings({"CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 8, **values}))

    assert processes() == min(cores(), 2)
    assert processes(CONCURRENT_REQUESTS_PER_DOMAIN=64, CONCURRENT_REQUESTS=64) == min(cores(), 16)
    assert processes(CONCURRENT_REQUESTS_PER_DOMAIN=7) == 1
    assert processes(CONCURRENT_REQUESTS=4) == 1


@pytest.mark.parametrize(("values", "why"), [
    ({}, ""),
    ({"HTTPCACHE_ENABLED": True}, ""),  # one file per response: processes do not share a file
    ({"HTTPCACHE_ENABLED": True, "HTTPCACHE_STORAGE": "scrapy.extensions.httpcache.DbmCacheStorage"},
     "HTTPCACHE_STORAGE is written by one process"),
    ({"CLOSESPIDER_ERRORCOUNT": 5}, "CLOSESPIDER_ERRORCOUNT is counted by one process"),
    ({"CLOSESPIDER_ITEMCOUNT": 5}, ""),  # the main process sees every item
    ({"SCHEDULER": "scrapy_redis.scheduler.Scheduler"}, "SCHEDULER is not Scrapy's"),
    ({"DOWNLOAD_SLOTS": {"example.com": {"concurrency": 1}}}, "DOWNLOAD_SLOTS sets the concurrency and delays of one process"),
])
def test_why_one_process(values, why):
    from scrapy.settings import Settings

    from imgscraper.processes import CrawlProcesses

    settings = Settings()
    settings.setmodule("imgscraper.settings", priority="project")
    settings.update(values, priority="cmdline")
    assert CrawlProcesses.why_one_process(settings, 2) == why


@pytest.mark.parametrize(("attribute", "value"), [("download_delay", 0.5), ("max_concurrent_requests", 2)])
def test_a_spider_that_paces_itself_keeps_one_process_and_its_limits(attribute, value):
    """Scrapy applies these spider attributes after the add-ons: the add-on reads them from the spider."""
    from types import SimpleNamespace

    from scrapy.settings import Settings

    from imgscraper.processes import CrawlProcesses
    from imgscraper.spiders.images import ImagesSpider

    spider = ImagesSpider(url="http://127.0.0.1/")
    setattr(spider, attribute, value)
    settings = Settings()
    settings.setmodule("imgscraper.settings", priority="project")
    settings.set("IMGSCRAPER_PROCESSES", 2, priority="cmdline")
    CrawlProcesses(SimpleNamespace(spider=spider)).update_settings(settings)
    assert settings.getint("IMGSCRAPER_PROCESSES") == 1
    assert settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 8  # not divided
    assert settings["SCHEDULER"] != "imgscraper.processes.MainScheduler"


def test_image_claims_one_process_per_image_and_released_when_a_worker_is_lost():
    claims = ImageClaims()
    assert claims.claim(0, ["a", "b"]) == [True, True]
    assert claims.claim(1, ["b", "c", "d"]) == [False, True, True]
    claims.done(["c"])
    assert claims.release(1) == 1  # "d": claimed, not done
    assert claims.claim(0, ["c", "d"]) == [False, True]


def test_work_ledger_holds_a_page_until_its_outputs_are_through():
    done: list[str] = []
    ledger = WorkLedger(max_images=4, on_done=done.append)
    from scrapy import Request

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


def test_a_forked_worker_crawls_on_an_event_loop_of_its_own():
    """The command's event loop (made before the fork) shares its epoll instance with the main process."""
    import asyncio

    from imgscraper.processes import use_own_event_loop

    inherited = asyncio.new_event_loop()
    asyncio.set_event_loop(inherited)
    own = use_own_event_loop()
    try:
        assert own is not inherited and asyncio.get_event_loop() is own
        assert own._selector.fileno() != inherited._selector.fileno()  # another epoll instance
        assert not inherited.is_closed()  # closing it would unregister the main process's sockets
    finally:
        own.close()
        inherited.close()
        asyncio.set_event_loop(None)


def test_main_process_killed_the_worker_ends_and_leaves_no_partial_file(site, tmp_path):
    store = tmp_path / "store"
    site.server.latency = 0.05
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS_PER_DOMAIN=8"),
                            cwd=PROJECT_ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        stored = len(list((store / "full").glob("*.png"))) if (store / "full").exists() else 0
        workers = worker_processes_of(proc.pid)
        if workers and stored >= 40:
            break
        time.sleep(0.02)
    assert workers and proc.poll() is None, "the crawl ended before it could be killed"
    proc.kill()
    proc.wait()
    # The worker sees the end of its socket, closes its spider and exits: no orphan keeps crawling.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in workers):
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and _running(pid)], "the worker outlived the crawl"
    assert not [p for p in (store / "full").iterdir() if p.name.startswith(".tmp")]
    assert set(site.stored_paths(store)) <= set(site.images)  # whole images only


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not yet reaped, does not)."""
    try:
        return (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
