"""Interruptions: Ctrl-C once (graceful), twice (at once), ``kill -9``; then
the same command with the same ``JOBDIR`` finishes the job.

The site: 30 pages in a binary tree (depth 4), 6 distinct images each (180),
served with a little latency so the crawl is interrupted mid-way (when 30
or more images are stored). After every interruption the store holds only
complete, byte-exact images and no temporary file; after the resume it holds
exactly the 180 images, and no image stored before was requested again.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from imgscraper.extensions.journal import JournalPage, PageJournal
from imgscraper.pipelines.records import SQLiteRecord
from tests.discovery.test_sitemaps import urlset
from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

N_PAGES, PER_PAGE = 30, 6


class TreeSite:
    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.images: dict[str, bytes] = {}
        for page in range(N_PAGES):
            links = "".join(f'<a href="/p{q}.html">next</a>' for q in (2 * page + 1, 2 * page + 2) if q < N_PAGES)
            images = "".join(f'<img src="/i/{page}-{k}.png">' for k in range(PER_PAGE))
            for k in range(PER_PAGE):
                self.images[f"/i/{page}-{k}.png"] = png(50_000 + page * PER_PAGE + k)
            html = f"<html><body>{images}{links}</body></html>"
            server.add_handler(f"/p{page}.html", lambda h, t=html: h.send_body(t, content_type="text/html") or True)
        server.add_handler("/i/*", lambda h: h.send_body(self.images[h.url_path], content_type="image/png") or True)
        self.sha_to_path = {hashlib.sha256(body).hexdigest(): path for path, body in self.images.items()}

    def image_requests(self) -> list[str]:
        self.server.log.wait_idle()
        return [r.url_path for r in self.server.log if r.url_path.startswith("/i/")]


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www", latency=0.03) as server:
        yield TreeSite(server)


class Job:
    """``scrapy crawl images`` over the tree site (or with the ``start`` arguments given) with one
    store and one JOBDIR."""

    def __init__(self, site: TreeSite, tmp_path: Path, start: list[str] | None = None):
        self.site = site
        self.store = tmp_path / "store"
        self.items = tmp_path / "items.jsonl"
        start = start or ["-a", f"url={site.server.url}p0.html", "-a", "depth=10"]
        self.cmd = crawl_command([*start, "-s", f"JOBDIR={tmp_path / 'job'}", "-s", "CONCURRENT_REQUESTS=4"],
                                 store=self.store, items=self.items)

    def start(self) -> subprocess.Popen:
        return subprocess.Popen(self.cmd, cwd=PROJECT_ROOT, env=crawl_environment(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def run(self) -> subprocess.CompletedProcess:
        proc = self.start()
        _, err = proc.communicate(timeout=120)
        return subprocess.CompletedProcess(self.cmd, proc.returncode, "", err)

    def files(self) -> dict[str, bytes]:
        """The store's files by name (temporary ones included)."""
        folder = self.store / "full"
        found = {}
        for path in folder.iterdir() if folder.exists() else ():
            try:
                found[path.name] = path.read_bytes()
            except FileNotFoundError:  # a temporary file renamed meanwhile
                continue
        return found

    def wait_for_files(self, proc: subprocess.Popen, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len([name for name in self.files() if not name.startswith(".tmp")]) < n:
            assert proc.poll() is None, "the crawl ended before it could be interrupted"
            assert time.monotonic() < deadline, "the crawl stored too little"
            time.sleep(0.01)

    def stored_paths(self, temporary_files_ok: bool = False) -> set[str]:
        """The site paths of the images in the store; fails on any file that is not one, complete."""
        paths = set()
        for name, body in self.files().items():
            if temporary_files_ok and name.startswith(".tmp-"):
                continue
            assert not name.startswith(".tmp"), f"temporary file left: {name}"
            sha = hashlib.sha256(body).hexdigest()
            assert sha in self.site.sha_to_path, f"{name} is not a complete served image"
            paths.add(self.site.sha_to_path[sha])
        return paths

    def recorded_paths(self) -> set[str]:
        """The site paths of the images the store's record names as stored."""
        with sqlite3.connect(f"file:{self.store / SQLiteRecord.FILENAME}?mode=ro", uri=True) as record:
            urls = [url for (url,) in record.execute("SELECT url FROM images WHERE path != ''")]
        record.close()
        return {urlsplit(url).path for url in urls}

    def resume_and_check(self, stored_before: set[str]) -> None:
        """Run the same command again: the full set, nothing stored before fetched again."""
        self.site.server.log.clear()
        result = self.run()
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Resuming from JOBDIR" in result.stderr
        assert self.stored_paths() == set(self.site.images)
        again = set(self.site.image_requests()) & stored_before
        assert not again, f"{len(again)} images stored before the interruption were downloaded again"


def interrupt(proc: subprocess.Popen, signals_: list[int]) -> tuple[float, str]:
    started = time.monotonic()
    for sig in signals_:
        proc.send_signal(sig)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    return time.monotonic() - started, err


@pytest.mark.crawl
def test_ctrl_c_once_finishes_in_flight_work_then_resumes(site, tmp_path):
    job = Job(site, tmp_path)
    proc = job.start()
    job.wait_for_files(proc, 30)
    took, err = interrupt(proc, [signal.SIGINT])
    assert "Closing spider (shutdown)" in err and "Traceback" not in err, err[-3000:]
    assert proc.returncode == 1  # the crawl did not finish: a scheduler must not take it for done
    assert took < 20
    stored = job.stored_paths()
    items = [json.loads(line) for line in job.items.read_text().splitlines()]
    assert items and all(i["status"] == "downloaded" for i in items)
    # Every image that made it to the feed is complete in the store.
    assert {i["path"].removeprefix("full/") for i in items} <= set(job.files())
    assert len(stored) < len(site.images)
    job.resume_and_check(stored)


@pytest.mark.crawl
def test_ctrl_c_twice_stops_at_once_without_partial_files(site, tmp_path):
    job = Job(site, tmp_path)
    proc = job.start()
    job.wait_for_files(proc, 30)
    took, err = interrupt(proc, [signal.SIGINT, signal.SIGINT])
    assert "Received SIGINT twice, forcing unclean shutdown" in err, err[-3000:]
    assert took < 10
    stored = job.stored_paths()
    assert len(stored) < len(site.images)
    job.resume_and_check(stored)


@pytest.mark.crawl
def test_resume_past_an_unreadable_scrapy_queue(site, tmp_path):
    """An unclean stop can leave Scrapy's queue files empty (queuelib writes their
    header on close); the resume must not trip on them: the journal has the pages."""
    job = Job(site, tmp_path)
    journal = PageJournal.in_job_dir(tmp_path / "job")
    journal.add(f"{site.server.url}p0.html", 0)
    journal.close()
    # What a forced shutdown left in one run: no active queue, an empty file for priority 0 of the host's slot.
    slot = tmp_path / "job" / "requests.queue" / f"127.0.0.1-{hashlib.md5(b'127.0.0.1').hexdigest()}"
    slot.mkdir(parents=True)
    (slot / "0").write_bytes(b"")
    (slot.parent / "active.json").write_text("{}")
    job.resume_and_check(set())


@pytest.mark.crawl
def test_kill_9_then_resume_with_same_jobdir(site, tmp_path):
    job = Job(site, tmp_path)
    proc = job.start()
    job.wait_for_files(proc, 40)
    interrupt(proc, [signal.SIGKILL])
    assert proc.returncode == -signal.SIGKILL
    # A kill can land mid-write: at most a temporary file is left (the resumed
    # crawl removes it), never a truncated image.
    stored = job.stored_paths(temporary_files_ok=True)
    assert 40 <= len(stored) < len(site.images)
    # Or between an image's file and its record (written after it, so that the record never names a
    # file that is not there): such an image is not known to be stored, and is fetched again.
    recorded = job.recorded_paths()
    assert len(stored - recorded) <= 4, stored - recorded  # at most one per request in flight
    job.resume_and_check(stored & recorded)


SITEMAP_PAGES, LISTED = 20, 3


@pytest.fixture
def sitemap_site(tmp_path):
    """A sitemap of 20 pages, each showing one image and listed with 3 more that only the sitemap names."""
    with HTTPTestServer(tmp_path / "www", latency=0.03) as server:
        site = TreeSite.__new__(TreeSite)
        site.server, site.images, listed = server, {}, {}
        for page in range(SITEMAP_PAGES):
            shown, *only_listed = [f"/i/{page}-{k}.png" for k in range(1 + LISTED)]
            site.images.update({path: png(80_000 + page * 10 + k) for k, path in enumerate([shown, *only_listed])})
            listed[server.url_for(f"p{page}.html")] = [server.url_for(path) for path in only_listed]
            html = f'<html><body><img src="{shown}"></body></html>'
            server.add_handler(f"/p{page}.html", lambda h, t=html: h.send_body(t, content_type="text/html") or True)
        server.add_handler("/sitemap.xml", lambda h: h.send_body(urlset(listed), content_type="application/xml") or True)
        server.add_handler("/i/*", lambda h: h.send_body(site.images[h.url_path], content_type="image/png") or True)
        site.sha_to_path = {hashlib.sha256(body).hexdigest(): path for path, body in site.images.items()}
        yield site


@pytest.mark.crawl
def test_a_page_from_a_sitemap_resumed_keeps_the_images_only_the_sitemap_listed(sitemap_site, tmp_path):
    """The journal re-requests the pages not done with the images the sitemap listed for them:
    after the resume every image is stored, once, and none stored before is fetched again."""
    job = Job(sitemap_site, tmp_path, ["-a", f"sitemap={sitemap_site.server.url}sitemap.xml"])
    proc = job.start()
    job.wait_for_files(proc, 20)
    interrupt(proc, [signal.SIGINT])
    assert proc.returncode == 1
    stored = job.stored_paths()
    assert len(stored) < len(sitemap_site.images)
    job.resume_and_check(stored)
    assert len(job.files()) == len(sitemap_site.images)


def test_stale_temporary_files_removed_when_the_store_opens(tmp_path):
    from imgscraper.pipelines.stores import AtomicFSFilesStore

    full = tmp_path / "store" / "full"
    full.mkdir(parents=True)
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    files = {
        "dead_writer": full / f".tmp-{host}-{dead_pid}-abcd1234.png",
        "live_writer": full / f".tmp-{host}-{os.getpid()}-abcd1234.png",
        "other_host_recent": full / ".tmp-elsewhere-1-abcd1234.png",
        "other_host_old": full / ".tmp-elsewhere-2-abcd1234.png",
        "image": full / "0b6f5a8e-6c1d-5d7e-9a43-8e2f0b4d7c11.png",
    }
    for path in files.values():
        path.write_bytes(b"x")
    old = time.time() - 2 * AtomicFSFilesStore.STALE_AFTER
    os.utime(files["other_host_old"], (old, old))
    AtomicFSFilesStore(str(tmp_path / "store"))
    left = {name for name, path in files.items() if path.exists()}
    assert left == {"live_writer", "other_host_recent", "image"}


# -- the page journal, unit ---------------------------------------------------------


def journal_spider(tmp_path):
    from scrapy.utils.test import get_crawler

    from imgscraper.spiders.images import ImagesSpider

    from imgscraper import settings as project_settings

    settings = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}
    # No download here: no reactor needed in the test process.
    settings["TWISTED_REACTOR_ENABLED"] = False
    crawler = get_crawler(ImagesSpider, settings_dict={**settings, "JOBDIR": str(tmp_path / "job")})
    crawler._apply_settings()
    return ImagesSpider.from_crawler(crawler, url="http://127.0.0.1:9/", depth="1")


