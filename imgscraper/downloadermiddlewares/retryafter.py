"""Retries that wait as ``Retry-After`` asks, up to ``IMGSCRAPER_RETRY_AFTER_MAX``."""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.http import Request, Response
from scrapy.settings import BaseSettings
from scrapy.utils.asyncio import sleep
from scrapy.utils.response import response_status_message

from imgscraper.downloader import crawl_stopping
from imgscraper.exceptions import CrawlStopped

__all__ = ["RetryAfterMiddleware", "parse_retry_after"]

logger = logging.getLogger(__name__)


def parse_retry_after(value: bytes | str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an
    HTTP-date), or None when absent or unreadable. Never negative."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class RetryAfterMiddleware(RetryMiddleware):
    """Scrapy's ``RetryMiddleware`` that honours ``Retry-After``.

    A retryable response (``RETRY_HTTP_CODES``, e.g. 429 or 503) with a
    ``Retry-After`` header is retried no sooner than the header asks. When it
    asks for more than ``IMGSCRAPER_RETRY_AFTER_MAX`` seconds the request is
    not retried at all (the response stands, so the image or page fails
    with its status) instead of holding the crawl. A wait cut short by the
    crawl stopping fails the request with ``CrawlStopped`` (a resumed crawl
    sends it). Everything else is stock ``RetryMiddleware`` (``RETRY_TIMES``,
    ``dont_retry``, ...).
    """

    #: Seconds between checks, while waiting, that the crawl is not stopping.
    STOP_CHECK_INTERVAL = 0.25

    def __init__(self, settings: BaseSettings):
        super().__init__(settings)
        self.retry_after_max = settings.getfloat("IMGSCRAPER_RETRY_AFTER_MAX")

    async def process_response(self, request: Request, response: Response) -> Request | Response:  # type: ignore[override]
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        delay = parse_retry_after(response.headers.get("Retry-After"))
        if delay is None:
            return self._retry(request, response_status_message(response.status)) or response
        if delay > self.retry_after_max:
            self.crawler.stats.inc_value("imgscraper/retry_after/too_long")
            logger.debug(
                "Not retrying %(request)s: Retry-After %(delay).0f s exceeds IMGSCRAPER_RETRY_AFTER_MAX",
                {"request": request, "delay": delay},
            )
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        self.crawler.stats.inc_value("imgscraper/retry_after/waited")
        await self._wait(delay)
        return retry

    async def _wait(self, delay: float) -> None:
        """Sleep ``delay`` seconds; raise ``CrawlStopped`` as soon as the crawl is stopping."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if crawl_stopping(self.crawler):
                raise CrawlStopped
            await sleep(min(left, self.STOP_CHECK_INTERVAL))
