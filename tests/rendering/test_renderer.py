"""``-a render=yes``: pages rendered in Debian's Chromium through scrapy-playwright.

Crawls (subprocesses, as in the end-to-end tests) of the JavaScript site of
:mod:`tests.support.jssite` served on 127.0.0.1, with and without rendering, and with the
rendering settings changed. Each crawl runs once per module and launches one
browser. Without Chromium the tests fail in CI (``CI=true``) and are skipped
elsewhere; ``make test`` installs it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request
from scrapy.settings import Settings

import imgscraper.settings
from imgscraper.exceptions import RenderingError
from imgscraper.rendering.renderer import REPORT_KEY, Renderer, _PageTracker, scroll_and_settle
from tests.support.crawl import PROJECT_ROOT, crawl_environment
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png
from tests.support.jssite import PAGES, generate_js_site
from tests.support.tls import server_context

STORE_NAME = re.compile(r"^full/[0-9a-f-]{36}\.png$")
ASYNCIO_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
TWISTED_HANDLER = "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"
PLAYWRIGHT_HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
#: Loads the probe that reports the crawl process's reactor, handlers, modules and child processes.
PROBE_EXTENSION = 'EXTENSIONS={"tests.support.browser_probe.BrowserProbe": 0}'


@pytest.fixture(scope="module")
def js_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("jssite")
    server = HTTPTestServer(root).start()
    try:
        site = generate_js_site(root, server.url, server.port)
        site.root = root
        site.server = server
        yield site
    finally:
        server.stop()


def probed_crawl(run_crawl, site, args: list[str], probe: Path):
    """A crawl with :class:`tests.support.browser_probe.BrowserProbe`; what it saw (written to
    ``probe``) is the result's ``probe``."""
    result = run_crawl([*args, "-s", PROBE_EXTENSION], env={"BROWSER_PROBE_FILE": str(probe)}, servers=[site.server])
    result.probe = json.loads(probe.read_text())
    return result


def project_settings(**overrides) -> Settings:
    settings = Settings()
    settings.setmodule(imgscraper.settings)
    settings.update(overrides)
    return settings


def requests_for(result, path: str) -> list:
    return [r for r in result.requests if r.url_path == path]


def image_names(result) -> set[str]:
    return {item["url"].rsplit("/", 1)[1] for item in result.items}


def assert_ok(result):
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.tail()}"
    assert not result.error_lines(), result.tail()


def check_stored(site, result, names) -> list[str]:
    """Problems with the items and files of the images ``names``."""
    items = {item["url"]: item for item in result.items}
    problems = []
    for name in sorted(names):
        item = items.get(site.image_url(name))
        if item is None:
            problems.append(f"{name}: no item")
            continue
        if item["status"] != "downloaded" or not STORE_NAME.match(item["path"]):
            problems.append(f"{name}: status {item['status']} {item['reason']}, path {item['path']!r}")
            continue
        served = (site.root / "img" / name).read_bytes()
        stored = (result.store / item["path"]).read_bytes()
        if stored != served:
            problems.append(f"{name}: stored bytes differ from the served bytes")
        if item["checksum"] != hashlib.sha256(served).hexdigest():
            problems.append(f"{name}: checksum is not the sha256 of the bytes")
        if item["page"] != site.url(site.images[name]).removesuffix("index.html"):
            problems.append(f"{name}: page {item['page']}, want {site.images[name]}")
    return problems


# --- crawls -------------------------------------------------------------------


@pytest.fixture(scope="module")
def static(js_site, run_crawl, tmp_path_factory):
    return probed_crawl(run_crawl, js_site, ["-a", f"url={js_site.base_url}", "-a", "depth=1"],
                        tmp_path_factory.mktemp("probe") / "static.json")


@pytest.fixture(scope="module")
def rendered(js_site, run_crawl, chromium, tmp_path_factory):
    """Default settings; late.html is a second start page."""
    return probed_crawl(run_crawl, js_site, ["-a", f"url={js_site.base_url},{js_site.url('late.html')}",
                                             "-a", "depth=1", "-a", "render=yes"],
                        tmp_path_factory.mktemp("probe") / "rendered.json")


@pytest.fixture(scope="module")
def recrawl(js_site, run_crawl, rendered):
    """A second rendered crawl into the first one's store."""
    return run_crawl(["-a", f"url={js_site.base_url},{js_site.url('late.html')}", "-a", "depth=1",
                      "-a", "render=yes"], store=rendered.store, servers=[js_site.server])


