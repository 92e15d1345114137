"""The ``images`` spider: every image of the start pages, following links to ``depth``."""

from __future__ import annotations

import difflib
import inspect
import logging
import re
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import cssselect
import scrapy
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import CloseSpider, StopDownload
from scrapy.http import Headers, Request, Response, TextResponse
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings
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
    find_page_title,
    find_stylesheets,
    image_url_key,
)
from imgscraper.downloader import crawl_stopping
from imgscraper.exceptions import ArgumentError, CrawlStopped, RenderingError, StoppedBeforeDownload, failure_reason
from imgscraper.filters import FILTERS, ImageFilter, URLFilter, count_filtered, parse_regex, resolve_arguments
from imgscraper.items import ImageItem
from imgscraper.extensions.journal import PageJournal, PageTracker, discard_request_queue
from imgscraper.rendering.renderer import Renderer, browser_failure_reason
from imgscraper import signals as imgscraper_signals
from imgscraper.discovery.sitemaps import read_sitemap, robots_txt_url, sitemap_body, sitemaps_in_robots_txt

__all__ = [
    "ArgumentError", "ImagesSpider", "check_argument_names", "check_http_url", "parse_click", "parse_depth",
    "parse_sitemaps", "parse_start_urls", "parse_yes_no", "site_in_domains", "site_of",
]

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


def _image_filter(settings: BaseSettings) -> ImageFilter:
    """The filter of the pipeline's settings; none for bad ones (imgscraper.addons.settingscheck reports them)."""
    try:
        return ImageFilter.from_settings(settings)
    except ValueError:
        return ImageFilter()


