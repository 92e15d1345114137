"""Rendered pages connect through the crawl: the downloader middleware of :mod:`imgscraper.rendering.gateway`.

:class:`BrowserGatewayMiddleware` gives the browser context of every rendered page the
crawl's :class:`~imgscraper.rendering.gateway.BrowserGateway` as its proxy (the gateway
starts with the first rendered page), and takes it back once the page is downloaded: a
request kept in a ``JOBDIR`` or Redis queue, or downloaded by another worker, does not
carry this process's port. When the browser could not load a page because the gateway
could not connect it, the page fails for the gateway's reason, as the crawler's own
request would: ``blocked-address``, ``dns-error``, ``connection-refused`` or ``timeout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.error import DNSLookupError

from imgscraper.exceptions import BlockedAddressError
from imgscraper.rendering.browsercontext import give_browser_context, is_rendered, take_back_browser_context
from imgscraper.rendering.gateway import BrowserGateway

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

__all__ = ["BrowserGatewayMiddleware"]

#: What Chromium reports for a connection its SOCKS proxy, the gateway, did not make.
_GATEWAY_FAILURE = "net::ERR_SOCKS_CONNECTION_FAILED"
#: The gateway's failures that name their reason as the crawler's own requests do.
_CRAWLER_FAILURES = (BlockedAddressError, DNSLookupError, ConnectionRefusedError, TimeoutError)


class BrowserGatewayMiddleware:
    """Downloader middleware that sends rendered pages through the crawl's browser gateway
    (see the module docstring). Closest to the download handler, so that a page's failure
    is the gateway's reason for every other middleware."""

    def __init__(self, gateway: BrowserGateway):
        self.gateway = gateway

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BrowserGatewayMiddleware:
        middleware = cls(BrowserGateway.from_crawler(crawler))
        crawler.signals.connect(middleware.gateway.close, signal=signals.engine_stopped)
        return middleware

    def process_request(self, request: Request) -> None:
        if is_rendered(request):
            give_browser_context(request, proxy={"server": self.gateway.start()})

    def process_response(self, request: Request, response: Response) -> Response:
        take_back_browser_context(request, "proxy")
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        take_back_browser_context(request, "proxy")
        if not is_rendered(request) or _GATEWAY_FAILURE not in str(exception):
            return
        url = urlparse_cached(request)
        failure = self.gateway.failure(url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
        if isinstance(failure, _CRAWLER_FAILURES):
            raise failure