def page_response(url: str, body: str):
    from scrapy.http import HtmlResponse, Request

    request = Request(url, meta={"depth": 0, "imgscraper_page": url})
    return HtmlResponse(url, body=body.encode(), encoding="utf-8", request=request)


def test_page_done_only_when_its_items_are_finished(tmp_path):
    spider = journal_spider(tmp_path)
    journal = spider.tracker.journal
    url = "http://127.0.0.1:9/"
    journal.add(url, 0)
    output = list(spider.parse(page_response(url, '<img src="/a.png"><img src="/b.png"><a href="/next.html">n</a>')))
    items = [o for o in output if not hasattr(o, "callback")]
    assert len(items) == 2
    assert journal.pending() == [JournalPage(url, 0), JournalPage("http://127.0.0.1:9/next.html", 1)]
    spider.item_finished(items[0])
    assert not journal.is_done(url)
    spider.item_finished(items[1])
    assert journal.is_done(url)
    assert journal.pending() == [JournalPage("http://127.0.0.1:9/next.html", 1)]
    # A link the journal already holds is not requested again.
    again = page_response("http://127.0.0.1:9/other.html", '<a href="/next.html">n</a>')
    assert [o for o in spider.parse(again) if hasattr(o, "callback")] == []


def test_the_journal_keeps_what_a_page_request_carries(tmp_path):
    """A page's sites and sitemap images come back with it; a journal written before they were kept opens too."""
    import sqlite3

    journal = PageJournal(tmp_path / "pages.sqlite3")
    journal.add("http://a.test/", 0, sitemap_images=["http://a.test/1.png", "http://cdn.test/2.png"])
    journal.add("http://a.test/empty.html", 0, sitemap_images=[])
    journal.add("http://b.test/next.html", 1, sites=["b.test"])
    assert journal.pending() == [
        JournalPage("http://a.test/", 0, (), ("http://a.test/1.png", "http://cdn.test/2.png")),
        JournalPage("http://a.test/empty.html", 0, (), ()),
        JournalPage("http://b.test/next.html", 1, ("b.test",)),
    ]
    journal.close()
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    old.execute("CREATE TABLE pages (url TEXT PRIMARY KEY, depth INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0)")
    old.execute("INSERT INTO pages (url, depth) VALUES ('http://a.test/', 2)")
    old.commit()
    old.close()
    journal = PageJournal(tmp_path / "old.sqlite3")
    assert journal.pending() == [JournalPage("http://a.test/", 2)]
    assert journal.add("http://a.test/listed.html", 0, sitemap_images=["http://a.test/1.png"])
    assert journal.pending() == [JournalPage("http://a.test/listed.html", 0, (), ("http://a.test/1.png",)),
                                 JournalPage("http://a.test/", 2)]
    journal.close()


