"""Page rendering in headless Chromium through scrapy-playwright (``-a render=yes``).

:class:`Renderer` switches the crawl's ``http``/``https`` download handlers to
scrapy-playwright's and builds the meta that makes a *page* request render;
requests without that meta (images, robots.txt) go through the handler's
plain HTTP/1.1 path, so image bytes still come from Scrapy's downloader.

A rendered page is loaded and scrolled one viewport at a time to the
bottom (infinite scroll included, up to ``IMGSCRAPER_RENDER_MAX_SCROLLS``),
each step waiting for the requests it caused; at the bottom the page gets
``IMGSCRAPER_RENDER_SETTLE_MS`` to ask for something new, and is done when
it no longer grows (no new image URLs, same height). With a ``click``
selector (``-a click=CSS``), the element it matches is then clicked, and the
page scrolled and settled again, while each click brings new images (up to
``IMGSCRAPER_RENDER_MAX_CLICKS``). All of it is bounded by
``IMGSCRAPER_RENDER_TIMEOUT``. Only requests the page had not made before
count as new: carousels and polls repeating the same URLs, and open
WebSocket / EventSource streams, do not keep a page open.

Meanwhile every image URL the browser requests is recorded, and fonts,
media and tracker requests are aborted; by default image requests are
aborted too once recorded, so every image is fetched once, by Scrapy,
within the crawl's limits. The browser connects nowhere by itself: the
pages connect through the crawl, under its private-network policy
(:mod:`imgscraper.rendering.gateway`), and Chromium's own requests fail.

This module imports neither Playwright nor scrapy-playwright at import time:
without ``render`` nothing of the browser is loaded.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import shutil
import weakref
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.http import Response
from scrapy.selector import Selector
from scrapy.settings import BaseSettings
from w3lib.url import canonicalize_url

from imgscraper.bandwidth import max_rate
from imgscraper.discovery.html import find_images
from imgscraper.discovery.references import ImageRef
from imgscraper.rendering.pace import BrowserPace, PageTransfers
from imgscraper.utils import host_of
from imgscraper.exceptions import RenderingError

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, Request as BrowserRequest, Route
    from scrapy import Request
    from scrapy.crawler import Crawler

__all__ = ["HANDLER", "RenderingError", "Renderer", "init_page", "scroll_and_settle"]

logger = logging.getLogger(__name__)

HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"

#: Chromium flags: run as root in a container, and make no background
#: connections (update checks, sync, field trials) a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--disable-quic",
    "--mute-audio",
    # WebRTC may send UDP past the proxies: only proxied (TCP) connections.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
]

#: Chromium's own proxy, where nothing can listen (port 0): what Chromium requests outside
#: the pages (update checks and sign-in, despite the flags above) fails at once, without
#: leaving the machine. The pages have a proxy of their own: imgscraper.rendering.gateway.
NOWHERE = "http://127.0.0.1:0"

#: The request meta key holding what the browser did for a page (a plain,
#: picklable dict): ``images`` (image URLs requested), ``blocked`` (aborted
#: requests by reason), ``scrolls``, ``bottom``, ``settled``, ``clicks`` and
#: ``clicks_ended`` (see :func:`scroll_and_settle`).
REPORT_KEY = "imgscraper_render"

# Scroll events and intersection observers run with the next frames.
_SCROLL = """async () => {
  const el = document.scrollingElement || document.documentElement;
  const before = el.scrollTop;
  window.scrollTo({top: before + window.innerHeight, behavior: "instant"});
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  return [el.scrollTop > before, el.scrollHeight];
}"""
_HEIGHT = "() => (document.scrollingElement || document.documentElement).scrollHeight"

# Quiet time after each intermediate scroll step (and click), for scroll
# handlers and intersection observers to run and start their requests.
_STEP_QUIET = 0.1
# Seconds a browser request is waited for at most, and a click's cap.
_REQUEST_WAIT = 3.0
# Requests that stay open as long as the page does.
_STREAMS = frozenset({"eventsource", "websocket"})

class OneLinePageFailures(logging.Filter):
    """scrapy-playwright logs a page it could not load as a WARNING with a
    traceback; the spider reports each failed page in one line of its own,
    so this keeps scrapy-playwright's record for DEBUG, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Closing page due to failed request"):
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class Renderer:
    """What the ``images`` spider needs to render its pages.

    Built from the ``IMGSCRAPER_RENDER_*`` settings by :meth:`from_crawler`,
    which also enables scrapy-playwright (settings at ``spider`` priority, so
    ``-s PLAYWRIGHT_...`` on the command line still wins). Raises
    :class:`RenderingError` when the browser executable is missing, and with
    ``IMGSCRAPER_MAX_RATE`` set (Chromium's downloads cannot be paced).
    ``click`` is the CSS selector of a "load more" element to click on
    every page (empty: none).
    """

    def __init__(self, settings: BaseSettings, crawler: Crawler | None = None, click: str = ""):
        self.browser = settings.get("IMGSCRAPER_RENDER_BROWSER")
        self.click = click
        self._contexts = itertools.count()
        try:  # imgscraper.addons.settingscheck reports wrong values, in one line each
            self.max_pages = settings.getint("IMGSCRAPER_RENDER_MAX_PAGES")
            self.max_scrolls = settings.getint("IMGSCRAPER_RENDER_MAX_SCROLLS")
            self.settle_ms = settings.getint("IMGSCRAPER_RENDER_SETTLE_MS")
            self.timeout = settings.getfloat("IMGSCRAPER_RENDER_TIMEOUT")
            self.max_clicks = settings.getint("IMGSCRAPER_RENDER_MAX_CLICKS")
            self.load_images = settings.getbool("IMGSCRAPER_RENDER_LOAD_IMAGES")
        except ValueError as exc:
            raise RenderingError(f"a rendering setting is wrong: {exc}") from None
        self.block_resource_types = [t.lower() for t in settings.getlist("IMGSCRAPER_RENDER_BLOCK_RESOURCE_TYPES")]
        self.block_domains = [d.lower().strip(".") for d in settings.getlist("IMGSCRAPER_RENDER_BLOCK_DOMAINS")]
        self.crawler = crawler
        if self.max_pages < 1:
            raise RenderingError(f"IMGSCRAPER_RENDER_MAX_PAGES must be at least 1, not {self.max_pages}")
        try:
            limited = bool(max_rate(settings))
        except ValueError:
            limited = False  # imgscraper.addons.settingscheck reports it
        if limited:
            raise RenderingError("render=yes loads pages in Chromium, which IMGSCRAPER_MAX_RATE cannot pace:"
                                 " leave out -a render=yes or IMGSCRAPER_MAX_RATE")

    @classmethod
    def from_crawler(cls, crawler: Crawler, click: str = "") -> Renderer:
        renderer = cls(crawler.settings, crawler, click)
        if not crawler.settings.getbool("TWISTED_REACTOR_ENABLED"):
            return renderer  # imgscraper.addons.settingscheck refuses the crawl; scrapy-playwright would fail to load
        for name, value in renderer.scrapy_settings(crawler.settings).items():
            crawler.settings.set(name, value, priority="spider")
        BrowserPace(crawler).install()
        page_failures = OneLinePageFailures()
        logging.getLogger("scrapy-playwright").addFilter(page_failures)
        crawler.signals.connect(
            lambda: logging.getLogger("scrapy-playwright").removeFilter(page_failures),
            signal=signals.engine_stopped, weak=False,
        )
        return renderer

    def browser_path(self) -> str:
        """The Chromium executable, or :class:`RenderingError`."""
        path = shutil.which(self.browser or "")
        if not path:
            raise RenderingError(
                f"render=yes needs Chromium, and {self.browser!r} is not an executable: install"
                " Debian's chromium package (apt-get install chromium) or set IMGSCRAPER_RENDER_BROWSER"
            )
        return path

    def scrapy_settings(self, settings: BaseSettings) -> dict[str, Any]:
        """The Scrapy / scrapy-playwright settings that turn rendering on."""
        handlers = dict(settings.getdict("DOWNLOAD_HANDLERS"))
        handlers.update(http=HANDLER, https=HANDLER)
        return {
            "DOWNLOAD_HANDLERS": handlers,
            "PLAYWRIGHT_BROWSER_TYPE": "chromium",
            "PLAYWRIGHT_LAUNCH_OPTIONS": {
                "executable_path": self.browser_path(),
                "headless": True,
                "args": CHROMIUM_ARGS,
                "proxy": {"server": NOWHERE},
            },
            # A browser context (a window) per page: pages sharing one are its
            # tabs, and all but one of them get a frame a second or so, which
            # slows every scroll step and IntersectionObserver callback.
            "PLAYWRIGHT_MAX_CONTEXTS": self.max_pages,
            "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 1,
            "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": settings.getfloat("DOWNLOAD_TIMEOUT") * 1000,
        }

    def request_meta(self) -> dict[str, Any]:
        """Meta for a page request that renders it (new objects every call:
        scrapy-playwright stores page method results in them)."""
        from scrapy_playwright.page import PageMethod

        return {
            "playwright": True,
            "playwright_context": f"imgscraper-page-{next(self._contexts)}",  # closed with its page: init_page
            # Like Scrapy, accept any certificate; service workers would
            # answer requests out of sight of the page's route.
            "playwright_context_kwargs": {"ignore_https_errors": True, "service_workers": "block"},
            "playwright_page_init_callback": "imgscraper.rendering.renderer.init_page",
            "playwright_page_methods": [
                PageMethod(
                    scroll_and_settle,
                    max_scrolls=self.max_scrolls,
                    settle=self.settle_ms / 1000,
                    timeout=self.timeout,
                    click=self.click,
                    max_clicks=self.max_clicks,
                )
            ],
            REPORT_KEY: {
                "block_resource_types": self.block_resource_types,
                "block_domains": self.block_domains,
                "load_images": self.load_images,
            },
        }

    def browser_images(
        self, response: Response, srcset: str = "largest", document: Selector | None = None
    ) -> list[ImageRef]:
        """The images the browser requested while rendering ``response``
        (source ``browser``), minus the ``srcset`` candidates that the
        ``srcset`` mode does not take (read from ``document``, the parsed
        page, when given; else the page is parsed again).

        Also counts the page's rendering in the stats, and logs a page that
        was still growing at the timeout.
        """
        report = response.meta.get(REPORT_KEY) or {}
        self._count(response, report)
        urls = [u for u in report.get("images", ()) if u.startswith(("http://", "https://"))]
        if srcset == "largest" and urls:
            # A browser requests the srcset candidate that fits its viewport.
            document = document if document is not None else Selector(response)
            every = {canonicalize_url(r.url) for r in find_images(document, response.url, srcset="all")}
            taken = {canonicalize_url(r.url) for r in find_images(document, response.url, srcset=srcset)}
            not_taken = every - taken
            urls = [u for u in urls if canonicalize_url(u) not in not_taken]
        return [ImageRef(url, "browser") for url in dict.fromkeys(urls)]

    def _count(self, response: Response, report: dict[str, Any]) -> None:
        if self.crawler is None:
            return
        stats = self.crawler.stats
        stats.inc_value("imgscraper/render/pages")
        stats.inc_value("imgscraper/render/browser_images", len(report.get("images", ())))
        for reason, count in report.get("blocked", {}).items():
            stats.inc_value(f"imgscraper/render/blocked/{reason}", count)
        if report.get("settled") and report.get("bottom") is False:
            stats.inc_value("imgscraper/render/scroll_limit")
        if report.get("clicks"):
            stats.inc_value("imgscraper/render/clicks", report["clicks"])
        if report.get("clicks_ended"):
            stats.inc_value(f"imgscraper/render/clicks_ended/{report['clicks_ended']}")
        if report.get("click_error"):
            logger.warning("Rendering %s: cannot click %r: %s", response.url, self.click, report["click_error"])
        if report.get("settled") is False:
            stats.inc_value("imgscraper/render/timeout")
            logger.warning(
                "Rendering %s: the page was still growing or asking for new content after"
                " IMGSCRAPER_RENDER_TIMEOUT=%ss; taking it as it is", response.url, self.timeout,
            )


