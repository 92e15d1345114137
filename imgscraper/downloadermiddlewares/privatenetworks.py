"""No request into a private network: the downloader middleware of :mod:`imgscraper.resolver`.

:class:`PrivateNetworkMiddleware` hands the guarded resolver installed on the
reactor the crawl's :class:`~imgscraper.resolver.AddressPolicy`, with the start
URLs' networks allowed; refuses IP-literal URLs before anything is sent; and
gives every refused request its error, :class:`~imgscraper.exceptions.BlockedAddressError`
(reason ``blocked-address``), so that it is neither retried nor counted as a
dead host's failure.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import CannotResolveHostError, NotConfigured
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import DeferredList
from twisted.internet.error import DNSLookupError

from imgscraper.exceptions import BlockedAddressError
from imgscraper.resolver import CATEGORIES, AddressGuard, AddressPolicy, is_ip_address
from imgscraper.utils import host_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request

__all__ = ["PrivateNetworkMiddleware"]

logger = logging.getLogger(__name__)


class PrivateNetworkMiddleware:
    """Downloader middleware that refuses requests to private networks (see :mod:`imgscraper.resolver`).

    It sits after ``HttpProxyMiddleware`` (750), to see the proxy a request
    goes through, and after ``UnreachableHostMiddleware`` (950), so its
    ``process_exception`` runs before theirs and the retry middleware's: a
    refused request is neither retried nor counted as a dead host's failure.
    """

    def __init__(self, crawler: Crawler):
        if crawler.settings.getbool("IMGSCRAPER_ALLOW_PRIVATE_NETWORKS"):
            raise NotConfigured
        self.crawler = crawler
        self.policy = AddressPolicy()
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateNetworkMiddleware:
        return cls(crawler)

    async def spider_opened(self, spider: Any) -> None:
        """Learn the start URLs' networks (pages and sitemaps the user gave): each start host is resolved once, now, so that
        its category is allowed before any image or link is fetched."""
        typed = [*getattr(spider, "start_urls", ()), *getattr(spider, "sitemap_urls", ())]  # what the user gave
        hosts = {host_of(url) for url in typed} - {""}
        self.policy.add_start_hosts(hosts)
        resolver = AddressGuard.installed
        if resolver is None:
            # CrawlerRunner does not install TWISTED_DNS_RESOLVER: the process's owner does.
            logger.warning("No guarded resolver is installed on the reactor: host names are not checked, "
                           "only IP-literal URLs (see imgscraper.resolver)")
            return
        resolver.policy = self.policy
        # All at once; a failure is the start page's own request's to report.
        lookups = [deferred_from_coro(resolver.allowed_addresses(host)) for host in hosts if not is_ip_address(host)]
        await maybe_deferred_to_future(DeferredList(lookups, consumeErrors=True))

    def process_request(self, request: Request) -> None:
        if proxy := request.meta.get("proxy"):
            self.policy.exempt_hosts.add(host_of(proxy))
        host = urlparse_cached(request).hostname or ""
        if is_ip_address(host) and (category := self.policy.refusal(host, host)):
            raise self._blocked(host, host, category)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if not isinstance(exception, (CannotResolveHostError, DNSLookupError)):
            return
        host = (urlparse_cached(request).hostname or "").lower()
        if refused := self.policy.refused.get(host):
            raise self._blocked(host, *refused) from None

    def _blocked(self, host: str, address: str, category: str) -> BlockedAddressError:
        if not self.crawler.stats.get_value("imgscraper/blocked_addresses"):
            logger.info("Refusing connections to %s addresses: only the start URLs' networks (%s) are allowed; "
                        "-s IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True allows every network",
                        ", ".join(CATEGORIES), ", ".join(sorted(self.policy.allowed)) or "none")
        self.crawler.stats.inc_value("imgscraper/blocked_addresses")
        self.crawler.stats.inc_value(f"imgscraper/blocked_addresses/{category}")
        return BlockedAddressError(host, address, category)