@pytest.fixture(scope="module")
def tuned(js_site, run_crawl, chromium):
    """A rendered crawl with every limit and block list changed."""
    return run_crawl(["-a", f"url={js_site.base_url}", "-a", "depth=1", "-a", "render=yes",
                      "-s", "IMGSCRAPER_RENDER_MAX_PAGES=1", "-s", "IMGSCRAPER_RENDER_MAX_SCROLLS=1",
                      "-s", "IMGSCRAPER_RENDER_BLOCK_RESOURCE_TYPES=",
                      "-s", "IMGSCRAPER_RENDER_BLOCK_DOMAINS=localhost,google-analytics.com",
                      "-s", "IMGSCRAPER_RENDER_LOAD_IMAGES=True"], servers=[js_site.server])


# --- without rendering ----------------------------------------------------------


def test_without_render_the_script_inserted_images_are_missed(js_site, static):
    assert_ok(static)
    assert image_names(static) == js_site.static & js_site.linked
    missed = js_site.linked - image_names(static)
    assert missed == {
        "fetch-1.png", "fetch-2.png",  # inserted after a fetch()
        "scroll-1.png", "scroll-2.png", "scroll-3.png",  # infinite scroll
        "background.png", "cssom.png",  # backgrounds set from JavaScript
        "slide-2.png", "slide-3.png",  # a slideshow swapping src
        "scripted.png",  # on a page only a script links to
    }


def test_without_render_no_browser_is_imported_or_started(static):
    assert static.probe["modules"] == []
    assert not [p for p in static.probe["processes"] if "chrom" in p or p == "node"], static.probe
    assert "scrapy-playwright" not in static.stderr
    assert static.stats.get("playwright/page_count") is None


def test_without_render_the_crawl_runs_on_scrapys_http11_handler(static):
    """The production transport: Scrapy's HTTP/1.1 handler on the asyncio reactor."""
    assert static.probe["reactor"] == ASYNCIO_REACTOR
    assert static.probe["handlers"]["http"] == TWISTED_HANDLER
    assert "experimental" not in static.stderr


# --- rendering ------------------------------------------------------------------


def test_render_stores_every_image_scripts_insert(js_site, rendered):
    assert_ok(rendered)
    assert image_names(rendered) == js_site.linked
    assert not check_stored(js_site, rendered, js_site.linked), "\n".join(check_stored(js_site, rendered, js_site.linked))
    assert len(rendered.stored_files()) == len(js_site.linked)
    # index, late.html, the linked pages and the one a script links to
    assert rendered.stats.get("imgscraper/render/pages") == 3 + len(PAGES)


def test_render_with_two_workers_stores_every_image_scripts_insert(js_site, run_crawl, chromium):
    """IMGSCRAPER_WORKERS=2 with render=yes: the local worker runs with the Twisted reactor
    and a browser of its own, like the lead."""
    result = run_crawl(["-a", f"url={js_site.base_url}", "-a", "depth=1", "-a", "render=yes",
                        # One request at a time: the lead leaves pages in the queue, and starts its worker.
                        "-s", "IMGSCRAPER_WORKERS=2", "-s", "CONCURRENT_REQUESTS=1"], servers=[js_site.server])
    assert_ok(result)
    assert "Traceback" not in result.stderr
    assert "this one and 1 local worker" in result.stderr
    assert "imgscraper/workers/items" in result.stats  # it took part
    assert image_names(result) == js_site.linked
    assert not check_stored(js_site, result, js_site.linked), "\n".join(check_stored(js_site, result, js_site.linked))


def test_render_runs_the_browser_the_probe_can_see(rendered):
    """The probe that saw nothing without rendering sees the browser here."""
    assert "scrapy_playwright.handler" in rendered.probe["modules"]
    assert any("chrom" in p for p in rendered.probe["processes"]), rendered.probe


def test_render_runs_with_the_asyncio_reactor(rendered):
    """scrapy-playwright needs the asyncio reactor."""
    assert rendered.probe["reactor"] == ASYNCIO_REACTOR
    assert rendered.probe["handlers"]["http"] == PLAYWRIGHT_HANDLER


