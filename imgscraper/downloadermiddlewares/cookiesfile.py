"""A crawl signed in as a member: Scrapy's cookie handling, started from a cookies file.

:class:`CookiesFileMiddleware` takes the place of Scrapy's ``CookiesMiddleware`` and is that
middleware: every request, page or image, gets the cookies of its jar that match its host, path
and scheme, and ``Set-Cookie`` answers update the jar. Its default jar starts with the cookies of
the file given as ``-a cookies=FILE`` (or ``IMGSCRAPER_COOKIES``; the argument wins), in the
Netscape ``cookies.txt`` format or cookie-editor's JSON (:mod:`imgscraper.http.cookiefiles`);
with ``IMGSCRAPER_COOKIES_SAVE`` the jar is written back to the file when the crawl ends, so a
scheduled crawl keeps its session. Every jar follows
:class:`~imgscraper.http.cookiefiles.HostOnlyCookiePolicy`: a cookie goes to the hosts it was set
for and no other.

A file that cannot be read is a bad argument: one ``ERROR`` line, and the crawl closes (finish
reason ``bad_argument``) before any request.

A rendered page (``render=yes``) is loaded by the browser, which gets the jar's cookies in the
page's browser context and scopes them itself, for the page and for its scripts' requests; the
``Cookie`` header is taken off the Scrapy request, as scrapy-playwright would send it with every
navigation of the page, frames on other hosts included. The ``Set-Cookie`` answers of the page
itself update the jar; those of its scripts' requests stay in the page's browser context.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.exceptions import CloseSpider
from scrapy.http.cookies import CookieJar

from imgscraper.exceptions import CookiesFileError
from imgscraper.http.cookiefiles import (
    CookiesFile,
    HostOnlyCookiePolicy,
    browser_cookie,
    cookie_domain,
    describe_cookies,
    read_cookies_file,
    write_cookies_file,
)
from imgscraper.rendering.browsercontext import give_browser_context, is_rendered, take_back_browser_context

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response
    from scrapy.settings import BaseSettings

__all__ = ["CookiesFileMiddleware", "cookies_file_of", "cookies_file_path", "read_cookies"]

logger = logging.getLogger(__name__)


def cookies_file_of(crawler: Crawler) -> str:
    """The crawl's cookies file: the spider's ``cookies`` argument, else ``IMGSCRAPER_COOKIES``; '' for none."""
    return cookies_file_path(getattr(crawler.spider, "arguments", None) or {}, crawler.settings)


def cookies_file_path(arguments: dict[str, Any], settings: BaseSettings) -> str:
    """The cookies file named by the spider's ``arguments`` (``cookies``) or ``settings``; '' for none."""
    given = arguments.get("cookies")
    return str(given if given is not None else settings.get("IMGSCRAPER_COOKIES") or "")


def read_cookies(path: str, settings: BaseSettings) -> tuple[CookiesFile | None, str]:
    """The cookies file at ``path``, or why it cannot be used (a line for ``Bad argument: ...``)."""
    if not settings.getbool("COOKIES_ENABLED"):
        return None, f"cookies {path}: cookies are off (COOKIES_ENABLED=False): leave COOKIES_ENABLED out"
    try:
        return read_cookies_file(path), ""
    except CookiesFileError as exc:
        return None, f"cookies {exc}: pass a cookies.txt or JSON file exported from your browser (docs/cookies.md)"


class CookiesFileMiddleware(CookiesMiddleware):
    """Scrapy's ``CookiesMiddleware`` with a cookies file (see the module docstring)."""

    def __init__(self, debug: bool = False, cookies_file: CookiesFile | None = None, save: bool = False):
        super().__init__(debug)
        self.jars: defaultdict[Any, CookieJar] = defaultdict(lambda: CookieJar(HostOnlyCookiePolicy()))
        self.cookies_file = cookies_file
        self.save = save
        #: Why the cookies file cannot be used; the crawl closes as it opens.
        self.problem = ""
        for cookie in cookies_file.cookies if cookies_file else ():
            self.jars[None].set_cookie(cookie)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CookiesFileMiddleware:
        path = cookies_file_of(crawler)
        if not path:
            return super().from_crawler(crawler)
        cookies_file, problem = read_cookies(path, crawler.settings)
        try:
            save = crawler.settings.getbool("IMGSCRAPER_COOKIES_SAVE")
        except ValueError:
            save = False  # imgscraper.addons.settingscheck reports it
        middleware = cls(crawler.settings.getbool("COOKIES_DEBUG"), cookies_file, save)
        middleware.crawler = crawler
        middleware.problem = problem
        crawler.signals.connect(middleware.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    def spider_opened(self) -> None:
        if self.problem:
            logger.error("Bad argument: %s", self.problem)
            raise CloseSpider("bad_argument")
        assert self.cookies_file is not None
        stats, source = self.crawler.stats, self.cookies_file
        stats.set_value("imgscraper/cookies/loaded", len(source.cookies))
        if source.expired:
            stats.set_value("imgscraper/cookies/expired", len(source.expired))
            logger.warning("Cookies of %s that have expired, not sent: %s. Export the cookies again after signing in",
                           source.path, describe_cookies(source.expired, with_expiry=True))
        if source.cookies:
            domains = sorted({cookie_domain(c).lstrip(".") for c in source.cookies})
            logger.info("Cookies: %d from %s, for %s", len(source.cookies), source.path, ", ".join(domains))
        elif not source.expired:
            logger.warning("%s holds no cookies", source.path)

    def spider_closed(self) -> None:
        if not self.save or self.cookies_file is None:
            return
        cookies = [cookie for cookie in self.jars[None] if not cookie.is_expired()]
        try:
            write_cookies_file(self.cookies_file.path, cookies, self.cookies_file.format)
        except OSError as exc:
            logger.error("Cannot save the cookies to %s: %s", self.cookies_file.path, exc.strerror or exc)
            return
        self.crawler.stats.set_value("imgscraper/cookies/saved", len(cookies))
        logger.info("Cookies: %d saved to %s", len(cookies), self.cookies_file.path)

    def process_request(self, request: Request) -> None:  # type: ignore[override]
        super().process_request(request)
        if is_rendered(request) and not request.meta.get("dont_merge_cookies", False):
            request.headers.pop("Cookie", None)
            jar = self.jars[request.meta.get("cookiejar")]
            if cookies := [browser_cookie(cookie) for cookie in jar if not cookie.is_expired()]:
                give_browser_context(request, storage_state={"cookies": cookies, "origins": []})

    def process_response(self, request: Request, response: Response) -> Response:  # type: ignore[override]
        if is_rendered(request):
            take_back_browser_context(request, "storage_state")
            # Playwright joins a response's Set-Cookie headers with newlines.
            set_cookies = response.headers.getlist("Set-Cookie")
            if any(b"\n" in value for value in set_cookies):
                response.headers.setlist("Set-Cookie", [line for value in set_cookies for line in value.split(b"\n")])
        return super().process_response(request, response)

    def process_exception(self, request: Request, exception: Exception) -> None:
        if is_rendered(request):
            take_back_browser_context(request, "storage_state")