# --- in the browser (scrapy-playwright calls these) -------------------------


def _request_key(request: BrowserRequest) -> str:
    """What makes a browser request new to its page: the URL of an image or
    document; for anything else (fetch, XHR, scripts) the URL without its
    query, so a poll with a cache-busting ``?t=<now>`` is no new work."""
    url = request.url.partition("#")[0]
    if request.resource_type in ("image", "document"):
        return url
    return url.partition("?")[0]


class _PageTracker:
    """Follows one page's requests: records image URLs in
    ``report["images"]`` (each once), aborts blocked requests, holds the
    others to their site's pace (:mod:`imgscraper.rendering.pace`), and
    tells when the page has stopped asking for anything new (:meth:`settle`).

    A request is *new work* the first time its :func:`_request_key` is seen
    on the page: carousels cycling through the same images and polls of the
    same endpoint stop counting after their first round.
    """

    def __init__(self, report: dict[str, Any], pace: BrowserPace | None = None, page: Request | None = None):
        self.report = report
        self.transfers = PageTransfers(pace, page)
        self.report.setdefault("images", [])
        self.report.setdefault("blocked", {})
        self.block_types = frozenset(report.get("block_resource_types", ()))
        self.block_domains = tuple(report.get("block_domains", ()))
        self.load_images = bool(report.get("load_images"))
        #: Abort navigations of the page itself (set while clicking).
        self.block_navigation = False
        self.seen: set[str] = set()
        self.images_seen: set[str] = set(self.report["images"])
        #: Requests in flight: loop time started, and whether they are new work.
        self.in_flight: dict[BrowserRequest, tuple[float, bool]] = {}
        self.last_news = self._now()

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def follow(self, page: Page) -> None:
        page.on("request", self.started)
        page.on("requestfinished", self.ended)
        page.on("requestfailed", self.ended)

    def started(self, request: BrowserRequest) -> None:
        if request.resource_type in _STREAMS:
            return  # open for the page's lifetime: never "ends"
        key = _request_key(request)
        new = key not in self.seen
        self.seen.add(key)
        self.in_flight[request] = (self._now(), new)
        if new:
            self.last_news = self._now()
        # Chromium may cancel a request (an image whose src changed again) before it reaches
        # :meth:`route`: the page asked for the image all the same.
        web = request.url.startswith(("http://", "https://"))
        if request.resource_type == "image" and web and not self.block_reason(request):
            self.saw_image(request.url)

    def ended(self, request: BrowserRequest) -> None:
        self.transfers.end(request)
        if self.is_the_page(request):
            self.transfers.loaded(request.url)
        started = self.in_flight.pop(request, None)
        if started and started[1]:
            self.last_news = self._now()

    def saw_image(self, url: str) -> None:
        """The page asked for the image ``url``: recorded in ``report["images"]`` the first time."""
        if url not in self.images_seen:
            self.images_seen.add(url)
            self.report["images"].append(url)
            self.last_news = self._now()

    async def route(self, route: Route, request: BrowserRequest) -> None:
        reason = self.block_reason(request)
        if reason:
            self.report["blocked"][reason] = self.report["blocked"].get(reason, 0) + 1
            await route.abort("blockedbyclient")
            return
        if request.resource_type == "image":
            self.saw_image(request.url)
            if not self.load_images:
                await route.abort("blockedbyclient")
                return
        await self.keep_pace(request)
        await route.fallback()  # to scrapy-playwright's own route (headers)

    async def keep_pace(self, request: BrowserRequest) -> None:
        """Hold ``request`` to its site's pace (not streams: they would hold a transfer for good).
        Waiting for its turn, it is in flight without the :data:`_REQUEST_WAIT` limit."""
        if self.is_the_page(request):  # Scrapy's, holding its transfer: it waits for its turn in the delay
            await self.transfers.turn(request.url)
        elif request.resource_type not in _STREAMS and request.url.startswith(("http://", "https://")):
            new = self.in_flight.get(request, (0.0, False))[1]
            self.in_flight[request] = (math.inf, new)
            await self.transfers.hold(request)
            if request in self.in_flight:
                self.in_flight[request] = (self._now(), new)
            else:  # it ended while it waited
                self.transfers.end(request)

    @staticmethod
    def is_the_page(request: BrowserRequest) -> bool:
        return request.is_navigation_request() and request.frame.parent_frame is None

    def block_reason(self, request: BrowserRequest) -> str:
        if request.resource_type in self.block_types:
            return request.resource_type
        if self.is_the_page(request):
            return "navigation" if self.block_navigation else ""
        host = host_of(request.url)
        if any(host == d or host.endswith("." + d) for d in self.block_domains):
            return "tracker"
        return ""

    @property
    def image_count(self) -> int:
        return len(self.report["images"])

    async def settle(self, since: float, quiet: float, deadline: float) -> bool:
        """Wait until the page has asked for nothing new for ``quiet``
        seconds since ``since`` (loop time: an action such as a scroll), with
        no new work in flight, nor anything it asked for since ``since``.
        Either is waited for :data:`_REQUEST_WAIT` seconds at most (a request
        from its start, those since ``since`` from then), so polls, long
        polls and slow trackers do not hold the page. False if ``deadline``
        (loop time) came first."""
        while True:
            now = self._now()
            if now >= deadline:
                return False
            if any(new and now - started < _REQUEST_WAIT or started >= since and now - since < _REQUEST_WAIT
                   for started, new in self.in_flight.values()):
                await asyncio.sleep(min(0.05, deadline - now))
                continue
            left = max(self.last_news, since) + quiet - now
            if left <= 0:
                return True
            await asyncio.sleep(min(left, deadline - now))


