"""``render=yes`` on pages whose network is never quiet, and ``-a click=CSS_SELECTOR``.

Crawls (subprocesses) of the pages of :mod:`tests.support.busysite` served on 127.0.0.1,
rendered in Debian's Chromium: slideshows, polls, open EventSource and
WebSocket streams, a carousel and infinite scroll must each be stored whole
and be done within seconds of their last new image (not at
``IMGSCRAPER_RENDER_TIMEOUT``); "load more" buttons are clicked until they
are disabled, gone, or bring nothing new. What the server saw tells when each
page was loaded and when Scrapy started fetching its images: the page's
rendering was over by then.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.rendering.test_renderer import STORE_NAME, assert_ok, image_names
from tests.support.busysite import BUSY_PAGES, CLICK_BATCHES, CLICK_PAGES, MORE_DELAY, generate_busy_site
from tests.support.httpserver import HTTPTestServer

#: Seconds a busy page may take past its last new image: loading it in a
#: browser on a loaded 2-core machine, scrolling, and IMGSCRAPER_RENDER_SETTLE_MS.
#: Waiting for a quiet network would take IMGSCRAPER_RENDER_TIMEOUT (20 s).
DONE_WITHIN = 6.0


@pytest.fixture(scope="module")
def busy_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("busysite")
    server = HTTPTestServer(root).start()
    try:
        site = generate_busy_site(root, server)
        site.root = root
        site.server = server
        yield site
    finally:
        server.stop()


def stored_problems(site, result, names) -> list[str]:
    items = {item["url"]: item for item in result.items}
    problems = []
    for name in sorted(names):
        item = items.get(site.image_url(name))
        if item is None:
            problems.append(f"{name}: no item")
        elif item["status"] != "downloaded" or not STORE_NAME.match(item["path"]):
            problems.append(f"{name}: status {item['status']} {item['reason']}, path {item['path']!r}")
        elif (result.store / item["path"]).read_bytes() != (site.root / "img" / name).read_bytes():
            problems.append(f"{name}: stored bytes differ from the served bytes")
        elif item["page"] != site.url(site.images[name]) or item["checksum"] != hashlib.sha256(
                (site.root / "img" / name).read_bytes()).hexdigest():
            problems.append(f"{name}: page {item['page']}, checksum {item['checksum']}")
    return problems


def page_seconds(site, result, page: str) -> float:
    """Seconds from the browser's request for ``page`` to Scrapy's first
    request for one of its images (the page's rendering was over by then)."""
    (loaded,) = [r for r in result.requests if r.url_path == "/" + page and r.header("Sec-Fetch-Dest") == "document"]
    names = site.images_of([page])
    fetched = [r.start for r in result.requests
               if r.url_path.removeprefix("/img/") in names and r.header("User-Agent", "").startswith("imgscraper/")]
    assert fetched, f"{page}: Scrapy fetched none of its images"
    return min(fetched) - loaded.start


# --- busy pages ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def busy(busy_site, run_crawl, chromium):
    urls = ",".join(busy_site.url(page) for page in BUSY_PAGES)
    return run_crawl(["-a", f"url={urls}", "-a", "render=yes"], servers=[busy_site.server])


def test_busy_pages_store_every_image_they_show(busy_site, busy):
    assert_ok(busy)
    assert image_names(busy) == busy_site.images_of(BUSY_PAGES)
    problems = stored_problems(busy_site, busy, busy_site.images_of(BUSY_PAGES))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", BUSY_PAGES)
def test_busy_page_is_done_soon_after_its_last_new_image(busy_site, busy, page):
    seconds = page_seconds(busy_site, busy, page)
    assert seconds < busy_site.last_new[page] + DONE_WITHIN, f"{page}: {seconds:.1f} s"


def test_busy_pages_do_not_wait_for_the_timeout(busy):
    assert busy.stats.get("imgscraper/render/timeout") is None
    assert busy.stats.get("imgscraper/render/pages") == len(BUSY_PAGES)
    assert "IMGSCRAPER_RENDER_TIMEOUT" not in busy.stderr


def test_busy_pages_were_busy_all_along(busy):
    """What makes the pages busy reached the server, for as long as they were open."""
    polls = [r for r in busy.requests if r.url_path == "/data/poll.json"]
    assert len({r.query for r in polls}) >= 5, len(polls)  # a new query string each time
    streams = {r.url_path: r.status for r in busy.requests if r.url_path in ("/events", "/ws")}
    assert streams == {"/events": 200, "/ws": 101}
    events = [r for r in busy.requests if r.url_path == "/events"]
    assert len(events) == 2  # stream.html and observer.html, each held open (no reconnection)


def test_busy_infinite_scroll_is_scrolled_to_the_end(busy, busy_site):
    for prefix in ("scroll", "observer"):
        batches = sorted(r.url_path for r in busy.requests if r.url_path.startswith(f"/data/{prefix}-"))
        assert batches == [f"/data/{prefix}-{n}.json" for n in (1, 2, 3)]
    assert busy.stats.get("imgscraper/render/scroll_limit") is None


# --- clicking "load more" ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def clicked(busy_site, run_crawl, chromium):
    urls = ",".join(busy_site.url(page) for page in CLICK_PAGES)
    return run_crawl(["-a", f"url={urls}", "-a", "render=yes", "-a", "click=button.more"], servers=[busy_site.server])


def test_click_stores_every_image_the_button_brings(busy_site, clicked):
    assert_ok(clicked)
    assert image_names(clicked) == busy_site.images_of(CLICK_PAGES)
    problems = stored_problems(busy_site, clicked, busy_site.images_of(CLICK_PAGES))
    assert not problems, "\n".join(problems)


def test_click_stops_when_the_button_is_disabled_gone_or_brings_nothing(clicked):
    batches = sorted(r.url_path for r in clicked.requests if r.url_path.startswith("/more/"))
    expected = [f"/more/{kind}-{n}.json" for kind in ("disabled", "gone") for n in range(1, CLICK_BATCHES + 1)]
    # The button that stays is clicked once more, brings nothing, and is left alone.
    expected += [f"/more/stays-{n}.json" for n in range(1, CLICK_BATCHES + 2)]
    assert batches == sorted(expected)
    assert clicked.stats.get("imgscraper/render/clicks") == 3 * CLICK_BATCHES + 1
    for reason in ("disabled", "gone", "no-new-images"):
        assert clicked.stats.get(f"imgscraper/render/clicks_ended/{reason}") == 1, reason
    assert clicked.stats.get("imgscraper/render/timeout") is None


def test_click_waits_for_what_each_click_loads(clicked):
    """A batch is asked for only once the one before it has been answered (each takes 300 ms)."""
    for kind in ("disabled", "gone", "stays"):
        batches = sorted((r for r in clicked.requests if r.url_path.startswith(f"/more/{kind}-")), key=lambda r: r.start)
        for earlier, later in zip(batches, batches[1:]):
            assert earlier.end - earlier.start >= MORE_DELAY
            assert later.start >= earlier.end, f"{later.path} asked for before {earlier.path} was answered"


def test_click_implies_render_and_max_clicks_setting(busy_site, run_crawl, chromium):
    result = run_crawl(["-a", f"url={busy_site.url('more-gone.html')}", "-a", "click=.more",
                        "-s", "IMGSCRAPER_RENDER_MAX_CLICKS=1"], servers=[busy_site.server])
    assert_ok(result)
    assert image_names(result) == {"gone-1-a.png", "gone-1-b.png"}
    assert [r.url_path for r in result.requests if r.url_path.startswith("/more/")] == ["/more/gone-1.json"]
    assert result.stats.get("imgscraper/render/clicks") == 1
    assert result.stats.get("imgscraper/render/clicks_ended/limit") == 1


@pytest.mark.parametrize(("args", "words"), [
    (["-a", "click=.more", "-a", "render=no"], ("click", "render", "'no'")),
    (["-a", "click=button["], ("click", "button[", "not a CSS selector")),
    (["-a", "click="], ("click", "not a CSS selector")),
])
def test_bad_click_argument_is_one_error_line(busy_site, run_crawl, args, words):
    result = run_crawl(["-a", f"url={busy_site.url('more-gone.html')}", *args], servers=[busy_site.server])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert all(word in line for word in words), line
    assert "Traceback" not in result.stderr
    assert result.items == [] and result.requests == []


def test_click_the_browser_cannot_do_is_one_warning_line_per_page(busy_site, run_crawl, chromium):
    """A selector cssselect parses but the browser rejects: the page is still rendered and its images stored."""
    result = run_crawl(["-a", f"url={busy_site.url('stream.html')}", "-a", "click=button:no-such-state"],
                       servers=[busy_site.server])
    assert_ok(result)
    assert "stream-0.png" in image_names(result)
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line and "cannot click" in line]
    assert len(warnings) == 1 and "button:no-such-state" in warnings[0] and "stream.html" in warnings[0], warnings
    assert result.stats.get("imgscraper/render/clicks_ended/failed") == 1
    assert "Traceback" not in result.stderr