def test_parse_cut_short_leaves_the_page_to_redo(tmp_path):
    spider = journal_spider(tmp_path)
    url = "http://127.0.0.1:9/"
    spider.tracker.journal.add(url, 0)
    parse = spider.parse(page_response(url, '<img src="/a.png"><img src="/b.png">'))
    first = next(parse)
    spider.item_finished(first)
    parse.close()  # the crawl stopped while the page was being parsed
    assert not spider.tracker.journal.is_done(url)


# -- a prompt stop: the first Ctrl-C starts no new download --------------------------

WIDE_PAGES, WIDE_PER_PAGE, WIDE_LATENCY = 2, 200, 0.1


@pytest.fixture
def wide_site(tmp_path):
    """2 pages, 200 images each, every response 100 ms late: when the crawl is interrupted, the
    pipeline holds far more images (the rest of the page) than the downloader has in flight."""
    with HTTPTestServer(tmp_path / "www", latency=WIDE_LATENCY) as server:
        site = TreeSite.__new__(TreeSite)
        site.server, site.images = server, {}
        for page in range(WIDE_PAGES):
            links = "".join(f'<a href="/p{q}.html">p</a>' for q in range(1, WIDE_PAGES)) if page == 0 else ""
            for k in range(WIDE_PER_PAGE):
                site.images[f"/i/{page}-{k}.png"] = png(70_000 + page * WIDE_PER_PAGE + k)
            html = "".join(f'<img src="/i/{page}-{k}.png">' for k in range(WIDE_PER_PAGE)) + links
            server.add_handler(f"/p{page}.html", lambda h, t=html: h.send_body(t, content_type="text/html") or True)
        server.add_handler("/i/*", lambda h: h.send_body(site.images[h.url_path], content_type="image/png") or True)
        site.sha_to_path = {hashlib.sha256(body).hexdigest(): path for path, body in site.images.items()}
        yield site


