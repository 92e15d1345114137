"""How far the ``images`` spider goes: the sites it follows pages on, and the page budget."""

from __future__ import annotations

import logging

from scrapy.crawler import Crawler
from scrapy.http import Request
from scrapy.utils.httpobj import urlparse_cached
from w3lib.url import canonicalize_url

__all__ = ["PageBudget", "site_in_domains", "site_of"]

logger = logging.getLogger(__name__)


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


class PageBudget:
    """``IMGSCRAPER_MAX_PAGES``: how many distinct pages a crawl requests, start pages
    included (0: no limit). Over it, a WARNING once and ``imgscraper/pages_over_budget``."""

    def __init__(self, max_pages: int, crawler: Crawler):
        self.max_pages = max_pages
        self.crawler = crawler
        #: The pages requested so far (canonical URLs).
        self.requested: set[str] = set()

    def allows(self, url: str) -> bool:
        """Whether ``url`` may be requested; if so, it counts from now on."""
        key = canonicalize_url(url)
        if not self.max_pages or key in self.requested:
            return True
        if len(self.requested) >= self.max_pages:
            stats = self.crawler.stats
            if not stats.get_value("imgscraper/pages_over_budget"):
                logger.warning("Page budget reached (IMGSCRAPER_MAX_PAGES=%d): no more pages are followed", self.max_pages)
            stats.inc_value("imgscraper/pages_over_budget")
            return False
        self.requested.add(key)
        return True
