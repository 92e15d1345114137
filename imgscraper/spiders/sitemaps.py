"""Start pages from sitemaps: the ``images`` spider's ``-a sitemap=URL`` and ``-a sitemap=auto``.

As with Scrapy's :class:`~scrapy.spiders.SitemapSpider`, a sitemap index leads to
more sitemaps and a sitemap to pages; :mod:`imgscraper.discovery.sitemaps` reads
them. The pages a sitemap lists are crawled as start pages, with the images it
lists for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from twisted.python.failure import Failure

from imgscraper.discovery.sitemaps import read_sitemap, robots_txt_url, sitemap_body, sitemaps_in_robots_txt
from imgscraper.extensions.journal import JournalPage
from imgscraper.spiders.arguments import is_http_url
from imgscraper.spiders.scope import site_of
from imgscraper.utils import failure_detail

__all__ = ["SitemapMixin"]

logger = logging.getLogger(__name__)


class SitemapMixin:
    """The sitemap requests and callbacks of a spider.

    The spider has the parsed ``start_urls``, ``sitemap_urls`` and ``sitemaps_from_robots_txt``
    (:class:`~imgscraper.spiders.arguments.SpiderArguments`), ``sitemap_max_size`` (bytes, 0:
    no limit), and decides which pages to request and how: ``should_follow(url, sites)``,
    ``follows_page(page)`` (a :class:`~imgscraper.extensions.journal.JournalPage`) and
    ``page_request(url, depth, sites=, sitemap_images=)``.
    """

    crawler: Crawler
    start_urls: list[str]
    sitemap_urls: list[str]
    sitemaps_from_robots_txt: bool
    sitemap_max_size: int

    def sitemap_start_requests(self) -> Iterator[Request]:
        """The sitemaps given as arguments, then for ``sitemap=auto`` the start sites' robots.txt."""
        for url in self.sitemap_urls:
            yield self.sitemap_request(url, required=True)
        if self.sitemaps_from_robots_txt:
            for url in dict.fromkeys(map(robots_txt_url, self.start_urls)):
                # Fetched again, as SitemapSpider does: RobotsTxtMiddleware keeps its robots.txt to itself.
                yield Request(url, callback=self.parse_robots_txt, errback=self.sitemap_failed,
                              meta={"dont_obey_robotstxt": True}, priority=1)

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
        for url in filter(is_http_url, contents.sitemaps):
            yield self.sitemap_request(url)
        own_site = (site_of(response.url),)
        for url, images in contents.pages.items():
            if not is_http_url(url):
                continue
            sites = () if self.should_follow(url) else own_site
            if self.follows_page(JournalPage(url, 0, sites, tuple(images))):
                yield self.page_request(url, 0, sites=sites, sitemap_images=tuple(images))

    def sitemap_failed(self, failure: Failure) -> None:
        self.sitemap_unread(failure.request, failure_detail(failure.value))

    def sitemap_unread(self, request: Request, detail: str) -> None:
        """One log line and a stat for a sitemap or robots.txt that cannot be read: an ERROR
        that fails the crawl for a sitemap given as an argument, else a WARNING."""
        self.crawler.stats.inc_value("imgscraper/sitemaps_failed")
        if request.meta.get("imgscraper_sitemap_required"):
            self.crawler.stats.inc_value("imgscraper/start_pages_failed")
            logger.error("Cannot read sitemap %s: %s", request.url, detail)
        else:
            logger.warning("Cannot read %s: %s", request.url, detail)
