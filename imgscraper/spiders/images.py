"""The ``images`` spider: every image of the start pages, following links to ``depth``."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, StopDownload
from scrapy.http import Headers, Request, Response, TextResponse
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.job import job_dir
from twisted.python.failure import Failure
from w3lib.url import canonicalize_url

from imgscraper import settings as project_settings
from imgscraper.discovery import (
    ImageRef,
    css_import_urls,
    is_image_url,
    find_css_images,
    find_frames,
    find_images,
    find_page_links,
    find_stylesheets,
    image_url_key,
)
from imgscraper.items import ImageItem
from imgscraper.journal import PageJournal, PageTracker, discard_request_queue
from imgscraper.pipelines import failure_reason
from imgscraper.rendering import Renderer, RenderingError, browser_failure_reason

__all__ = ["ArgumentError", "ImagesSpider", "parse_depth", "parse_start_urls", "parse_yes_no", "site_in_domains", "site_of"]

logger = logging.getLogger(__name__)


class ArgumentError(ValueError):
    """A spider argument is wrong; the message says how to fix it."""


T = TypeVar("T")

#: Media types besides text/* that a page may be served as.
_PAGE_MEDIA_TYPES = frozenset({"application/xhtml+xml", "application/xml"})


def _setting(read: Callable[[str], T], name: str) -> T:
    """``read(name)`` (e.g. ``settings.getint``), or the project's default for a value it cannot
    read: the spider is built before the settings check (an add-on) runs, which reports the
    value and closes the crawl."""
    try:
        return read(name)
    except ValueError:
        return getattr(project_settings, name)


def parse_start_urls(url: str | None, urls_file: str | None) -> list[str]:
    """The start URLs from ``-a url=A,B`` and/or ``-a urls_file=FILE`` (one per line, ``#`` comments)."""
    candidates = [u.strip() for u in (url or "").split(",")]
    if urls_file:
        try:
            lines = Path(urls_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ArgumentError(f"cannot read urls_file {urls_file!r}: {exc.strerror}") from None
        candidates += [line.strip() for line in lines if not line.strip().startswith("#")]
    urls = [with_guessed_scheme(u) for u in candidates if u]
    if not urls:
        raise ArgumentError("no start URL: pass -a url=https://example.com (or -a urls_file=FILE)")
    for start_url in urls:
        scheme, _, rest = start_url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ArgumentError(f"url {start_url!r} is not an http(s) URL: pass e.g. -a url=https://example.com")
        try:
            urlsplit(start_url).port  # noqa: B018 - reading it is the check
        except ValueError as exc:
            raise ArgumentError(f"url {start_url!r} is malformed ({exc}): pass e.g. -a url=https://example.com") from None
    return list(dict.fromkeys(urls))


#: A host name or address, maybe with a port, then maybe a path: what people type for a site.
_SCHEMELESS_URL = re.compile(r"(?P<host>localhost|\[[0-9a-fA-F:.]+\]|[\w-]+(?:\.[\w-]+)+)(?::\d+)?(?:[/?#].*)?", re.DOTALL)
_IP_ADDRESS = re.compile(r"\[.*\]|[\d.]+")


def with_guessed_scheme(url: str) -> str:
    """``url``, or for a site typed without a scheme (``example.com/gallery``) its URL as a
    browser would try it: ``https://``, or ``http://`` for ``localhost`` and IP addresses."""
    match = _SCHEMELESS_URL.fullmatch(url)
    if "://" in url or not match:
        return url
    scheme = "http" if match["host"] == "localhost" or _IP_ADDRESS.fullmatch(match["host"]) else "https"
    logger.info("Start URL %r has no scheme: crawling %s://%s", url, scheme, url)
    return f"{scheme}://{url}"


def parse_depth(depth: Any) -> int:
    """``-a depth=N``: a non-negative integer."""
    try:
        value = int(str(depth).strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ArgumentError(f"depth {depth!r} is not a non-negative integer: pass e.g. -a depth=1")
    return value


def parse_yes_no(name: str, value: Any) -> bool:
    """``yes/no``, ``true/false``, ``1/0``, ``on/off``."""
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off"):
        return False
    raise ArgumentError(f"{name} {value!r} is not yes or no: pass e.g. -a {name}=no")


def site_of(url: str) -> str:
    """The site a page belongs to: its host without ``www.``, plus ``:port`` if not the default."""
    parts = urlparse_cached(Request(url))
    host = (parts.hostname or "").lower().removeprefix("www.")
    return f"{host}:{parts.port}" if parts.port not in (None, 80, 443) else host


def site_in_domains(site: str, domains: list[str]) -> bool:
    """Whether ``site`` is one of ``domains`` or a subdomain of one.

    A domain without a port matches sites on the default ports only, so a
    crawl of ``example.com`` stays off ``example.com:8080``.
    """
    return any(site == domain or site.endswith(f".{domain}") for domain in domains)


class ImagesSpider(scrapy.Spider):
    """Yield one :class:`ImageItem` per image URL found on the crawled pages.

    Arguments: ``url`` (comma-separated) and/or ``urls_file``; ``depth``
    (default 0: the start pages only); ``follow_domains`` (comma-separated
    domains whose pages are followed too, ``*`` for any; by default only the
    start URLs' sites); ``download=no`` to list images without downloading;
    ``render=yes`` to render pages in Chromium first (:mod:`imgscraper.rendering`).
    Images are taken from any host.
    """

    name = "images"

    def __init__(
        self,
        url: str | None = None,
        urls_file: str | None = None,
        depth: str | int = 0,
        follow_domains: str = "",
        download: str = "yes",
        render: str = "no",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.argument_error = ""
        self.start_urls: list[str] = []
        self.depth = 0
        self.download = True
        self.render = False
        self.renderer: Renderer | None = None
        try:
            self.start_urls = parse_start_urls(url, urls_file)
            self.depth = parse_depth(depth)
            self.download = parse_yes_no("download", download)
            self.render = parse_yes_no("render", render)
        except ArgumentError as exc:
            self.argument_error = str(exc)
        extra_domains = [d.strip().lower() for d in follow_domains.split(",") if d.strip()]
        self.follow_any_domain = "*" in extra_domains
        self.follow_domains = [site_of(u) for u in self.start_urls] + extra_domains
        self.seen_images: set[str] = set()
        self.dedupe_images = True

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ImagesSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.srcset_mode = crawler.settings.get("IMGSCRAPER_SRCSET")
        spider.fetch_stylesheets = _setting(crawler.settings.getbool, "IMGSCRAPER_STYLESHEETS")
        spider.script_images = _setting(crawler.settings.getbool, "IMGSCRAPER_SCRIPT_IMAGES")
        spider.max_pages = _setting(crawler.settings.getint, "IMGSCRAPER_MAX_PAGES")
        spider.pages_requested = set()
        crawler.signals.connect(spider.set_up_deduplication, signal=signals.spider_opened)
        crawler.signals.connect(spider.stop_non_page_download, signal=signals.headers_received)
        spider.tracker = None
        spider.item_pages = {}
        spider.parsed_pages = set()
        if directory := job_dir(crawler.settings):
            spider.tracker = PageTracker(PageJournal.in_job_dir(directory))
            if spider.tracker.journal.counts()[0]:
                # Before the scheduler opens it: the journal re-requests every page not done.
                discard_request_queue(directory)
            for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
                crawler.signals.connect(spider.item_finished, signal=signal)
            crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
            crawler.signals.connect(spider.close_journal, signal=signals.spider_closed)
        if not spider.download:
            # Settings are frozen after the spider is created: list only.
            crawler.settings.set("ITEM_PIPELINES", {}, priority="spider")
        if spider.render and not spider.argument_error:
            try:
                spider.renderer = Renderer.from_crawler(crawler)
            except RenderingError as exc:
                spider.argument_error = str(exc)
        return spider

    def set_up_deduplication(self) -> None:
        """A crawl shared by workers (imgscraper.distributed) deduplicates images across them instead."""
        self.dedupe_images = not self.crawler.settings.get("IMGSCRAPER_REDIS_URL")

    def page_meta(self) -> dict[str, Any]:
        """Meta for a page request: rendering, when on."""
        return self.renderer.request_meta() if self.renderer else {}

    async def start(self) -> AsyncIterator[Request]:
        if self.argument_error:
            logger.error("Bad argument: %s", self.argument_error)
            raise CloseSpider("bad_argument")
        if self.tracker is not None:
            journal = self.tracker.journal
            self.pages_requested.update(journal.urls())
            pending = journal.pending()
            total, done = journal.counts()
            if total:
                logger.info("Resuming from JOBDIR: %d pages done, %d to crawl again or for the first time", done, len(pending))
                self.crawler.stats.set_value("imgscraper/pages_resumed", len(pending))
            for url, depth in pending:
                # Scrapy's own JOBDIR state may hold these as seen after a kill: bypass it.
                yield self.page_request(url, depth, dont_filter=True)
        for url in self.start_urls:
            if is_image_url(url):
                # An image given as a start URL is an image to store, not a page to read.
                for item in self.new_images([ImageRef(url, "start")], ""):
                    yield item
            elif self.within_page_budget(url) and self.new_page(url, 0):
                yield self.page_request(url, 0)

    def page_request(self, url: str, depth: int, dont_filter: bool = False, sites: tuple[str, ...] = ()) -> Request:
        meta = {**self.page_meta(), "depth": depth, "imgscraper_page": canonicalize_url(url)}
        if sites:
            meta["imgscraper_sites"] = sites
        return Request(url, callback=self.parse, errback=self.page_failed, meta=meta, dont_filter=dont_filter)

    def stop_non_page_download(self, headers: Headers, body_length: int | None, request: Request) -> None:
        """Stop downloading a page request's response that is no page (a PDF, a video, an
        archive behind an extensionless link): its headers are all that :meth:`parse` needs."""
        if "imgscraper_page" not in request.meta:
            return
        content_type = headers.get("Content-Type", b"").decode("latin-1").partition(";")[0].strip().lower()
        if not content_type or content_type.startswith("text/") or content_type in _PAGE_MEDIA_TYPES:
            return
        self.crawler.stats.inc_value("imgscraper/pages_not_html")
        logger.debug("Not a page (%s): %s, download stopped", content_type, request.url)
        raise StopDownload(fail=False)

    def new_page(self, url: str, depth: int) -> bool:
        """Whether ``url`` is a page to request now: with a ``JOBDIR``, one its journal does not hold yet."""
        return self.tracker is None or self.tracker.journal.add(canonicalize_url(url), depth)

    def item_finished(self, item: Any) -> None:
        """An item left the pipelines: one less thing its page waits for."""
        page = self.item_pages.pop(id(item), None)
        if page is not None:
            self.tracker.release(page)

    def request_dropped(self, request: Request) -> None:
        if page := request.meta.get("imgscraper_holds"):
            self.tracker.release(page)

    def close_journal(self) -> None:
        total, done = self.tracker.journal.counts()
        self.crawler.stats.set_value("imgscraper/journal/pages", total)
        self.crawler.stats.set_value("imgscraper/journal/pages_done", done)
        self.tracker.journal.close()

    def within_page_budget(self, url: str) -> bool:
        """Whether ``url`` may be requested under ``IMGSCRAPER_MAX_PAGES`` (distinct pages, start pages included)."""
        key = canonicalize_url(url)
        if not self.max_pages or key in self.pages_requested:
            return True
        if len(self.pages_requested) >= self.max_pages:
            if not self.crawler.stats.get_value("imgscraper/pages_over_budget"):
                logger.warning("Page budget reached (IMGSCRAPER_MAX_PAGES=%d): no more pages are followed", self.max_pages)
            self.crawler.stats.inc_value("imgscraper/pages_over_budget")
            return False
        self.pages_requested.add(key)
        return True

    def page_failed(self, failure: Failure) -> None:
        """One log line and a stat (``imgscraper/pages_failed/<reason>``) per page that cannot be fetched.

        A start page that fails is an ERROR (and fails the crawl); another page a WARNING.
        """
        request = failure.request
        response = getattr(failure.value, "response", None)
        if response is not None:
            reason, detail = f"http-{response.status}", f"HTTP {response.status}"
        else:
            reason = browser_failure_reason(failure.value) or failure_reason(failure.value)
            detail = (str(failure.value) or type(failure.value).__name__).splitlines()[0]
        self.crawler.stats.inc_value(f"imgscraper/pages_failed/{reason}")
        if self.tracker is not None and "imgscraper_page" in request.meta:
            self.tracker.journal.done(request.meta["imgscraper_page"])
        if request.meta.get("depth", 0) == 0:
            self.crawler.stats.inc_value("imgscraper/start_pages_failed")
            logger.error("Cannot fetch start page %s: %s", request.url, detail)
        else:
            logger.warning("Cannot fetch page %s: %s", request.url, detail)

    def parse(self, response: Response) -> Iterator[ImageItem | Request]:
        """Yield the page's new images, its style sheets, then its links while under ``depth``.

        With a ``JOBDIR``, the page counts as done in the journal once all
        that has been processed (see :mod:`imgscraper.journal`).
        """
        page = response.meta.get("imgscraper_page") if self.tracker is not None else None
        if page is not None:
            if page in self.parsed_pages or self.tracker.journal.is_done(page):
                return  # a second copy, from Scrapy's own JOBDIR queue
            self.parsed_pages.add(page)
            self.tracker.acquire(page)
        yield from self._parse_page(response, page)
        # Not in a ``finally``: a parse cut short (the crawl stopping) leaves the page to redo.
        if page is not None:
            self.tracker.release(page)

    def _parse_page(self, response: Response, page: str | None) -> Iterator[ImageItem | Request]:
        # A stopped download (stop_non_page_download) has no body, which Scrapy takes for text.
        if not isinstance(response, TextResponse) or "download_stopped" in response.flags:
            content_type = response.headers.get("Content-Type", b"").decode("latin-1").lower()
            if content_type.startswith("image/"):
                # A start URL or a link without an image extension that serves an image
                # (/photo?id=5): stored like any image, found on the page that links to it.
                linked_from = response.request.headers.get("Referer", b"").decode("utf-8", "replace")
                ref = ImageRef(response.url, "link-href" if linked_from else "start")
                yield from self.new_images([ref], linked_from, page)
            return
        self.crawler.stats.inc_value("imgscraper/pages")
        ignored: list[str] = []
        refs = find_images(
            response.selector, response.url, srcset=self.srcset_mode, scripts=self.script_images, ignored=ignored
        )
        yield from self.new_images(refs, response.url, page)
        if self.renderer:
            yield from self.new_images(self.renderer.browser_images(response, self.srcset_mode), response.url, page)
        for url in ignored:
            scheme = url.partition(":")[0].lower()
            self.crawler.stats.inc_value(f"imgscraper/urls_ignored/{scheme}")
            logger.debug("Ignored image URL %s on %s: only http, https and data: are fetched", url[:200], response.url)
        if self.fetch_stylesheets:
            for sheet in find_stylesheets(response.selector, response.url):
                yield self.stylesheet_request(sheet, response.url, page)
        depth = response.meta.get("depth", 0)
        if depth < self.depth:
            links = find_page_links(response.selector, response.url)
        elif depth == self.depth:
            # A browser shows a page's frames with it: they are fetched where links stop too
            # (one level: a frame's own frames and links lie past the depth).
            links = find_frames(response.selector, response.url)
        else:
            links = []
        sites = self.sites_moved_to(response)
        for link in links:
            if self.should_follow(link, sites) and self.within_page_budget(link) and self.new_page(link, depth + 1):
                yield self.page_request(link, depth + 1, sites=sites)

    def sites_moved_to(self, response: Response) -> tuple[str, ...]:
        """The sites, besides ``follow_domains``, whose pages are followed from ``response``: the
        site a start page redirected to (``http://brand.com`` -> ``https://www.brand.co.uk/``),
        carried by the requests of the pages found from it (in any process or worker)."""
        moved = response.meta.get("depth", 0) == 0 and response.meta.get("redirect_urls")
        if moved and not self.should_follow(response.url):
            site = site_of(response.url)
            logger.info("Start page %s moved to %s: its pages are followed too", response.meta["redirect_urls"][0], site)
            return (site,)
        return tuple(response.meta.get("imgscraper_sites", ()))

    def stylesheet_request(self, url: str, page: str, journal_page: str | None) -> Request:
        meta = {}
        if journal_page is not None:
            self.tracker.acquire(journal_page)
            meta["imgscraper_holds"] = journal_page
        return Request(url, callback=self.parse_stylesheet, errback=self.stylesheet_failed,
                       cb_kwargs={"page": page}, meta=meta)

    def parse_stylesheet(self, response: Response, page: str) -> Iterator[ImageItem | Request]:
        """Yield the new images of a style sheet ``page`` loads, and the sheets it imports."""
        journal_page = response.meta.get("imgscraper_holds")
        css = response.text if isinstance(response, TextResponse) else response.body.decode("utf-8", "replace")
        self.crawler.stats.inc_value("imgscraper/stylesheets")
        yield from self.new_images(find_css_images(css, response.url), page, journal_page)
        for sheet in css_import_urls(css, response.url):
            yield self.stylesheet_request(sheet, page, journal_page)
        if journal_page is not None:
            self.tracker.release(journal_page)

    def stylesheet_failed(self, failure: Failure) -> None:
        self.crawler.stats.inc_value("imgscraper/stylesheets_failed")
        logger.debug("Cannot fetch style sheet %s: %s", failure.request.url, failure.value)
        if journal_page := failure.request.meta.get("imgscraper_holds"):
            self.tracker.release(journal_page)

    def new_images(self, refs: list[ImageRef], page: str, journal_page: str | None = None) -> Iterator[ImageItem]:
        """One item per image URL not yielded before in this crawl (by this process:
        with ``dedupe_images`` off, every reference is yielded for a shared crawl to sort out)."""
        for ref in refs:
            if self.dedupe_images:
                key = image_url_key(ref.url)
                if key in self.seen_images:
                    continue
                self.seen_images.add(key)
                self.crawler.stats.inc_value("imgscraper/images/found")
            item = ImageItem(url=ref.url, page=page, source=ref.source)
            if journal_page is not None:
                self.tracker.acquire(journal_page)
                self.item_pages[id(item)] = journal_page
            yield item

    def should_follow(self, url: str, sites: tuple[str, ...] = ()) -> bool:
        """Whether a page link stays on the crawled sites (``follow_domains``, and ``sites``)."""
        if self.follow_any_domain:
            return True
        site = site_of(url)
        return site_in_domains(site, self.follow_domains) or site_in_domains(site, sites)