@pytest.mark.crawl
@pytest.mark.parametrize(
    "signals_", [[signal.SIGINT], [signal.SIGTERM], [signal.SIGINT, signal.SIGINT]], ids=["SIGINT", "SIGTERM", "twice"]
)
def test_a_signal_starts_no_new_download_and_exits_promptly(wide_site, tmp_path, signals_):
    job = Job(wide_site, tmp_path)
    job.cmd += ["-s", "CONCURRENT_REQUESTS=16", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16"]
    proc = job.start()
    job.wait_for_files(proc, 30)
    signalled = time.monotonic()
    for sig in signals_:
        proc.send_signal(sig)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - signalled
    assert "Closing spider (shutdown)" in err and "Traceback" not in err, err[-3000:]
    assert proc.returncode == 1
    server_log = wide_site.server.log
    server_log.wait_idle()
    images = [r for r in server_log if r.url_path.startswith("/i/")]
    # Up to CONCURRENT_REQUESTS (16) requests were on their way when the signal arrived, and a
    # loaded server may read them a little later; as many again may start before a busy crawl
    # handles the signal. Any more would be downloads started after it (before this change:
    # the rest of the page, about 150).
    after = [r for r in images if r.start > signalled]
    assert len(after) <= 2 * 16, f"{len(after)} image requests reached the server after the signal"
    assert all(r.start < signalled + 2 for r in after), sorted(r.start - signalled for r in after)
    longest = max(r.duration or 0 for r in images)
    assert took < 2 + longest + 1, f"{took:.1f} s from the signal to the exit"  # + 1 s: Python's own exit
    stored = job.stored_paths()  # complete images, no temporary file
    assert len(stored) < len(wide_site.images)
    if len(signals_) == 1:
        items = [json.loads(line) for line in job.items.read_text().splitlines()]
        assert items and all(i["status"] == "downloaded" for i in items)  # the images not started are no result
        assert "images not downloaded: the crawl stopped first" in err
    else:
        assert "Received SIGINT twice, forcing unclean shutdown" in err
    job.resume_and_check(stored)


@pytest.mark.crawl
def test_ctrl_c_without_jobdir_says_how_to_resume(wide_site, tmp_path):
    job = Job(wide_site, tmp_path)
    at = job.cmd.index(f"JOBDIR={tmp_path / 'job'}")
    del job.cmd[at - 1:at + 1]
    job.cmd += ["-s", "CONCURRENT_REQUESTS=16", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16"]
    proc = job.start()
    job.wait_for_files(proc, 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    (line,) = [line for line in err.splitlines() if "images not downloaded: the crawl stopped first" in line]
    assert "same JOBDIR" not in line and "-s JOBDIR=" in line, line


def test_a_stop_leaves_the_pages_it_cut_short_to_redo(tmp_path):
    from types import SimpleNamespace

    from imgscraper.exceptions import StoppedBeforeDownload

    spider = journal_spider(tmp_path)
    journal = spider.tracker.journal
    done_page, cut_page = "http://127.0.0.1:9/", "http://127.0.0.1:9/b.html"
    journal.add(done_page, 0)
    journal.add(cut_page, 0)
    # A page parsed before the stop: one image stored, the other not started when the crawl stopped.
    first, second = list(spider.parse(page_response(done_page, '<img src="/a.png"><img src="/b.png">')))
    spider.crawler.engine = SimpleNamespace(spider=spider, running=False)  # what Crawler.stop() leaves
    spider.item_finished(first)
    spider.item_finished(second, exception=StoppedBeforeDownload())
    # A page parsed during the stop: no image is yielded any more.
    assert list(spider.parse(page_response(cut_page, '<img src="/c.png"><img src="/d.png">'))) == []
    assert journal.pending() == [JournalPage(done_page, 0), JournalPage(cut_page, 0)]


@pytest.mark.crawl
def test_a_signal_cuts_a_retry_after_wait_short(tmp_path):
    """An image answered 429 with Retry-After: 30 s: the crawl waits to retry it, and a Ctrl-C
    ends that wait at once; the resumed crawl fetches the image."""
    with HTTPTestServer(tmp_path / "www") as server:
        site = TreeSite.__new__(TreeSite)
        site.server, site.images = server, {"/i/busy.png": png(90_001)}
        site.sha_to_path = {hashlib.sha256(site.images["/i/busy.png"]).hexdigest(): "/i/busy.png"}
        busy = {"on": True}
        server.add_handler("/p0.html", lambda h: h.send_body('<img src="/i/busy.png">', content_type="text/html") or True)
        server.add_handler("/i/busy.png", lambda h: h.send_body(
            b"busy", status=429, headers={"Retry-After": "30"}) if busy["on"] else h.send_body(
            site.images["/i/busy.png"], content_type="image/png") or True)
        job = Job(site, tmp_path)
        proc = job.start()
        deadline = time.monotonic() + 30
        while not any(r.url_path == "/i/busy.png" and r.done for r in server.log.snapshot()):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.3)  # the retry middleware is waiting
        took, err = interrupt(proc, [signal.SIGINT])
        assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
        assert took < 3, f"{took:.1f} s from the signal to the exit"
        assert job.stored_paths() == set()
        busy["on"] = False
        job.resume_and_check(set())