def test_render_pages_come_from_the_browser_images_from_scrapy_once(js_site, rendered):
    for page in PAGES:
        (request,) = requests_for(rendered, "/" + page)
        assert request.header("Sec-Fetch-Dest") == "document", page
    for name in js_site.linked:
        requests = requests_for(rendered, "/img/" + name)
        assert len(requests) == 1, f"{name}: {len(requests)} requests"
        assert requests[0].header("User-Agent").startswith("imgscraper/")
        assert requests[0].header("Sec-Fetch-Dest") is None, f"{name} was fetched by the browser"


def test_render_blocks_fonts_media_and_trackers(rendered):
    assert requests_for(rendered, "/fonts/face.woff2") == []
    assert requests_for(rendered, "/media/clip.mp4") == []
    assert rendered.stats.get("imgscraper/render/blocked/font") == 1
    assert rendered.stats.get("imgscraper/render/blocked/media") == 1
    assert rendered.stats.get("imgscraper/render/blocked/tracker") == 1  # google-analytics.com
    assert len(requests_for(rendered, "/tracker.js")) == 1  # localhost is no tracker by default


def test_render_bounds_open_pages(rendered):
    assert 1 < rendered.stats.get("playwright/page_count/max_concurrent") <= 4
    # A browser context (window) per page, closed with it: no page is a background tab.
    assert rendered.stats.get("playwright/context_count") == rendered.stats.get("playwright/page_count")
    assert rendered.stats.get("playwright/context_count/max_concurrent") <= 4


def test_render_recrawl_downloads_nothing_again(js_site, rendered, recrawl):
    """Every image of the first crawl is up to date, none fetched again. (Under load the second
    rendering of late.html may last long enough to see late.png, which the first missed: new, not again.)"""
    assert_ok(recrawl)
    first = {item["url"] for item in rendered.items}
    assert image_names(rendered) >= js_site.linked
    assert {item["url"]: item["status"] for item in recrawl.items if item["url"] in first} == dict.fromkeys(
        first, "uptodate")
    again = [r.path for r in recrawl.requests if r.path.startswith("/img/") and "late" not in r.path]
    assert again == []


# --- settings ---------------------------------------------------------------------


def test_max_pages_setting(tuned):
    assert_ok(tuned)
    assert tuned.stats.get("playwright/page_count/max_concurrent") == 1


def test_max_scrolls_setting(js_site, tuned):
    assert image_names(tuned) == js_site.linked - {"scroll-1.png", "scroll-2.png", "scroll-3.png"}
    assert tuned.stats.get("imgscraper/render/scroll_limit") == 1


def test_block_settings(tuned):
    assert len(requests_for(tuned, "/fonts/face.woff2")) == 1
    assert len(requests_for(tuned, "/media/clip.mp4")) >= 1
    assert requests_for(tuned, "/tracker.js") == []
    assert tuned.stats.get("imgscraper/render/blocked/tracker") == 2


def test_load_images_setting(tuned):
    requests = requests_for(tuned, "/img/static.png")
    assert sorted(str(r.header("Sec-Fetch-Dest")) for r in requests) == ["None", "image"]


@pytest.fixture(scope="module")
def late_patient(js_site, run_crawl, chromium):
    return run_crawl(["-a", f"url={js_site.url('late.html')}", "-a", "render=yes",
                      "-s", "IMGSCRAPER_RENDER_SETTLE_MS=4500"], servers=[js_site.server])


def test_settle_setting(rendered, late_patient):
    """An image added 3 s after load, with the network quiet meanwhile:
    missed by the default 500 ms, found when waiting 4.5 s."""
    assert "late.png" not in image_names(rendered)
    assert_ok(late_patient)
    assert image_names(late_patient) == {"late.png"}


def test_timeout_setting_bounds_a_page_that_never_settles(js_site, run_crawl, chromium):
    result = run_crawl(["-a", f"url={js_site.url('busy.html')}", "-a", "render=yes",
                        "-s", "IMGSCRAPER_RENDER_TIMEOUT=2"], servers=[js_site.server])
    assert result.returncode == 0, result.tail()
    assert image_names(result) == {"busy.png"}
    assert not check_stored(js_site, result, {"busy.png"})
    assert result.stats.get("imgscraper/render/timeout") == 1
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line and "busy.html" in line]
    assert len(warnings) == 1 and "IMGSCRAPER_RENDER_TIMEOUT" in warnings[0], warnings
    polls = [r for r in result.requests if r.url_path == "/data/poll.json"]
    assert len(polls) >= 5  # it was busy all along
    assert result.duration < imgscraper.settings.IMGSCRAPER_RENDER_TIMEOUT


