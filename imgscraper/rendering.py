"""Page rendering in headless Chromium through scrapy-playwright (``-a render=yes``).

:class:`Renderer` switches the crawl's ``http``/``https`` download handlers to
scrapy-playwright's and builds the meta that makes a *page* request render;
requests without that meta (images, robots.txt) go through the handler's
plain HTTP/1.1 path, so image bytes still come from Scrapy's downloader.

A rendered page is loaded, scrolled one viewport at a time to the bottom
(infinite scroll included, up to ``IMGSCRAPER_RENDER_MAX_SCROLLS``), and
left until its network has been quiet for ``IMGSCRAPER_RENDER_SETTLE_MS``
(all bounded by ``IMGSCRAPER_RENDER_TIMEOUT``). Meanwhile every image URL the
browser requests is recorded, and fonts, media and tracker requests are
aborted; by default image requests are aborted too once recorded, so every
image is fetched once, by Scrapy, within the crawl's limits.

This module imports neither Playwright nor scrapy-playwright at import time:
without ``render`` nothing of the browser is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import weakref
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.http import Response
from scrapy.settings import BaseSettings
from w3lib.url import canonicalize_url

from imgscraper.discovery import ImageRef, find_images

if TYPE_CHECKING:
    from playwright.async_api import Page, Request as BrowserRequest, Route
    from scrapy import Request
    from scrapy.crawler import Crawler

__all__ = ["HANDLER", "RenderingError", "Renderer", "browser_failure_reason", "init_page", "scroll_and_settle"]

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
]

#: The request meta key holding what the browser did for a page (a plain,
#: picklable dict): ``images`` (image URLs requested), ``blocked`` (aborted
#: requests by reason), ``scrolls``, ``bottom`` and ``settled``.
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

# Quiet time after each intermediate scroll step, for scroll handlers and
# intersection observers to run and start their requests.
_STEP_QUIET = 0.1
# Requests that stay open as long as the page does.
_STREAMS = frozenset({"eventsource", "websocket"})

_NET_ERROR = re.compile(r"net::ERR_([A-Z_]+)")


def browser_failure_reason(exc: BaseException) -> str | None:
    """A short slug for a page the browser could not load (``connection-refused``
    from Chromium's ``net::ERR_CONNECTION_REFUSED``, ``timeout`` for a
    navigation timeout), or None if ``exc`` is no browser error."""
    if not type(exc).__module__.startswith("playwright."):
        return None
    if type(exc).__name__ == "TimeoutError":
        return "timeout"
    found = _NET_ERROR.search(str(exc))
    return found.group(1).lower().replace("_", "-") if found else "browser-error"


class OneLinePageFailures(logging.Filter):
    """scrapy-playwright logs a page it could not load as a WARNING with a
    traceback; the spider reports each failed page in one line of its own,
    so this keeps scrapy-playwright's record for DEBUG, without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Closing page due to failed request"):
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class RenderingError(RuntimeError):
    """Rendering cannot work with this configuration; the message says why."""


