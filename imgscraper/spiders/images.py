"""The ``images`` spider: every image of the start pages, following links to ``depth``."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, StopDownload
from scrapy.http import Headers, Request, Response, TextResponse
from scrapy.selector import Selector
from scrapy.settings import BaseSettings
from scrapy.utils.job import job_dir
from twisted.python.failure import Failure
from w3lib.url import canonicalize_url

from imgscraper import settings as project_settings
from imgscraper import signals as imgscraper_signals
from imgscraper.discovery.css import css_import_urls, find_css_images
from imgscraper.discovery.html import find_frames, find_images, find_page_links, find_page_title, find_stylesheets
from imgscraper.discovery.originals import RULES, Rule, original_ref, parse_rules
from imgscraper.discovery.references import ImageRef
from imgscraper.discovery.urls import image_url_digest, is_image_url
from imgscraper.downloader import crawl_stopping
from imgscraper.exceptions import (
    CrawlStopped, RenderingError, StoppedBeforeDownload, browser_failure_reason, failure_reason,
)
from imgscraper.filters import ImageFilter, URLFilter, count_filtered, parse_regex
from imgscraper.items import ImageItem
from imgscraper.extensions.imagelimit import listed_within_limit
from imgscraper.extensions.journal import JournalPage, PageJournal, PageTracker, discard_request_queue
from imgscraper.rendering.renderer import Renderer
from imgscraper.spiders.arguments import apply_setting_arguments, parse_arguments
from imgscraper.spiders.scope import PageBudget, site_in_domains, site_of
from imgscraper.spiders.sitemaps import SitemapMixin
from imgscraper.utils import failure_detail

__all__ = ["ImagesSpider"]

logger = logging.getLogger(__name__)


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


def _filter_regex(settings: BaseSettings, name: str) -> re.Pattern[str] | None:
    """The regular expression of filter setting ``name``; none for a bad one (imgscraper.addons.settingscheck reports it)."""
    try:
        return parse_regex(settings.get(name))
    except ValueError:
        return None


def _url_filter(settings: BaseSettings, allow: str, deny: str) -> URLFilter:
    """The filter of the ``allow`` and ``deny`` regular expression settings."""
    return URLFilter(_filter_regex(settings, allow), _filter_regex(settings, deny))


def _original_rules(settings: BaseSettings) -> tuple[Rule, ...] | None:
    """The rules that rewrite a thumbnail's URL to its original's (the user's first), or None when
    ``IMGSCRAPER_ORIGINALS`` is off. Bad user rules are left out: imgscraper.addons.settingscheck reports them."""
    if not _setting(settings.getbool, "IMGSCRAPER_ORIGINALS"):
        return None
    try:
        return (*parse_rules(settings.get("IMGSCRAPER_ORIGINALS_RULES")), *RULES)
    except ValueError:
        return RULES


def _image_filter(settings: BaseSettings) -> ImageFilter:
    """The filter of the pipeline's settings; none for bad ones (imgscraper.addons.settingscheck reports them)."""
    try:
        return ImageFilter.from_settings(settings)
    except ValueError:
        return ImageFilter()


def _page_failure_reason(failure: Failure) -> str:
    """The reason a page could not be fetched, for its stat: ``http-<status>``, or a reason of
    :mod:`imgscraper.exceptions` (or of the browser, for a rendered page)."""
    response = getattr(failure.value, "response", None)
    if response is not None:
        return f"http-{response.status}"
    return browser_failure_reason(failure.value) or failure_reason(failure.value)


def _pages_to_follow(document: Selector, url: str, depth: int, max_depth: int) -> list[str]:
    """The pages ``document`` (the page at ``url``, at ``depth`` of a crawl to ``max_depth``) leads
    to: its links while under it. A browser shows a page's frames with it: they are fetched where
    links stop too (one level: a frame's own frames and links lie past the depth)."""
    if depth < max_depth:
        return find_page_links(document, url)
    if depth == max_depth:
        return find_frames(document, url)
    return []


def _track_pages(spider: ImagesSpider, crawler: Crawler) -> None:
    """With a ``JOBDIR``: the page journal (:mod:`imgscraper.extensions.journal`), which pages are done."""
    spider.tracker = None
    spider.item_pages = {}
    if directory := job_dir(crawler.settings):
        spider.tracker = PageTracker(PageJournal.in_job_dir(directory))
        if spider.tracker.journal.counts()[0]:
            # Before the scheduler opens it: the journal re-requests every page not done.
            discard_request_queue(directory)
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(spider.item_finished, signal=signal)
        crawler.signals.connect(spider.request_dropped, signal=signals.request_dropped)
        crawler.signals.connect(spider.close_journal, signal=signals.spider_closed)


class ImagesSpider(SitemapMixin, scrapy.Spider):
    """Yield one :class:`ImageItem` per image URL found on the crawled pages, from any host.

    The arguments (:mod:`imgscraper.spiders.arguments`) are the keyword parameters
    of ``__init__`` (:meth:`argument_names`).
    """

    name = "images"

    def __init__(
        self,
        url: str | None = None,
        urls_file: str | None = None,
        depth: str | int = 0,
        follow_domains: str = "",
        download: str = "yes",
        render: str | None = None,
        click: str | None = None,
        allow: str | None = None,
        deny: str | None = None,
        image_allow: str | None = None,
        image_deny: str | None = None,
        formats: str | None = None,
        min_bytes: str | None = None,
        max_bytes: str | None = None,
        sitemap: str | None = None,
        cookies: str | None = None,
        originals: str | None = None,
        max_images: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        #: The arguments the spider was given (the filters read theirs from here): the parameters above, then kwargs.
        given = locals()
        self.arguments: dict[str, Any] = {name: given[name] for name in self.argument_names()} | kwargs
        parsed, self.argument_error = parse_arguments(self.arguments, self.argument_names())
        self.start_urls, self.sitemap_urls = parsed.start_urls, parsed.sitemap_urls
        self.sitemaps_from_robots_txt = parsed.sitemaps_from_robots_txt
        self.depth, self.download, self.render, self.click = parsed.depth, parsed.download, parsed.render, parsed.click
        self.follow_any_domain = "*" in parsed.follow_domains
        self.follow_domains = [site_of(u) for u in self.start_urls] + parsed.follow_domains
        self.renderer: Renderer | None = None
        self.seen_images: set[bytes] = set()  # image_url_digest() of each image URL yielded
        self.dedupe_images = True
        self.original_rules: tuple[Rule, ...] | None = None  # originals=yes: their rules

    @classmethod
    def argument_names(cls) -> tuple[str, ...]:
        """The arguments the spider takes (``-a NAME=VALUE``): the keyword parameters of ``__init__``."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self")

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ImagesSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.srcset_mode = crawler.settings.get("IMGSCRAPER_SRCSET")
        spider.fetch_stylesheets = _setting(crawler.settings.getbool, "IMGSCRAPER_STYLESHEETS")
        spider.script_images = _setting(crawler.settings.getbool, "IMGSCRAPER_SCRIPT_IMAGES")
        spider.page_budget = PageBudget(_setting(crawler.settings.getint, "IMGSCRAPER_MAX_PAGES"), crawler)
        spider.sitemap_max_size = _setting(crawler.settings.getint, "DOWNLOAD_MAXSIZE")
        spider.apply_setting_arguments(crawler.settings)
        spider.original_rules = _original_rules(crawler.settings)
        spider.page_filter = _url_filter(crawler.settings, "IMGSCRAPER_ALLOW", "IMGSCRAPER_DENY")
        spider.image_url_filter = _url_filter(crawler.settings, "IMGSCRAPER_IMAGE_ALLOW", "IMGSCRAPER_IMAGE_DENY")
        crawler.signals.connect(spider.take_over_from_addons, signal=signals.spider_opened)
        crawler.signals.connect(spider.stop_non_page_download, signal=signals.headers_received)
        _track_pages(spider, crawler)
        if not spider.download:
            # Settings are frozen after the spider is created: list only.
            crawler.settings.set("ITEM_PIPELINES", {}, priority="spider")
            if not spider.argument_error and _image_filter(crawler.settings):
                logger.warning("formats, min_bytes and max_bytes are decided on downloads: download=no lists every image")
        if spider.render and not spider.argument_error:
            try:
                spider.renderer = Renderer.from_crawler(crawler, click=spider.click)
            except RenderingError as exc:
                spider.argument_error = str(exc)
        return spider

    def apply_setting_arguments(self, settings: BaseSettings) -> None:
        """Each argument that is a setting too (a filter, ``originals``...) sets it in ``settings``
        (:func:`imgscraper.spiders.arguments.apply_setting_arguments`); a bad one is an argument error."""
        if self.argument_error:
            return
        try:
            apply_setting_arguments(self.arguments, settings)
        except ValueError as exc:
            self.argument_error = str(exc)

    def take_over_from_addons(self) -> None:
        """Read once add-ons have run (they run after the spider is built): ``IMGSCRAPER_UNIQUE_IMAGES``
        off means another component deduplicates the images and counts them; ``IMGSCRAPER_SPIDER_PAGE_BUDGET``
        off, that another keeps ``IMGSCRAPER_MAX_PAGES`` (this process sees only the links it found)."""
        settings = self.crawler.settings
        self.dedupe_images = settings.getbool("IMGSCRAPER_UNIQUE_IMAGES", True)
        if not settings.getbool("IMGSCRAPER_SPIDER_PAGE_BUDGET", True):
            self.page_budget.max_pages = 0

    def page_meta(self) -> dict[str, Any]:
        """Meta for a page request: rendering, when on."""
        return self.renderer.request_meta() if self.renderer else {}

    async def start(self) -> AsyncIterator[Request]:
        if self.argument_error:
            logger.error("Bad argument: %s", self.argument_error)
            raise CloseSpider("bad_argument")
        if self.tracker is not None:
            journal = self.tracker.journal
            if self.page_budget.max_pages:
                self.page_budget.requested.update(journal.urls())
            pending = journal.pending()
            total, done = journal.counts()
            if total:
                logger.info("Resuming from JOBDIR: %d pages done, %d to crawl again or for the first time", done, len(pending))
                self.crawler.stats.set_value("imgscraper/pages_resumed", len(pending))
            for page in pending:
                # Scrapy's own JOBDIR state may hold these as seen after a kill: bypass it.
                yield self.page_request(**page._asdict(), dont_filter=True)
        for url in self.start_urls:
            if is_image_url(url):
                # An image given as a start URL is an image to store, not a page to read.
                for item in self.new_images([ImageRef(url, "start")], ""):
                    yield item
            elif self.page_budget.allows(url) and self.new_page(JournalPage(url, 0)):
                yield self.page_request(url, 0)
        for request in self.sitemap_start_requests():
            yield request

    def page_request(
        self,
        url: str,
        depth: int,
        dont_filter: bool = False,
        sites: tuple[str, ...] = (),
        sitemap_images: tuple[str, ...] | None = None,
    ) -> Request:
        """A page to crawl; ``sitemap_images`` (possibly empty) for a page a sitemap lists: the images listed with it."""
        meta = {**self.page_meta(), "depth": depth, "imgscraper_page": canonicalize_url(url)}
        if sites:
            meta["imgscraper_sites"] = sites
        if sitemap_images is not None:
            # A start page, though found by the sitemap's callback (Scrapy's DepthMiddleware).
            meta["depth_reset"] = True
            meta["imgscraper_sitemap_images"] = sitemap_images
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

    def new_page(self, page: JournalPage) -> bool:
        """Whether ``page`` is to request now: with a ``JOBDIR``, one its journal does not hold yet (and now holds)."""
        return self.tracker is None or self.tracker.journal.add(*page._replace(url=canonicalize_url(page.url)))

    def item_finished(self, item: Any, exception: BaseException | None = None) -> None:
        """An item left the pipelines: one less thing its page waits for. An image the
        crawl stopped before downloading leaves its page to do again."""
        page = self.item_pages.pop(id(item), None)
        if page is not None and not isinstance(exception, StoppedBeforeDownload):
            self.tracker.release(page)

    def request_dropped(self, request: Request) -> None:
        if page := request.meta.get("imgscraper_holds"):
            self.tracker.release(page)

    def close_journal(self) -> None:
        total, done = self.tracker.journal.counts()
        self.crawler.stats.set_value("imgscraper/journal/pages", total)
        self.crawler.stats.set_value("imgscraper/journal/pages_done", done)
        self.tracker.journal.close()

    def page_failed(self, failure: Failure) -> None:
        """A stat (``imgscraper/pages_failed/<reason>``) and :data:`imgscraper.signals.page_failed`
        per page that cannot be fetched. A start page that fails is an ERROR line, and fails the crawl.
        """
        request = failure.request
        if failure.check(CrawlStopped):
            logger.debug("Not fetched, the crawl is stopping: %s", request.url)
            return  # left to do: a resumed crawl fetches it
        reason, detail = _page_failure_reason(failure), failure_detail(failure.value)
        self.crawler.stats.inc_value(f"imgscraper/pages_failed/{reason}")
        if self.tracker is not None and "imgscraper_page" in request.meta:
            self.tracker.journal.done(request.meta["imgscraper_page"])
        start_page = request.meta.get("depth", 0) == 0 and "imgscraper_sitemap_images" not in request.meta
        if start_page:
            self.crawler.stats.inc_value("imgscraper/start_pages_failed")
            logger.error("Cannot fetch start page %s: %s", request.url, detail)
        self.crawler.signals.send_catch_log(
            imgscraper_signals.page_failed, url=request.url, reason=reason, detail=detail, start_page=start_page
        )

    def parse(self, response: Response) -> Iterator[ImageItem | Request]:
        """Yield the page's style sheets and its links while under ``depth``, then its new images.

        With a ``JOBDIR``, the page counts as done in the journal once all
        that has been processed (see :mod:`imgscraper.extensions.journal`).
        """
        page = response.meta.get("imgscraper_page") if self.tracker is not None else None
        if page is not None:
            if page in self.tracker.open or self.tracker.journal.is_done(page):
                return  # a second copy, from Scrapy's own JOBDIR queue
            self.tracker.acquire(page)
        yield from self._parse_page(response, page)
        # Not in a ``finally``: a parse cut short (the crawl stopping) leaves the page to redo.
        if page is not None:
            self.release_unless_stopping(page)

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
        # Not response.selector: it and the response would hold each other, freed late by the collector.
        document = Selector(response)
        ignored: list[str] = []
        refs = find_images(document, response.url, srcset=self.srcset_mode, scripts=self.script_images, ignored=ignored)
        page_title = find_page_title(document)
        # Requests first: Scrapy handles a response's output CONCURRENT_ITEMS at a time and an image
        # item holds its place until the image is stored, so links yielded after the images would
        # reach the scheduler (and the other workers of a shared crawl) only once most are stored.
        if self.fetch_stylesheets:
            for sheet in find_stylesheets(document, response.url):
                yield self.stylesheet_request(sheet, response.url, page, page_title)
        depth = response.meta.get("depth", 0)
        sites = self.sites_moved_to(response)
        for link in _pages_to_follow(document, response.url, depth, self.depth):
            if self.follows_page(JournalPage(link, depth + 1, sites)):
                yield self.page_request(link, depth + 1, sites=sites)
        yield from self.new_images(refs, response.url, page, page_title)
        if listed := response.meta.get("imgscraper_sitemap_images"):
            yield from self.new_images([ImageRef(url, "sitemap") for url in listed], response.url, page, page_title)
        if self.renderer:
            browser_images = self.renderer.browser_images(response, self.srcset_mode, document)
            yield from self.new_images(browser_images, response.url, page, page_title)
        for url in ignored:
            scheme = url.partition(":")[0].lower()
            self.crawler.stats.inc_value(f"imgscraper/urls_ignored/{scheme}")
            logger.debug("Ignored image URL %s on %s: only http, https and data: are fetched", url[:200], response.url)

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

    def stylesheet_request(self, url: str, page: str, journal_page: str | None, page_title: str = "") -> Request:
        meta = {}
        if journal_page is not None:
            self.tracker.acquire(journal_page)
            meta["imgscraper_holds"] = journal_page
        return Request(url, callback=self.parse_stylesheet, errback=self.stylesheet_failed,
                       cb_kwargs={"page": page, "page_title": page_title}, meta=meta)

    def parse_stylesheet(self, response: Response, page: str, page_title: str = "") -> Iterator[ImageItem | Request]:
        """Yield the new images of a style sheet ``page`` loads, and the sheets it imports."""
        journal_page = response.meta.get("imgscraper_holds")
        css = response.text if isinstance(response, TextResponse) else response.body.decode("utf-8", "replace")
        self.crawler.stats.inc_value("imgscraper/stylesheets")
        for sheet in css_import_urls(css, response.url):
            yield self.stylesheet_request(sheet, page, journal_page, page_title)
        yield from self.new_images(find_css_images(css, response.url), page, journal_page, page_title)
        if journal_page is not None:
            self.release_unless_stopping(journal_page)

    def release_unless_stopping(self, page: str) -> None:
        """One less thing ``page`` waits for, unless the crawl is stopping: its images
        stopped being yielded (:meth:`new_images`), so the page stays to do."""
        if not crawl_stopping(self.crawler):
            self.tracker.release(page)

    def stylesheet_failed(self, failure: Failure) -> None:
        if failure.check(CrawlStopped):
            return  # its page stays to do
        self.crawler.stats.inc_value("imgscraper/stylesheets_failed")
        logger.debug("Cannot fetch style sheet %s: %s", failure.request.url, failure.value)
        if journal_page := failure.request.meta.get("imgscraper_holds"):
            self.tracker.release(journal_page)

    def new_images(
        self, refs: list[ImageRef], page: str, journal_page: str | None = None, page_title: str = ""
    ) -> Iterator[ImageItem]:
        """One item per image URL not yielded before in this crawl (by this process:
        with ``IMGSCRAPER_UNIQUE_IMAGES`` off, every reference is yielded for another component to sort out),
        with the context ``page`` (titled ``page_title``) gave it (``originals=yes``: the URL of its original,
        :func:`~imgscraper.discovery.originals.original_ref`). An image the URL filters leave out is an item
        already ``skipped`` (``filtered``): the pipeline does not request it. None once the crawl is stopping
        (they would not be downloaded), nor, listing, past ``max_images``."""
        for ref in refs:
            if crawl_stopping(self.crawler):
                return
            ref, original_of = original_ref(ref, self.original_rules)
            if self.dedupe_images:
                key = image_url_digest(ref.url)
                if key in self.seen_images:
                    continue
                self.seen_images.add(key)
                self.crawler.stats.inc_value("imgscraper/images/found")
            item = ImageItem.from_ref(ref, page, page_title, original_of)
            if not self.image_url_filter.allows(ref.url):
                item.status, item.reason = "skipped", "filtered"
                if self.dedupe_images:  # else counted by whatever deduplicates the images
                    count_filtered(self.crawler.stats)
                logger.debug("Image skipped (filtered): %s", ref.url[:300])
            if not self.download and not listed_within_limit(self.crawler, item):
                return  # max_images listed
            if journal_page is not None:
                self.tracker.acquire(journal_page)
                self.item_pages[id(item)] = journal_page
            yield item

    def follows_page(self, page: JournalPage) -> bool:
        """Whether to request ``page``, found on a page or in a sitemap: on the crawled sites (or its ``sites``),
        let through by ``allow``/``deny``, within the page budget, and new to the journal."""
        return (
            self.should_follow(page.url, page.sites)
            and self.page_filter.allows(page.url)
            and self.page_budget.allows(page.url)
            and self.new_page(page)
        )

    def should_follow(self, url: str, sites: tuple[str, ...] = ()) -> bool:
        """Whether a page link stays on the crawled sites (``follow_domains``, and ``sites``)."""
        if self.follow_any_domain:
            return True
        site = site_of(url)
        return site_in_domains(site, self.follow_domains) or site_in_domains(site, sites)
