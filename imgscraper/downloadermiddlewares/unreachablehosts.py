"""Hosts that stop answering: their requests fail at once instead of each waiting its timeout.

:class:`UnreachableHostMiddleware` is a downloader middleware. After
``IMGSCRAPER_HOST_FAILURES`` connection failures or timeouts in a row on one
host (name and port), the host is *down*: the requests for it waiting in the
downloader, and every new one (images, pages, retries, redirects to it), fail
at once with :class:`HostUnreachable`, which the pipeline and the spider
report as ``host-unreachable`` (a retry: as its earlier try failed, ``timeout``,
``connection-refused``...). :data:`imgscraper.signals.host_down` says a host went down. After ``IMGSCRAPER_HOST_COOLDOWN`` seconds the
next request for the host goes out as a *probe*; the requests that come
meanwhile wait for its outcome: any answer (whatever its status) puts the host
back up and they are sent, a failure keeps it down for another cool-down and
they fail. A host that answers never waits: only a failure has a cost.

Requests the downloader started before the host went down (it starts the
next ones as the first fail) run to their timeout: a dead host costs at most
two ``DOWNLOAD_TIMEOUT`` s, plus the retries of its first requests (robots.txt's).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
    NotConfigured,
)
from scrapy.utils.asyncio import CallLaterResult, call_later
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError

from imgscraper.exceptions import HostUnreachable, failure_reason
from imgscraper.signals import host_down
from imgscraper.utils import host_label, host_port_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

__all__ = ["UnreachableHostMiddleware"]

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class HostState:
    """What the middleware knows of a host that failed lately."""

    #: Connection failures and timeouts in a row.
    failures: int = 0
    #: While the host is down, when (``time.monotonic()``) the next probe may go; None while up.
    down_until: float | None = None
    #: The probe in flight, and the requests waiting for its outcome.
    probe: Request | None = None
    waiters: list[Deferred[None]] = field(default_factory=list)
    probe_expiry: CallLaterResult | None = None


class UnreachableHostMiddleware:
    """Fail the requests of a host that stopped answering, then probe it (see the module doc).

    Enabled while ``IMGSCRAPER_HOST_FAILURES`` > 0. It sits closest to the
    download handler, so that it counts every attempt before
    ``RetryMiddleware`` retries it (the retry then fails at once if the host
    went down) and sees every response before another middleware replaces it.
    """

    #: The exceptions that say the host could not be reached: connection refused, name not
    #: resolved, timeout, and Twisted's connection errors Scrapy does not wrap (no route, ...).
    FAILURES: tuple[type[Exception], ...] = (
        DownloadTimeoutError,
        DownloadConnectionRefusedError,
        CannotResolveHostError,
        ConnectError,
    )

    #: The ``request.meta`` key of how a request's last try failed.
    TRIED_KEY = "imgscraper_host_failure"

    def __init__(self, crawler: Crawler, max_failures: int, cooldown: float):
        self.crawler = crawler
        self.max_failures = max_failures
        self.cooldown = cooldown
        self.download_timeout = crawler.settings.getfloat("DOWNLOAD_TIMEOUT")
        self.hosts: dict[tuple[str, int], HostState] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> UnreachableHostMiddleware:
        max_failures = crawler.settings.getint("IMGSCRAPER_HOST_FAILURES")
        if max_failures <= 0:
            raise NotConfigured
        middleware = cls(crawler, max_failures, crawler.settings.getfloat("IMGSCRAPER_HOST_COOLDOWN"))
        crawler.signals.connect(middleware.spider_closed, signal=signals.spider_closed)
        return middleware

    async def process_request(self, request: Request) -> None:
        if not self.hosts:
            return
        host = host_port_of(request)
        state = self.hosts.get(host) if host else None
        if state is None or state.down_until is None:
            return
        if state.probe is None and time.monotonic() >= state.down_until:
            self._send_probe(host, state, request)
            return
        if state.probe is not None:
            waiter: Deferred[None] = Deferred()
            state.waiters.append(waiter)
            await maybe_deferred_to_future(waiter)
            if state.down_until is None:
                return
        raise HostUnreachable(host_label(host), request.meta.get(self.TRIED_KEY, ""))

    def process_response(self, request: Request, response: Response) -> Response:
        # A response from HTTPCACHE says nothing of the host now.
        if self.hosts and "cached" not in response.flags and (host := host_port_of(request)) in self.hosts:
            self._answered(host)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        host = host_port_of(request)
        if host is None or isinstance(exception, IgnoreRequest):
            return
        if isinstance(exception, self.FAILURES):
            # Before RetryMiddleware copies the request: the retry carries how its try failed.
            request.meta[self.TRIED_KEY] = failure_reason(exception)
            self._failed(host, request, exception)
        elif host in self.hosts:
            # The host answered, if badly (a connection reset, a body cut short): it is reachable.
            self._answered(host)

    def _failed(self, host: tuple[str, int], request: Request, exception: Exception) -> None:
        state = self.hosts.setdefault(host, HostState())
        state.failures += 1
        now = time.monotonic()
        if state.down_until is not None:
            state.down_until = now + self.cooldown
            if request is state.probe:
                logger.debug("Host %s is still unreachable: next probe in %g s", host_label(host), self.cooldown)
                self._end_probe(state)
            return
        if state.failures < self.max_failures:
            return
        state.down_until = now + self.cooldown
        self.crawler.stats.inc_value("imgscraper/hosts/down")
        logger.warning(
            "Host %(host)s is unreachable (%(failures)d connection failures or timeouts in a row, the last: "
            "%(reason)s): its requests fail as host-unreachable until it answers a probe, in %(cooldown)g s",
            {"host": host_label(host), "failures": state.failures, "reason": failure_reason(exception),
             "cooldown": self.cooldown},
        )
        self.crawler.signals.send_catch_log(host_down, host=host_label(host), reason=failure_reason(exception))
        self._fail_queued(host)

    def _answered(self, host: tuple[str, int]) -> None:
        state = self.hosts.pop(host)
        if state.down_until is not None:
            state.down_until = None
            self.crawler.stats.inc_value("imgscraper/hosts/back")
            logger.info("Host %s answers again: its requests are sent again", host_label(host))
            self._end_probe(state)

    def _send_probe(self, host: tuple[str, int], state: HostState, request: Request) -> None:
        state.probe = request
        self.crawler.stats.inc_value("imgscraper/hosts/probes")
        logger.debug("Probing host %s with %s", host_label(host), request.url)
        # A probe that ends without an outcome this middleware sees (a crawl cancelled) must not
        # hold its waiters: after its timeout and a cool-down, the host counts as down again.
        timeout = request.meta.get("download_timeout", self.download_timeout)
        state.probe_expiry = call_later(timeout + self.cooldown, self._probe_expired, state)

    def _probe_expired(self, state: HostState) -> None:
        if state.probe is not None:
            state.down_until = time.monotonic() + self.cooldown
            self._end_probe(state)

    @staticmethod
    def _end_probe(state: HostState) -> None:
        """Let the requests waiting for the probe go on: sent if the host is up, failed if not."""
        state.probe = None
        if state.probe_expiry is not None:
            state.probe_expiry.cancel()
            state.probe_expiry = None
        waiters, state.waiters = state.waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def _fail_queued(self, host: tuple[str, int]) -> None:
        """Fail at once the requests for ``host`` that wait in the downloader for a free slot."""
        for slot in self.crawler.engine.downloader.slots.values():
            failing = [entry for entry in slot.queue if host_port_of(entry[0]) == host]
            if failing:
                kept = [entry for entry in slot.queue if host_port_of(entry[0]) != host]
                slot.queue.clear()
                slot.queue.extend(kept)
            for request, queued in failing:
                queued.errback(HostUnreachable(host_label(host), request.meta.get(self.TRIED_KEY, "")))

    def spider_closed(self) -> None:
        for state in self.hosts.values():
            self._end_probe(state)