class Renderer:
    """What the ``images`` spider needs to render its pages.

    Built from the ``IMGSCRAPER_RENDER_*`` settings by :meth:`from_crawler`,
    which also enables scrapy-playwright (settings at ``spider`` priority, so
    ``-s PLAYWRIGHT_...`` on the command line still wins). Raises
    :class:`RenderingError` when the browser executable is missing.
    """

    def __init__(self, settings: BaseSettings, crawler: Crawler | None = None):
        self.browser = settings.get("IMGSCRAPER_RENDER_BROWSER")
        try:  # imgscraper.checks reports wrong values, in one line each
            self.max_pages = settings.getint("IMGSCRAPER_RENDER_MAX_PAGES")
            self.max_scrolls = settings.getint("IMGSCRAPER_RENDER_MAX_SCROLLS")
            self.settle_ms = settings.getint("IMGSCRAPER_RENDER_SETTLE_MS")
            self.timeout = settings.getfloat("IMGSCRAPER_RENDER_TIMEOUT")
            self.load_images = settings.getbool("IMGSCRAPER_RENDER_LOAD_IMAGES")
        except ValueError as exc:
            raise RenderingError(f"a rendering setting is wrong: {exc}") from None
        self.block_resource_types = [t.lower() for t in settings.getlist("IMGSCRAPER_RENDER_BLOCK_RESOURCE_TYPES")]
        self.block_domains = [d.lower().strip(".") for d in settings.getlist("IMGSCRAPER_RENDER_BLOCK_DOMAINS")]
        self.crawler = crawler
        if self.max_pages < 1:
            raise RenderingError(f"IMGSCRAPER_RENDER_MAX_PAGES must be at least 1, not {self.max_pages}")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Renderer:
        renderer = cls(crawler.settings, crawler)
        if not crawler.settings.getbool("TWISTED_REACTOR_ENABLED"):
            return renderer  # imgscraper.checks refuses the crawl; scrapy-playwright would fail to load
        for name, value in renderer.scrapy_settings(crawler.settings).items():
            crawler.settings.set(name, value, priority="spider")
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
            },
            # One context per handler, a bounded number of open pages in it.
            "PLAYWRIGHT_MAX_CONTEXTS": 1,
            "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": self.max_pages,
            "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": settings.getfloat("DOWNLOAD_TIMEOUT") * 1000,
        }

    def request_meta(self) -> dict[str, Any]:
        """Meta for a page request that renders it (new objects every call:
        scrapy-playwright stores page method results in them)."""
        from scrapy_playwright.page import PageMethod

        return {
            "playwright": True,
            # Like Scrapy, accept any certificate; service workers would
            # answer requests out of sight of the page's route.
            "playwright_context_kwargs": {"ignore_https_errors": True, "service_workers": "block"},
            "playwright_page_init_callback": "imgscraper.rendering.init_page",
            "playwright_page_methods": [
                PageMethod(
                    scroll_and_settle,
                    max_scrolls=self.max_scrolls,
                    settle=self.settle_ms / 1000,
                    timeout=self.timeout,
                )
            ],
            REPORT_KEY: {
                "block_resource_types": self.block_resource_types,
                "block_domains": self.block_domains,
                "load_images": self.load_images,
            },
        }

    def browser_images(self, response: Response, srcset: str = "largest") -> list[ImageRef]:
        """The images the browser requested while rendering ``response``
        (source ``browser``), minus the ``srcset`` candidates that the
        ``srcset`` mode does not take.

        Also counts the page's rendering in the stats, and logs a page whose
        network never settled.
        """
        report = response.meta.get(REPORT_KEY) or {}
        self._count(response, report)
        urls = [u for u in report.get("images", ()) if u.startswith(("http://", "https://"))]
        if srcset == "largest" and urls:
            # A browser requests the srcset candidate that fits its viewport.
            every = {canonicalize_url(r.url) for r in find_images(response.selector, response.url, srcset="all")}
            taken = {canonicalize_url(r.url) for r in find_images(response.selector, response.url, srcset=srcset)}
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
        if report.get("settled") is False:
            stats.inc_value("imgscraper/render/timeout")
            logger.warning(
                "Rendering %s: the network was still busy after IMGSCRAPER_RENDER_TIMEOUT=%ss;"
                " taking the page as it is", response.url, self.timeout,
            )


# --- in the browser (scrapy-playwright calls these) -------------------------


