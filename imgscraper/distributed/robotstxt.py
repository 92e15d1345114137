"""robots.txt fetched once for a whole shared crawl (see :mod:`imgscraper.distributed`).

Scrapy's ``RobotsTxtMiddleware`` fetches a host's robots.txt once per process, before
the first request to the host: N workers fetch it N times, and each worker's first
page of a host waits one more round trip. :class:`SharedRobotsTxtMiddleware` keeps the
answers in Redis (``robots``: robots.txt URL -> status, headers and body), so a worker
reads the answer another worker got (stat ``imgscraper/shared/robotstxt_reused``).
Answers to retry (``RETRY_HTTP_CODES``, 500 and up) and bodies over :data:`MAX_BODY` bytes
are not kept: the next worker asks the site itself. Redis failing costs only that.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from scrapy.http import Headers, Response
from scrapy.responsetypes import responsetypes
from scrapy.utils.httpobj import urlparse_cached

from imgscraper.distributed.crawl import SharedCrawl

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from typing_extensions import Self

__all__ = ["SharedRobotsTxtMiddleware"]

#: Larger robots.txt bodies are not kept (Google reads the first 500 KiB).
MAX_BODY = 512 * 1024
#: The flag of a response read from Redis.
FLAG = "shared-robots.txt"


def is_robots_txt(request: Request) -> bool:
    """Whether ``request`` is a robots.txt fetch of the crawl's own (``RobotsTxtMiddleware``'s or
    the sitemaps'), not a page or an image that happens to be named so."""
    return bool(request.meta.get("dont_obey_robotstxt")) and urlparse_cached(request).path == "/robots.txt"


class SharedRobotsTxtMiddleware:
    """Downloader middleware: answer a robots.txt request from the shared crawl's answers when another
    worker fetched it, and keep the answers this worker gets (see the module docstring)."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.shared = SharedCrawl.of(crawler)
        self.retry_codes = {int(code) for code in crawler.settings.getlist("RETRY_HTTP_CODES")}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def process_request(self, request: Request) -> Response | None:
        if not is_robots_txt(request) or not self.shared.joined:
            return None
        try:
            kept = await self.shared.server.hget(self.shared.key("robots"), request.url)
        except (RedisError, OSError):
            return None
        if kept is None:
            return None
        status, raw_headers, body = pickle.loads(kept)
        headers = Headers(raw_headers)
        self.crawler.stats.inc_value("imgscraper/shared/robotstxt_reused")
        cls = responsetypes.from_args(headers=headers, url=request.url, body=body)
        return cls(url=request.url, status=status, headers=headers, body=body, flags=[FLAG], request=request)

    def process_response(self, request: Request, response: Response) -> Response:
        if (is_robots_txt(request) and FLAG not in response.flags and self.shared.joined
                and response.status < 500 and response.status not in self.retry_codes
                and len(response.body) <= MAX_BODY):
            kept = pickle.dumps((response.status, dict(response.headers), response.body))
            self.shared.spawn(self.shared.server.hset(self.shared.key("robots"), request.url, kept))
        return response