def parse_start_urls(url: str | None, urls_file: str | None, required: bool = True) -> list[str]:
    """The start URLs from ``-a url=A,B`` and/or ``-a urls_file=FILE`` (one per line, ``#`` comments);
    none is an error when ``required`` (a crawl from sitemaps needs none)."""
    candidates = [u.strip() for u in (url or "").split(",")]
    if urls_file:
        try:
            lines = Path(urls_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ArgumentError(f"cannot read urls_file {urls_file!r}: {exc.strerror}") from None
        candidates += [line.strip() for line in lines if not line.strip().startswith("#")]
    urls = [with_guessed_scheme(u) for u in candidates if u]
    if not urls and required:
        raise ArgumentError("no start URL: pass -a url=https://example.com (or -a urls_file=FILE, -a sitemap=URL)")
    for start_url in urls:
        check_http_url("url", start_url)
    return list(dict.fromkeys(urls))


def check_http_url(argument: str, url: str) -> None:
    """Raise :class:`ArgumentError` unless ``url`` (given as ``argument``) is a well-formed http(s) URL."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ArgumentError(f"{argument} {url!r} is not an http(s) URL: pass e.g. -a {argument}=https://example.com")
    try:
        urlsplit(url).port  # noqa: B018 - reading it is the check
    except ValueError as exc:
        raise ArgumentError(f"{argument} {url!r} is malformed ({exc}): pass e.g. -a {argument}=https://example.com") from None


def _is_http_url(url: str) -> bool:
    """Whether ``url`` (read from a sitemap) is a well-formed http(s) URL."""
    try:
        check_http_url("url", url)
    except ArgumentError:
        return False
    return True


def parse_sitemaps(value: str | None) -> tuple[list[str], bool]:
    """``-a sitemap=URL[,URL...]``, where ``auto`` stands for the sitemaps the start sites'
    robots.txt names: the sitemap URLs, and whether ``auto`` was given."""
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    urls = [name for name in names if name.lower() != "auto"]
    for url in urls:
        check_http_url("sitemap", url)
    return list(dict.fromkeys(urls)), len(urls) < len(names)


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


def parse_click(selector: str | None, render: str | None) -> str:
    """``-a click=CSS_SELECTOR``: a CSS selector (checked by cssselect's parser,
    which lets through pseudo-classes only a browser knows); it needs
    rendering, so it implies ``render=yes`` and contradicts ``render=no``."""
    if selector is None:
        return ""
    try:
        cssselect.parse(selector)
    except cssselect.SelectorSyntaxError as exc:
        raise ArgumentError(
            f"click {selector!r} is not a CSS selector ({exc}): pass e.g. -a 'click=button.load-more'") from None
    if render is not None and not parse_yes_no("render", render):
        raise ArgumentError(
            f"click {selector!r} clicks in the browser, and render is {render!r}: leave render out or pass -a render=yes")
    return selector


def check_argument_names(given: Iterable[str], known: Collection[str]) -> None:
    """Raise :class:`ArgumentError` for an argument in ``given`` the spider does not take.

    Names starting with ``_`` pass: Scrapyd adds its own (``_job``, ``_version``).
    """
    unknown = [name for name in given if name not in known and not name.startswith("_")]
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        problems.append(f"{name} (did you mean {close[0]}?)" if close else name)
    plural = "s" if len(unknown) > 1 else ""
    raise ArgumentError(f"unknown argument{plural} {', '.join(problems)}: the arguments are {', '.join(known)}")


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
    ``render=yes`` to render pages in Chromium first (:mod:`imgscraper.rendering.renderer`);
    ``click=CSS_SELECTOR`` to click a "load more" element on every rendered page
    (implies ``render=yes``). Images are taken from any host. The filters
    ``allow``, ``deny`` (pages followed), ``image_allow``, ``image_deny``,
    ``formats``, ``min_bytes`` and ``max_bytes`` (images kept) set their ``IMGSCRAPER_<NAME>`` setting
    (:mod:`imgscraper.filters`). An argument not in :meth:`argument_names`
    is a bad argument, except Scrapyd's own (``_job``, ``_version``).
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
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        #: The arguments the spider was given (the filters read theirs from here).
        self.arguments: dict[str, Any] = {
            "url": url, "urls_file": urls_file, "depth": depth, "follow_domains": follow_domains,
            "download": download, "render": render, "click": click, "allow": allow, "deny": deny,
            "image_allow": image_allow, "image_deny": image_deny, "formats": formats, "min_bytes": min_bytes,
            "max_bytes": max_bytes, "sitemap": sitemap, **kwargs,
        }
        self.argument_error = ""
        self.start_urls: list[str] = []
        self.sitemap_urls: list[str] = []
        self.sitemaps_from_robots_txt = False
        self.depth = 0
        self.download = True
        self.render = False
        self.click = ""
        self.renderer: Renderer | None = None
        try:
            check_argument_names(kwargs, self.argument_names())
            self.sitemap_urls, self.sitemaps_from_robots_txt = parse_sitemaps(sitemap)
            self.start_urls = parse_start_urls(
                url, urls_file, required=not (self.sitemap_urls or self.sitemaps_from_robots_txt)
            )
            if self.sitemaps_from_robots_txt and not self.start_urls:
                raise ArgumentError(
                    "sitemap=auto reads the sitemaps the start sites' robots.txt names: pass -a url=https://example.com too"
                )
            self.depth = parse_depth(depth)
            self.download = parse_yes_no("download", download)
            self.click = parse_click(click, render)
            self.render = parse_yes_no("render", render) if render is not None else bool(self.click)
        except ArgumentError as exc:
            self.argument_error = str(exc)
        extra_domains = [d.strip().lower() for d in follow_domains.split(",") if d.strip()]
        self.follow_any_domain = "*" in extra_domains
        self.follow_domains = [site_of(u) for u in self.start_urls] + extra_domains
        self.seen_images: set[str] = set()
        self.dedupe_images = True

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
        spider.max_pages = _setting(crawler.settings.getint, "IMGSCRAPER_MAX_PAGES")
        spider.sitemap_max_size = _setting(crawler.settings.getint, "DOWNLOAD_MAXSIZE")
        spider.apply_filter_arguments(crawler.settings)
        spider.page_filter = URLFilter(
            _filter_regex(crawler.settings, "IMGSCRAPER_ALLOW"), _filter_regex(crawler.settings, "IMGSCRAPER_DENY")
        )
        spider.image_url_filter = URLFilter(
            _filter_regex(crawler.settings, "IMGSCRAPER_IMAGE_ALLOW"),
            _filter_regex(crawler.settings, "IMGSCRAPER_IMAGE_DENY"),
        )
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
            if not spider.argument_error and _image_filter(crawler.settings):
                logger.warning("formats, min_bytes and max_bytes are decided on downloads: download=no lists every image")
        if spider.render and not spider.argument_error:
            try:
                spider.renderer = Renderer.from_crawler(crawler, click=spider.click)
            except RenderingError as exc:
                spider.argument_error = str(exc)
        return spider

    def apply_filter_arguments(self, settings: BaseSettings) -> None:
        """Each filter given as an argument (``-a formats=jpeg``) sets its setting
        (``IMGSCRAPER_FORMATS``), over one given with ``-s``: the pipeline reads it there."""
        if self.argument_error:
            return
        try:
            given = resolve_arguments(self.arguments, FILTERS)
        except ValueError as exc:
            self.argument_error = str(exc)
            return
        for option, value in given.items():
            priority = max(settings.getpriority(option.setting) or 0, SETTINGS_PRIORITIES["cmdline"])
            settings.set(option.setting, value, priority=priority)

    def set_up_deduplication(self) -> None:
        """A crawl shared by workers (imgscraper.distributed.crawl) deduplicates images across them instead."""
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
        for url in self.sitemap_urls:
            yield self.sitemap_request(url, required=True)
        if self.sitemaps_from_robots_txt:
            for url in dict.fromkeys(map(robots_txt_url, self.start_urls)):
                # Fetched again, as SitemapSpider does: RobotsTxtMiddleware keeps its robots.txt to itself.
                yield Request(url, callback=self.parse_robots_txt, errback=self.sitemap_failed,
                              meta={"dont_obey_robotstxt": True}, priority=1)

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

    def sitemap_request(self, url: str, required: bool = False) -> Request:
        """A sitemap (or sitemap index) to read; a ``required`` one (``-a sitemap=URL``) that
        cannot be read fails the crawl as a start page would."""
        return Request(url, callback=self.parse_sitemap, errback=self.sitemap_failed,
                       meta={"imgscraper_sitemap_required": required}, priority=1)

    def parse_robots_txt(self, response: Response) -> Iterator[Request]:
        """The sitemaps a start site's robots.txt names (``-a sitemap=auto``)."""
        urls = sitemaps_in_robots_txt(response.body, response.url)
        if not urls:
            logger.warning("No Sitemap: line in %s (-a sitemap=auto)", response.url)
        for url in urls:
            yield self.sitemap_request(url)

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        """The sitemaps a sitemap index lists, or the pages a sitemap lists: crawled like start
        pages (depth counts from them) when on the crawled sites or the sitemap's own site, and
        not left out by ``allow``/``deny``; the images listed with a page are taken with it."""
        body = sitemap_body(response, self.sitemap_max_size)
        contents = read_sitemap(body, response.url) if body is not None else None
        if contents is None:
            self.sitemap_unread(response.request, "not a sitemap")
            return
        self.crawler.stats.inc_value("imgscraper/sitemaps")
        for url in filter(_is_http_url, contents.sitemaps):
            yield self.sitemap_request(url)
        own_site = (site_of(response.url),)
        for url, images in contents.pages.items():
            if (
                _is_http_url(url)
                and self.should_follow(url, own_site)
                and self.page_filter.allows(url)
                and self.within_page_budget(url)
                and self.new_page(url, 0)
            ):
                sites = () if self.should_follow(url) else own_site
                yield self.page_request(url, 0, sites=sites, sitemap_images=tuple(images))

    def sitemap_failed(self, failure: Failure) -> None:
        response = getattr(failure.value, "response", None)
        if response is not None:
            detail = f"HTTP {response.status}"
        else:
            detail = (str(failure.value) or type(failure.value).__name__).splitlines()[0]
        self.sitemap_unread(failure.request, detail)

    def sitemap_unread(self, request: Request, detail: str) -> None:
        """One log line and a stat for a sitemap or robots.txt that cannot be read: an ERROR
        that fails the crawl for a sitemap given as an argument, else a WARNING."""
        self.crawler.stats.inc_value("imgscraper/sitemaps_failed")
        if request.meta.get("imgscraper_sitemap_required"):
            self.crawler.stats.inc_value("imgscraper/start_pages_failed")
            logger.error("Cannot read sitemap %s: %s", request.url, detail)
        else:
            logger.warning("Cannot read %s: %s", request.url, detail)

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
        """A stat (``imgscraper/pages_failed/<reason>``) and :data:`imgscraper.signals.page_failed`
        per page that cannot be fetched. A start page that fails is an ERROR line, and fails the crawl.
        """
        request = failure.request
        if failure.check(CrawlStopped):
            logger.debug("Not fetched, the crawl is stopping: %s", request.url)
            return  # left to do: a resumed crawl fetches it
        response = getattr(failure.value, "response", None)
        if response is not None:
            reason, detail = f"http-{response.status}", f"HTTP {response.status}"
        else:
            reason = browser_failure_reason(failure.value) or failure_reason(failure.value)
            detail = (str(failure.value) or type(failure.value).__name__).splitlines()[0]
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
        """Yield the page's new images, its style sheets, then its links while under ``depth``.

        With a ``JOBDIR``, the page counts as done in the journal once all
        that has been processed (see :mod:`imgscraper.extensions.journal`).
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
        ignored: list[str] = []
        refs = find_images(
            response.selector, response.url, srcset=self.srcset_mode, scripts=self.script_images, ignored=ignored
        )
        page_title = find_page_title(response.selector)
        yield from self.new_images(refs, response.url, page, page_title)
        if listed := response.meta.get("imgscraper_sitemap_images"):
            yield from self.new_images([ImageRef(url, "sitemap") for url in listed], response.url, page, page_title)
        if self.renderer:
            browser_images = self.renderer.browser_images(response, self.srcset_mode)
            yield from self.new_images(browser_images, response.url, page, page_title)
        for url in ignored:
            scheme = url.partition(":")[0].lower()
            self.crawler.stats.inc_value(f"imgscraper/urls_ignored/{scheme}")
            logger.debug("Ignored image URL %s on %s: only http, https and data: are fetched", url[:200], response.url)
        if self.fetch_stylesheets:
            for sheet in find_stylesheets(response.selector, response.url):
                yield self.stylesheet_request(sheet, response.url, page, page_title)
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
            if (
                self.should_follow(link, sites)
                and self.page_filter.allows(link)
                and self.within_page_budget(link)
                and self.new_page(link, depth + 1)
            ):
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
        yield from self.new_images(find_css_images(css, response.url), page, journal_page, page_title)
        for sheet in css_import_urls(css, response.url):
            yield self.stylesheet_request(sheet, page, journal_page, page_title)
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
        with ``dedupe_images`` off, every reference is yielded for a shared crawl to sort out),
        with the context ``page`` (titled ``page_title``) gave it. An image the URL filters
        leave out is an item already ``skipped`` (``filtered``): the pipeline does not request it.
        None once the crawl is stopping: they would not be downloaded."""
        for ref in refs:
            if crawl_stopping(self.crawler):
                return
            if self.dedupe_images:
                key = image_url_key(ref.url)
                if key in self.seen_images:
                    continue
                self.seen_images.add(key)
                self.crawler.stats.inc_value("imgscraper/images/found")
            item = ImageItem(
                url=ref.url, page=page, source=ref.source, alt=ref.alt, title=ref.title, caption=ref.caption,
                page_title=page_title, srcset_descriptor=ref.srcset_descriptor,
            )
            if not self.image_url_filter.allows(ref.url):
                item.status, item.reason = "skipped", "filtered"
                if self.dedupe_images:  # else counted once the image is this worker's (imgscraper.distributed.crawl)
                    count_filtered(self.crawler.stats)
                logger.debug("Image skipped (filtered): %s", ref.url[:300])
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