class _PageTracker:
    """Follows one page's requests: counts those in flight, records image
    URLs in ``report["images"]``, aborts blocked ones."""

    def __init__(self, report: dict[str, Any]):
        self.report = report
        self.report.setdefault("images", [])
        self.report.setdefault("blocked", {})
        self.block_types = frozenset(report.get("block_resource_types", ()))
        self.block_domains = tuple(report.get("block_domains", ()))
        self.load_images = bool(report.get("load_images"))
        self.in_flight: set[BrowserRequest] = set()
        self.last_change = asyncio.get_running_loop().time()

    def started(self, request: BrowserRequest) -> None:
        if request.resource_type in _STREAMS:
            return  # open for the page's lifetime: never "settles"
        self.in_flight.add(request)
        self.last_change = asyncio.get_running_loop().time()

    def ended(self, request: BrowserRequest) -> None:
        self.in_flight.discard(request)
        self.last_change = asyncio.get_running_loop().time()

    async def route(self, route: Route, request: BrowserRequest) -> None:
        reason = self.block_reason(request)
        if reason:
            self.report["blocked"][reason] = self.report["blocked"].get(reason, 0) + 1
            await route.abort("blockedbyclient")
            return
        if request.resource_type == "image":
            self.report["images"].append(request.url)
            if not self.load_images:
                await route.abort("blockedbyclient")
                return
        await route.fallback()  # to scrapy-playwright's own route (headers)

    def block_reason(self, request: BrowserRequest) -> str:
        if request.resource_type in self.block_types:
            return request.resource_type
        if request.is_navigation_request() and request.frame.parent_frame is None:
            return ""  # the page itself
        host = (urlsplit(request.url).hostname or "").lower()
        if any(host == d or host.endswith("." + d) for d in self.block_domains):
            return "tracker"
        return ""

    async def wait_quiet(self, quiet: float, deadline: float) -> bool:
        """Wait until no request has been in flight for ``quiet`` seconds;
        False if ``deadline`` (loop time) came first."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if now >= deadline:
                return False
            if self.in_flight:
                await asyncio.sleep(min(0.05, deadline - now))
                continue
            left = self.last_change + quiet - now
            if left <= 0:
                return True
            await asyncio.sleep(min(left, deadline - now))


_TRACKERS: weakref.WeakKeyDictionary[Page, _PageTracker] = weakref.WeakKeyDictionary()


async def init_page(page: Page, request: Request) -> None:
    """scrapy-playwright page init callback: start following the page's
    requests before it navigates."""
    tracker = _PageTracker(request.meta.setdefault(REPORT_KEY, {}))
    _TRACKERS[page] = tracker
    page.on("request", tracker.started)
    page.on("requestfinished", tracker.ended)
    page.on("requestfailed", tracker.ended)
    # Registered after scrapy-playwright's route, so it runs first.
    await page.route("**/*", tracker.route)


async def scroll_and_settle(page: Page, *, max_scrolls: int, settle: float, timeout: float) -> dict[str, Any]:
    """Scroll ``page`` down one viewport at a time until its bottom stays
    the bottom (or ``max_scrolls`` steps), then wait until its network has
    been quiet for ``settle`` seconds; all within ``timeout`` seconds.

    Returns (and stores in the page's report) ``scrolls``, ``bottom``
    (the bottom was reached) and ``settled`` (the network went quiet).
    """
    from playwright.async_api import Error as PlaywrightError

    tracker = _TRACKERS.get(page)
    if tracker is None:  # the init callback failed: follow from now on
        tracker = _PageTracker({})
        page.on("request", tracker.started)
        page.on("requestfinished", tracker.ended)
        page.on("requestfailed", tracker.ended)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    scrolls, bottom = 0, False
    settled = await tracker.wait_quiet(settle, deadline)
    settled_at = 0  # scroll steps done at the last full settle
    try:
        while settled and scrolls < max_scrolls:
            moved, height = await page.evaluate(_SCROLL)
            if moved:
                scrolls += 1
                settled = await tracker.wait_quiet(_STEP_QUIET, deadline)
                continue
            if scrolls == settled_at:  # nothing scrolled since the page settled
                bottom = True
                break
            # At the bottom: give infinite-scroll loaders time to add more.
            settled = await tracker.wait_quiet(settle, deadline)
            settled_at = scrolls
            if await page.evaluate(_HEIGHT) <= height:
                bottom = True
                break
        if settled and scrolls > settled_at:
            settled = await tracker.wait_quiet(settle, deadline)
    except PlaywrightError as exc:  # the page navigated away or closed
        logger.debug("Stopped scrolling %s: %s", page.url, exc)
    result = {"scrolls": scrolls, "bottom": bottom, "settled": settled}
    logger.debug("Rendered %s: %s", page.url, result)
    tracker.report.update(result)
    return result
