"""A start page behind a login is named, instead of a crawl that quietly stores the login page's logo.

:class:`LoginWallMiddleware` looks at the final answer for each start URL (after redirects):
a ``401`` or ``403``, or an HTML page with a password field, or a redirect to a page whose path
says sign-in (``/login``, ``/signin``, ``/auth``...). One ``WARNING`` per host then says what was
seen and what to do: pass the browser's cookies (``-a cookies=FILE``, ``docs/cookies.md``), or
for an HTTP ``Basic`` challenge ``IMGSCRAPER_HTTP_USER`` and ``IMGSCRAPER_HTTP_PASSWORD``.
Such start pages count in ``imgscraper/login_wall``. The crawl goes on: what a visitor who is
not signed in sees may still be wanted.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from scrapy import Request, signals
from scrapy.http import HtmlResponse
from scrapy.selector import Selector
from scrapy.utils.httpobj import urlparse_cached

from imgscraper.downloadermiddlewares.cookiesfile import cookies_file_of
from imgscraper.downloadermiddlewares.httpauth import credentials_of

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

__all__ = ["LoginWallMiddleware", "login_wall"]

logger = logging.getLogger(__name__)

#: A path segment that names a sign-in page.
_SIGN_IN_PATH = re.compile(r"/(?:log[-_]?in|sign[-_]?in|sign[-_]?on|auth|authenticate|sso|session/new)(?:[/.?;_-]|$)",
                           re.IGNORECASE)
_PASSWORD_FIELD = "//input[translate(@type, 'PASSWORD', 'password') = 'password']"
_PASSWORD = re.compile("password", re.IGNORECASE)


def _has_password_field(response: HtmlResponse) -> bool:
    """Whether the page has a password field. It is parsed only when its text names one, and not
    through ``response.xpath()``: the selector cached on the response and the response would
    reference each other, and wait for a full pass of the garbage collector to be freed."""
    return bool(_PASSWORD.search(response.text)) and bool(Selector(response).xpath(_PASSWORD_FIELD))


def login_wall(request: Request, response: Response) -> str:
    """What makes ``response`` (the final answer to ``request`` for a start URL) a login wall, e.g.
    ``HTTP 403`` or ``a sign-in page with a password field``; '' when it is none."""
    if response.status in (401, 403):
        challenge = response.headers.get("WWW-Authenticate", b"").decode("latin-1").strip()
        return f"HTTP {response.status}, {challenge}" if challenge else f"HTTP {response.status}"
    redirected = bool(request.meta.get("redirect_urls")) or response.url != request.url
    if isinstance(response, HtmlResponse) and _has_password_field(response):
        return f"{'redirected to ' if redirected else ''}a sign-in page with a password field ({response.url})"
    if redirected and _SIGN_IN_PATH.search(urlparse_cached(response).path):
        return f"redirected to a sign-in page ({response.url})"
    return ""


class LoginWallMiddleware:
    """Downloader middleware that names a login wall in front of a start page (see the module docstring)."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.start_urls: set[str] = set()
        self.hosts_warned: set[str] = set()
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LoginWallMiddleware:
        return cls(crawler)

    def spider_opened(self, spider: Spider) -> None:
        self.start_urls = {Request(url).url for url in getattr(spider, "start_urls", ())}

    def process_response(self, request: Request, response: Response) -> Response:
        first_url = (request.meta.get("redirect_urls") or [request.url])[0]
        if first_url not in self.start_urls:
            return response
        seen = login_wall(request, response)
        if not seen:
            return response
        self.crawler.stats.inc_value("imgscraper/login_wall")
        host = urlparse_cached(request).netloc
        if host not in self.hosts_warned:
            self.hosts_warned.add(host)
            logger.warning("Start page %s is behind a login (%s): %s", first_url, seen, self.advice(response))
        return response

    def advice(self, response: Response) -> str:
        """What to do about a login wall."""
        challenge = response.headers.get("WWW-Authenticate", b"").lower()
        if response.status == 401 and challenge.startswith(b"basic"):
            if any(credentials_of(self.crawler.settings)):
                return "the user name and password of IMGSCRAPER_HTTP_USER and IMGSCRAPER_HTTP_PASSWORD were refused"
            return "set IMGSCRAPER_HTTP_USER, and IMGSCRAPER_HTTP_PASSWORD in the environment"
        if cookies := cookies_file_of(self.crawler):
            return f"the cookies of {cookies} did not sign the crawl in: export them again after signing in (docs/cookies.md)"
        return ("the crawl sees what a visitor who is not signed in sees. To crawl as a member, export your browser's"
                " cookies for the site and pass -a cookies=FILE (docs/cookies.md)")
