"""A bandwidth limit: a crawl reads responses at most ``IMGSCRAPER_MAX_RATE`` bytes a second.

Requests are not delayed: each goes out when the downloader sends it. What is
paced is how fast responses are read. After each chunk it reads, a
connection takes that many bytes from its crawl's :class:`TokenBucket`; when
that leaves the bucket in debt, the connection stops reading
(``pauseProducing()`` on its transport) until the debt is paid off
(:class:`ReadPacer`). Meanwhile the socket's receive buffer fills up and TCP's
flow control holds the server back: bytes cross the network at the pace they
are read.

:class:`PacedHTTP11DownloadHandler` is Scrapy's HTTP/1.1 download handler
whose connections do so; the :class:`~imgscraper.addons.bandwidth.BandwidthLimit`
add-on puts it in ``DOWNLOAD_HANDLERS`` for ``http`` and ``https`` when the
setting is set. A crawl's handlers (one per scheme) share its bucket
(:func:`crawl_bucket`). Scrapy builds its response reader inside a private
agent, with no way to swap it; the hook is the connection pool's protocol
factory, which Scrapy sets the same way, and the paced protocol extends
Scrapy's (private) lenient one: ``tests/test_bandwidth.py`` says whether a
Scrapy upgrade kept them.

What counts is what the HTTP connections read: status lines, headers and
bodies (over TLS, once decrypted). The bucket saves up at most :data:`BURST`
seconds of reading, so a crawl busy elsewhere for a while does not then read
at full speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from scrapy.core.downloader.handlers.http11 import (
    HTTP11DownloadHandler,
    _LenientHTTP11ClientFactory,
    _LenientHTTP11ClientProtocol,
)

from imgscraper.filters import parse_byte_size

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer, IReactorTime
    from twisted.python.failure import Failure

__all__ = ["BURST", "PacedHTTP11DownloadHandler", "ReadPacer", "TokenBucket", "crawl_bucket", "max_rate"]

#: Seconds of reading a crawl's bucket saves up when its connections read less than the rate.
BURST = 0.1

_BUCKETS: WeakKeyDictionary[Crawler, TokenBucket] = WeakKeyDictionary()


def max_rate(settings: BaseSettings) -> int:
    """``IMGSCRAPER_MAX_RATE`` in bytes per second (``1M``, ``500k``); 0: no limit.
    ``ValueError`` for a value that is not a size."""
    return parse_byte_size(settings.get("IMGSCRAPER_MAX_RATE"))


class TokenBucket:
    """``rate`` bytes a second, at most ``burst`` of them saved up, taken on credit.

    :meth:`take` never refuses: it says how long the bucket is then in debt. A
    reader waits that long before it reads again, so over any stretch of time
    the readers take at most ``burst + rate * duration``, plus the one chunk
    each reads before it learns that it must wait. ``clock`` gives the time in
    seconds.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate <= 0:
            raise ValueError(f"a token bucket needs a positive rate, not {rate!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()

    def take(self, amount: int) -> float:
        """Take ``amount`` bytes; the seconds until the bucket is out of debt (0.0: it is not)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate) - amount
        self._updated = now
        return max(0.0, -self._tokens / self.rate)


class ReadPacer:
    """Paces the reading of one connection, ``transport``, against ``bucket``: after each chunk
    (:meth:`read`), reading stops while the bucket is in debt and ``clock`` resumes it."""

    def __init__(self, transport: IPushProducer, bucket: TokenBucket, clock: IReactorTime):
        self._transport = transport
        self._bucket = bucket
        self._clock = clock
        self._resume: IDelayedCall | None = None

    @property
    def paused(self) -> bool:
        """Whether reading is stopped until the bucket is out of debt."""
        return self._resume is not None and self._resume.active()

    def read(self, amount: int) -> None:
        """``amount`` bytes were just read and handled."""
        wait = self._bucket.take(amount)
        if wait <= 0:
            return
        # Even when paused already: Twisted resumes the transport itself when a response ends.
        self._transport.pauseProducing()
        if self.paused:
            self._resume.reset(wait)  # type: ignore[union-attr]
        else:
            self._resume = self._clock.callLater(wait, self._transport.resumeProducing)

    def stop(self) -> None:
        """The connection is closed: nothing to resume."""
        if self.paused:
            self._resume.cancel()  # type: ignore[union-attr]
        self._resume = None


class _PacedHTTP11ClientProtocol(_LenientHTTP11ClientProtocol):
    """Scrapy's HTTP/1.1 client protocol, reading at the pace of a :class:`ReadPacer`."""

    def __init__(self, quiescentCallback: Callable[[Any], None], bucket: TokenBucket, clock: IReactorTime):
        super().__init__(quiescentCallback)
        self._bucket = bucket
        self._clock = clock
        self._pacer: ReadPacer | None = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._pacer = ReadPacer(self.transport, self._bucket, self._clock)

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        # Paced after the chunk is handled: a response it ends resumes the transport.
        if self._pacer is not None:
            self._pacer.read(len(data))

    def connectionLost(self, reason: Failure) -> None:
        if self._pacer is not None:
            self._pacer.stop()
        super().connectionLost(reason)


class _PacedHTTP11ClientFactory(_LenientHTTP11ClientFactory):
    """Builds :class:`_PacedHTTP11ClientProtocol` protocols for one connection pool."""

    def __init__(self, quiescentCallback: Callable[[Any], None], metadata: Any, *, bucket: TokenBucket,
                 clock: IReactorTime):
        super().__init__(quiescentCallback, metadata)
        self._bucket = bucket
        self._clock = clock

    def buildProtocol(self, addr: IAddress | None) -> _PacedHTTP11ClientProtocol:
        return _PacedHTTP11ClientProtocol(self._quiescentCallback, self._bucket, self._clock)


def crawl_bucket(crawler: Crawler) -> TokenBucket | None:
    """The bucket of ``crawler``'s crawl, one for all its download handlers; None without a limit."""
    rate = max_rate(crawler.settings)
    if not rate:
        return None
    if crawler not in _BUCKETS:
        _BUCKETS[crawler] = TokenBucket(rate, rate * BURST)
    return _BUCKETS[crawler]


class PacedHTTP11DownloadHandler(HTTP11DownloadHandler):
    """Scrapy's HTTP/1.1 download handler, its connections reading no faster than the crawl's
    :func:`crawl_bucket` allows (see the module docstring). Without ``IMGSCRAPER_MAX_RATE``,
    Scrapy's handler as it is."""

    def __init__(self, crawler: Crawler):
        super().__init__(crawler)
        bucket = crawl_bucket(crawler)
        if bucket is not None:
            from twisted.internet import reactor  # noqa: PLC0415

            # How HTTP11DownloadHandler sets its own factory: the pool has no public hook for it.
            self._pool._factory = partial(_PacedHTTP11ClientFactory, bucket=bucket, clock=reactor)