_TRACKERS: weakref.WeakKeyDictionary[Page, _PageTracker] = weakref.WeakKeyDictionary()


_CLOSING: set[asyncio.Task] = set()  # referenced until done, or they could be collected


def _close_soon(context: BrowserContext) -> None:
    async def close() -> None:
        from playwright.async_api import Error as PlaywrightError

        try:
            await context.close()
        except PlaywrightError:  # the browser is closing too
            pass

    task = asyncio.ensure_future(close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def init_page(page: Page, request: Request) -> None:
    """scrapy-playwright page init callback: start following the page's
    requests before it navigates."""
    # Each page has a context of its own (Renderer.scrapy_settings): closing it
    # frees scrapy-playwright's context slot for the next page.
    tracker = _PageTracker(request.meta.setdefault(REPORT_KEY, {}), BrowserPace.installed, request)
    page.once("close", lambda: (tracker.transfers.close(), _close_soon(page.context)))
    _TRACKERS[page] = tracker
    tracker.follow(page)
    # Registered after scrapy-playwright's route, so it runs first.
    await page.route("**/*", tracker.route)


async def _click_once(page: Page, selector: str, timeout: float) -> tuple[str, str]:
    """Click the first element matching ``selector`` (scrolled into view).
    Returns ``("clicked", "")``, or why not: ``gone`` (none, or none
    visible), ``disabled``, or ``failed`` and the browser's first line of
    explanation (a selector the browser rejects, an element covered by
    another, ...)."""
    from playwright.async_api import Error as PlaywrightError

    target = page.locator(selector).first
    try:
        if not await target.count() or not await target.is_visible():
            return "gone", ""
        if not await target.is_enabled():
            return "disabled", ""
        await target.scroll_into_view_if_needed(timeout=timeout * 1000)
        await target.click(timeout=timeout * 1000)
    except PlaywrightError as exc:
        return "failed", (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return "clicked", ""


class _OutOfTime(Exception):
    """The page's rendering time is up."""


class _Rendering:
    """One page's scrolling and clicking, within ``deadline`` (loop time)."""

    def __init__(self, page: Page, tracker: _PageTracker, deadline: float, settle: float):
        self.page, self.tracker, self.deadline, self.settle = page, tracker, deadline, settle
        self.loop = asyncio.get_running_loop()
        self.result: dict[str, Any] = {"scrolls": 0, "bottom": False, "settled": False, "clicks": 0}
        #: Image URLs seen when the last scroll step began, and the page's height when it ended.
        self.last_images, self.last_height = 0, 0

    async def wait(self, since: float, quiet: float) -> None:
        if not await self.tracker.settle(since, quiet, self.deadline):
            raise _OutOfTime

    async def height(self) -> int:
        return await self.page.evaluate(_HEIGHT)

    async def scroll_down(self, max_scrolls: int) -> bool:
        """Scroll one viewport at a time, each step waiting for what it
        caused; True at the bottom, False at ``max_scrolls`` steps."""
        while self.result["scrolls"] < max_scrolls:
            since, self.last_images = self.loop.time(), self.tracker.image_count
            moved, self.last_height = await self.page.evaluate(_SCROLL)
            if not moved:
                return True
            self.result["scrolls"] += 1
            await self.wait(since, _STEP_QUIET)
        return False

    async def grows(self) -> bool:
        """Whether the page has grown (taller, new image URLs) since the
        last scroll step, once given ``settle`` seconds to ask for something
        new. (What arrived between that step and this call counts too: it
        may be the next batch of an infinite scroll.)"""
        await self.wait(self.loop.time(), self.settle)
        return self.tracker.image_count > self.last_images or await self.height() > self.last_height

    async def click(self, selector: str) -> bool:
        """Click ``selector`` once and wait for what the click caused; False
        (and ``clicks_ended`` says why) if it cannot be clicked."""
        self.tracker.block_navigation = True  # a "more" link must not take the page away
        since = self.loop.time()
        outcome, error = await _click_once(self.page, selector, min(_REQUEST_WAIT, max(self.deadline - since, 0.0)))
        if outcome != "clicked":
            self.result["clicks_ended"] = outcome
            if error:
                self.result["click_error"] = error
            return False
        self.result["clicks"] += 1
        await self.wait(since, _STEP_QUIET)
        return True


async def scroll_and_settle(
    page: Page, *, max_scrolls: int, settle: float, timeout: float, click: str = "", max_clicks: int = 0,
) -> dict[str, Any]:
    """Render ``page`` until it stops growing, within ``timeout`` seconds.

    Scrolls down one viewport at a time, each step waiting for the requests
    it caused (:meth:`_PageTracker.settle`), to the bottom or
    ``max_scrolls`` steps; there, gives the page ``settle`` seconds to ask
    for something new, and scrolls on if it grew (taller, or new image
    URLs). Then, if ``click`` is a selector, clicks the element it matches
    and starts over, as long as each click brings new images, up to
    ``max_clicks`` clicks.

    Returns (and stores in the page's report) ``scrolls``, ``bottom``
    (the bottom was reached), ``settled`` (done before the timeout),
    ``clicks``, and with ``click`` ``clicks_ended``, why clicking stopped:
    ``gone`` (no visible match), ``disabled``, ``no-new-images``,
    ``limit`` (``max_clicks``) or ``failed`` (it could not be clicked:
    ``click_error`` says why).
    """
    from playwright.async_api import Error as PlaywrightError

    tracker = _TRACKERS.get(page)
    if tracker is None:  # the init callback failed: follow from now on
        tracker = _PageTracker({})
        tracker.follow(page)
    loop = asyncio.get_running_loop()
    rendering = _Rendering(page, tracker, loop.time() + timeout, settle)
    result = rendering.result
    before_click = -1  # image URLs seen before the last click
    try:
        await rendering.wait(float("-inf"), _STEP_QUIET)  # what the load started
        while True:
            result["bottom"] = await rendering.scroll_down(max_scrolls)
            if await rendering.grows() and result["bottom"]:
                continue
            if not click:
                break
            if tracker.image_count == before_click:
                result["clicks_ended"] = "no-new-images"
                break
            if result["clicks"] >= max_clicks:
                result["clicks_ended"] = "limit"
                break
            before_click = tracker.image_count
            if not await rendering.click(click):
                break
        result["settled"] = True
    except _OutOfTime:
        pass
    except PlaywrightError as exc:  # the page navigated away or closed
        logger.debug("Stopped rendering %s: %s", page.url, exc)
        result["settled"] = True
    logger.debug("Rendered %s: %s", page.url, result)
    tracker.report.update(result)
    return result
