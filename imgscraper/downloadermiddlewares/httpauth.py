"""HTTP basic authentication for the start sites, and for them only.

:class:`StartSitesHttpAuthMiddleware` takes the place of Scrapy's ``HttpAuthMiddleware`` and is that
middleware (``HTTPAUTH_USER``, ``HTTPAUTH_PASS``, ``HTTPAUTH_DOMAIN`` and the ``http_user`` meta
keys work as documented by Scrapy), plus: with ``IMGSCRAPER_HTTP_USER`` and
``IMGSCRAPER_HTTP_PASSWORD`` (each also read from the environment variable of that name when the
setting is empty: a password there stays out of ``ps`` and of Scrapyd's job list), the
``Authorization`` header goes to the hosts of the start URLs and of ``-a sitemap=URL``: the same
host name and port, or the same host name on 443 for one on http's 80 (a site moving to https). Scrapy's
``HTTPAUTH_DOMAIN`` names one domain, and matches its subdomains too; a crawl may have several
start sites.

A rendered page (``render=yes``) does not carry the header: scrapy-playwright would send it with
every navigation of the page, frames on other hosts included. Its browser context gets the
credentials for the page's origin instead, which the browser answers a ``401`` challenge with.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING

from scrapy import Request, signals
from scrapy.downloadermiddlewares.httpauth import HttpAuthMiddleware
from scrapy.settings import BaseSettings
from scrapy.utils.httpobj import urlparse_cached
from w3lib.http import basic_auth_header

from imgscraper.rendering.browsercontext import give_browser_context, is_rendered, take_back_browser_context
from imgscraper.utils import host_port_of

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = ["StartSitesHttpAuthMiddleware", "credentials_of", "start_hosts"]


def credentials_of(settings: BaseSettings, environ: dict[str, str] | None = None) -> tuple[str, str]:
    """The user name and password of ``IMGSCRAPER_HTTP_USER`` and ``IMGSCRAPER_HTTP_PASSWORD``,
    each taken from the environment variable of that name when the setting is empty."""
    environ = os.environ if environ is None else environ
    names = ("IMGSCRAPER_HTTP_USER", "IMGSCRAPER_HTTP_PASSWORD")
    user, password = (str(settings.get(name) or environ.get(name, "")) for name in names)
    return user, password


def start_hosts(urls: list[str]) -> set[tuple[str, int]]:
    """The (host, port) pairs credentials go to for start URLs ``urls``: theirs, and for one on
    http's port 80 the same host on https's 443."""
    hosts = set()
    for url in urls:
        try:
            host = host_port_of(Request(url))
        except ValueError:
            continue
        if host is None:
            continue
        hosts.add(host)
        if host[1] == 80:
            hosts.add((host[0], 443))
    return hosts


def _basic_credentials(header: bytes) -> tuple[str, str] | None:
    """The user name and password of a basic ``Authorization`` header; None for another scheme."""
    scheme, _, token = header.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


class StartSitesHttpAuthMiddleware(HttpAuthMiddleware):
    """Scrapy's ``HttpAuthMiddleware`` that also sends credentials to the start sites (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.start_auth: bytes | None = None
        self.start_hosts: set[tuple[str, int]] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StartSitesHttpAuthMiddleware:
        middleware = super().from_crawler(crawler)
        user, password = credentials_of(crawler.settings)
        if user or password:
            middleware.start_auth = basic_auth_header(user, password)
            crawler.signals.connect(middleware.find_start_hosts, signal=signals.spider_opened)
        return middleware

    def find_start_hosts(self, spider: Spider) -> None:
        """The start sites: those of the start URLs, and of the sitemaps given as arguments."""
        self.start_hosts = start_hosts([*getattr(spider, "start_urls", ()), *getattr(spider, "sitemap_urls", ())])

    def process_request(self, request: Request) -> None:  # type: ignore[override]
        super().process_request(request)
        if self.start_auth and b"Authorization" not in request.headers and host_port_of(request) in self.start_hosts:
            request.headers[b"Authorization"] = self.start_auth
        if is_rendered(request) and (header := request.headers.get(b"Authorization")):
            del request.headers[b"Authorization"]
            if credentials := _basic_credentials(header):
                parts = urlparse_cached(request)
                origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
                give_browser_context(
                    request, http_credentials={"username": credentials[0], "password": credentials[1], "origin": origin}
                )

    def process_response(self, request: Request, response: Response) -> Response:
        if is_rendered(request):
            take_back_browser_context(request, "http_credentials")
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if is_rendered(request):
            take_back_browser_context(request, "http_credentials")