def test_browser_setting_missing_browser_is_one_clear_error(js_site, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={js_site.base_url}", "-a", "render=yes",
                        "-s", f"IMGSCRAPER_RENDER_BROWSER={tmp_path}/no-chromium"], servers=[js_site.server])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert "IMGSCRAPER_RENDER_BROWSER" in line and "no-chromium" in line
    assert "Traceback" not in result.stderr
    assert result.items == [] and result.requests == []


def test_crawl_without_the_reactor_is_one_clear_error(js_site, run_crawl):
    """Scrapy's experimental reactorless handler rewrites URLs: a bad setting, with or without render=yes."""
    result = run_crawl(["-a", f"url={js_site.base_url}", "-a", "render=yes", "-s", "TWISTED_REACTOR_ENABLED=False"],
                       servers=[js_site.server])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert "Bad setting: TWISTED_REACTOR_ENABLED=False" in line, line
    assert "Traceback" not in result.stderr
    assert result.items == [] and result.requests == []


@pytest.mark.crawl
def test_runspider_renders_with_the_reactor(js_site, chromium, tmp_path):
    """``scrapy runspider`` of the spider file renders too."""
    probe, items = tmp_path / "probe.json", tmp_path / "items.jsonl"
    env = crawl_environment({"BROWSER_PROBE_FILE": str(probe)})
    proc = subprocess.run(
        [sys.executable, "-m", "scrapy", "runspider", "imgscraper/spiders/images.py",
         "-a", f"url={js_site.base_url}", "-a", "render=yes", "-s", f"IMAGES_STORE={tmp_path / 'store'}",
         "-s", PROBE_EXTENSION, "-O", str(items)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(probe.read_text())["reactor"] == ASYNCIO_REACTOR
    stored = [json.loads(line) for line in items.read_text().splitlines()]
    assert stored and all(item["status"] == "downloaded" for item in stored), proc.stderr[-3000:]


def test_bad_render_argument(js_site, run_crawl):
    result = run_crawl(["-a", f"url={js_site.base_url}", "-a", "render=maybe"], servers=[js_site.server])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert "render" in line and "maybe" in line


# --- units (no browser) --------------------------------------------------------------


def rendered_response(html: str, browser_images: list[str]) -> HtmlResponse:
    url = "http://example.com/page"
    request = Request(url, meta={REPORT_KEY: {"images": browser_images}})
    return HtmlResponse(url, body=html.encode(), encoding="utf-8", request=request)


def test_browser_images_drop_srcset_candidates_that_are_not_taken():
    html = '<img src="a.jpg" srcset="small.jpg 300w, large.jpg 1200w"><div id="x"></div>'
    seen = ["http://example.com/small.jpg", "http://example.com/bg.jpg", "http://example.com/bg.jpg", "data:x"]
    renderer = Renderer(project_settings())
    response = rendered_response(html, seen)
    assert [r.url for r in renderer.browser_images(response, "largest")] == ["http://example.com/bg.jpg"]
    assert [r.url for r in renderer.browser_images(response, "all")] == [
        "http://example.com/small.jpg", "http://example.com/bg.jpg"]
    assert {r.source for r in renderer.browser_images(response, "all")} == {"browser"}


def test_request_meta_is_new_for_every_request():
    renderer = Renderer(project_settings())
    first, second = renderer.request_meta(), renderer.request_meta()
    assert first["playwright"] is True
    assert first["playwright_page_methods"][0] is not second["playwright_page_methods"][0]
    assert first[REPORT_KEY] is not second[REPORT_KEY]


def test_max_pages_must_be_positive():
    with pytest.raises(RenderingError, match="IMGSCRAPER_RENDER_MAX_PAGES"):
        Renderer(project_settings(IMGSCRAPER_RENDER_MAX_PAGES=0))


def test_a_bandwidth_limit_is_refused():
    """Chromium downloads the pages itself: IMGSCRAPER_MAX_RATE could not hold (see docs/settings.md)."""
    with pytest.raises(RenderingError, match="render=yes loads pages in Chromium, which IMGSCRAPER_MAX_RATE cannot pace"):
        Renderer(project_settings(IMGSCRAPER_MAX_RATE="1M"))
    Renderer(project_settings(IMGSCRAPER_MAX_RATE="0"))


class FeedPage:
    """A stand-in for a browser page (the browser is not what is tested): an infinite scroll whose
    next batch, ``batch`` pixels high, arrives each time a scroll step finds the bottom, just after
    that step returns: the window between the step and the next look at the page."""

    url = "http://127.0.0.1/feed.html"

    def __init__(self, height: int, viewport: int, batch: int, batches: int):
        self.height, self.viewport, self.batch, self.batches = height, viewport, batch, batches
        self.top = 0

    def on(self, event, handler) -> None:
        pass

    async def evaluate(self, script: str):
        if "scrollTo" not in script:
            return self.height
        before, self.top = self.top, min(self.top + self.viewport, self.height - self.viewport)
        moved, height = self.top > before, self.height
        if not moved and self.batches:
            self.batches -= 1
            self.height += self.batch
        return [moved, height]


def test_a_batch_arriving_just_after_the_bottom_is_scrolled_to():
    page = FeedPage(height=1000, viewport=500, batch=1000, batches=2)
    result = asyncio.run(scroll_and_settle(page, max_scrolls=30, settle=0.05, timeout=10))
    assert page.top == 2500 and page.batches == 0
    assert result == {"scrolls": 5, "bottom": True, "settled": True, "clicks": 0}


class CancelledImageRequest:
    """What the browser reports of an image request it cancelled before interception."""

    resource_type = "image"
    frame = None

    def __init__(self, url: str):
        self.url = url

    def is_navigation_request(self) -> bool:
        return False


def test_an_image_request_cancelled_before_interception_is_recorded():
    async def run() -> dict:
        report = {"block_domains": ["tracker.example"]}
        tracker = _PageTracker(report)
        for url in ("http://127.0.0.1/img/b.png", "http://tracker.example/pixel.gif", "data:image/png;base64,AA==",
                    "http://127.0.0.1/img/b.png"):
            tracker.started(CancelledImageRequest(url))
        return report

    assert asyncio.run(run())["images"] == ["http://127.0.0.1/img/b.png"]


def test_unreachable_start_page_is_one_error_line(run_crawl, chromium):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    result = run_crawl(["-a", f"url=http://127.0.0.1:{port}/gallery.html", "-a", "render=yes",
                        "-s", "ROBOTSTXT_OBEY=False"])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert "Cannot fetch start page" in line and "Connect call failed" in line, line
    assert "Traceback" not in result.stderr and "Call log" not in result.stderr, result.tail()
    assert result.stats.get("imgscraper/pages_failed/connection-refused") == 1


def test_render_keeps_every_image_a_fast_slideshow_shows(run_crawl, chromium, tmp_path):
    """An <img> whose src a timer swaps 40 times as fast as it can: Chromium cancels some of those
    requests before the renderer can intercept them, and each is an image the page showed."""
    (tmp_path / "img").mkdir()
    for number in range(40):
        (tmp_path / "img" / f"{number}.png").write_bytes(png(number + 1, (24, 16)))
    (tmp_path / "index.html").write_text("""<img id="slide" src="img/0.png"><script>
let shown = 1;
const timer = setInterval(() => {
  document.getElementById("slide").src = "img/" + shown++ + ".png";
  if (shown === 40) clearInterval(timer);
}, 0);
</script>""")
    server = HTTPTestServer(tmp_path).start()
    try:
        result = run_crawl(["-a", f"url={server.url}", "-a", "render=yes"], servers=[server])
    finally:
        server.stop()
    assert_ok(result)
    assert image_names(result) == {f"{number}.png" for number in range(40)}
    assert {item["status"] for item in result.items} == {"downloaded"}


def test_render_https_page_with_a_self_signed_certificate(js_site, run_crawl, chromium, tmp_path):
    """Like Scrapy, rendering accepts any certificate; https has its own handler."""
    context = server_context(tmp_path)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(js_site.root))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"https://127.0.0.1:{server.server_address[1]}/"
        result = run_crawl(["-a", f"url={base}fetch.html", "-a", "render=yes", "-s", "ROBOTSTXT_OBEY=False"])
        server.shutdown()
    assert_ok(result)
    assert {item["url"] for item in result.items} == {base + "img/fetch-1.png", base + "img/fetch-2.png"}
    assert {item["status"] for item in result.items} == {"downloaded"}
