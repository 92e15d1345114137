"""The downloader middlewares (imgscraper/downloadermiddlewares/), in process.

Each middleware is built as Scrapy builds it (``build_from_crawler``) from a
crawler with the project's settings (``get_crawler``), and given real
``Request`` and ``Response`` objects: no network, no engine. Coroutine methods
run in an asyncio loop of their own (``asyncio.run``), as in a reactorless crawl.
The crawls that exercise them end to end are in test_faults.py (Retry-After),
test_hosts.py and test_private_networks.py.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from scrapy import Spider
from scrapy.core.downloader import Slot
from scrapy.exceptions import DownloadTimeoutError, NotConfigured
from scrapy.http import Request, Response
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler, get_reactor_settings
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost, DNSLookupError

from imgscraper import settings as project_settings
from imgscraper.downloadermiddlewares.privatenetworks import PrivateNetworkMiddleware
from imgscraper.downloadermiddlewares.retryafter import (
    RetryAfterMiddleware,
    parse_retry_after,
)
from imgscraper.downloadermiddlewares.unreachablehosts import UnreachableHostMiddleware
from imgscraper.exceptions import (
    BlockedAddressError,
    CrawlStopped,
    HostUnreachable,
    failure_reason,
)
from imgscraper.resolver import AddressGuard


def crawler_with(**settings):
    """A crawler with the project's settings and ``settings``, and its spider."""
    project = {name: getattr(project_settings, name) for name in dir(project_settings) if name.isupper()}
    crawler = get_crawler(Spider, {**project, **get_reactor_settings(), **settings})
    crawler.spider = Spider.from_crawler(crawler, name="test")
    return crawler


def stats(crawler, prefix: str) -> dict[str, int]:
    return {name: value for name, value in crawler.stats.get_stats().items() if name.startswith(prefix)}


# -- RetryAfterMiddleware -------------------------------------------------------------------------


def retry_after_middleware(**settings):
    crawler = crawler_with(**settings)
    return build_from_crawler(RetryAfterMiddleware, crawler), crawler


def answer(request: Request, status: int, retry_after: str | None = None) -> Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Response(request.url, status=status, headers=headers, request=request)


def timed(coroutine):
    """What ``coroutine`` returned, and the seconds it took."""
    start = time.monotonic()
    result = asyncio.run(coroutine)
    return result, time.monotonic() - start


def test_parse_retry_after():
    assert parse_retry_after(b"120") == 120.0
    assert parse_retry_after("Wed, 25 Nov 2026 03:00:10 GMT", now=1795575600.0) == 10.0
    assert parse_retry_after("Wed, 25 Nov 2026 02:00:00 GMT", now=1795575600.0) == 0.0
    assert parse_retry_after(b"soon") is None
    assert parse_retry_after(None) is None


def test_retry_waits_as_retry_after_asks():
    mw, crawler = retry_after_middleware()
    request = Request("http://img.example/a.png")
    retry, waited = timed(mw.process_response(request, answer(request, 503, "1")))
    assert isinstance(retry, Request) and retry.url == request.url
    assert retry.meta["retry_times"] == 1 and retry.dont_filter
    assert waited >= 1.0
    assert crawler.stats.get_value("imgscraper/retry_after/waited") == 1
    assert crawler.stats.get_value("retry/count") == 1


def test_retry_after_over_the_maximum_is_not_retried():
    """IMGSCRAPER_RETRY_AFTER_MAX caps the wait: a longer one leaves the response standing, at once."""
    mw, crawler = retry_after_middleware(IMGSCRAPER_RETRY_AFTER_MAX=60)
    request = Request("http://img.example/a.png")
    response = answer(request, 429, "61")
    result, waited = timed(mw.process_response(request, response))
    assert result is response and waited < 0.5
    assert crawler.stats.get_value("imgscraper/retry_after/too_long") == 1
    assert stats(crawler, "retry/") == {}
    # An HTTP-date counts the same way.
    tomorrow = "Thu, 01 Jan 2099 00:00:00 GMT"
    assert asyncio.run(mw.process_response(request, answer(request, 503, tomorrow))).status == 503
    assert crawler.stats.get_value("imgscraper/retry_after/too_long") == 2


def test_without_retry_after_the_retry_is_immediate():
    mw, crawler = retry_after_middleware()
    request = Request("http://img.example/a.png")
    for header in (None, "soon"):  # absent, or unreadable: stock RetryMiddleware
        retry, waited = timed(mw.process_response(request, answer(request, 503, header)))
        assert isinstance(retry, Request) and waited < 0.5
    assert crawler.stats.get_value("retry/count") == 2
    assert crawler.stats.get_value("imgscraper/retry_after/waited") is None


def test_responses_not_to_retry_pass_at_once():
    mw, crawler = retry_after_middleware(RETRY_TIMES=2)
    request = Request("http://img.example/a.png")
    not_found = answer(request, 404, "1")
    assert asyncio.run(mw.process_response(request, not_found)) is not_found
    dont_retry = Request("http://img.example/b.png", meta={"dont_retry": True})
    unavailable = answer(dont_retry, 503, "1")
    assert asyncio.run(mw.process_response(dont_retry, unavailable)) is unavailable
    # Out of retries: the response stands, without waiting.
    last = Request("http://img.example/c.png", meta={"retry_times": 2})
    final = answer(last, 503, "1")
    result, waited = timed(mw.process_response(last, final))
    assert result is final and waited < 0.5
    assert crawler.stats.get_value("retry/max_reached") == 1
    assert crawler.stats.get_value("imgscraper/retry_after/waited") is None


def test_a_wait_ends_when_the_crawl_stops():
    """A stopping crawl fails the waiting request with CrawlStopped (a resumed crawl sends it)."""
    mw, crawler = retry_after_middleware()
    # The engine of a crawl that was asked to stop: it is not the piece under test.
    crawler.engine = SimpleNamespace(spider=crawler.spider, running=False)
    request = Request("http://img.example/a.png")
    start = time.monotonic()
    with pytest.raises(CrawlStopped) as stopped:
        asyncio.run(mw.process_response(request, answer(request, 503, "30")))
    assert time.monotonic() - start < 1
    assert failure_reason(stopped.value) == "shutdown"


# -- UnreachableHostMiddleware --------------------------------------------------------------------


def host_middleware(**settings):
    crawler = crawler_with(**{"IMGSCRAPER_HOST_FAILURES": 3, **settings})
    # The downloader's slots are all the middleware reads of the engine: a queue of
    # (request, deferred) waiting for a transfer slot, as Scrapy's Downloader keeps it.
    slot = Slot(concurrency=8, delay=0)
    crawler.engine = SimpleNamespace(spider=crawler.spider, running=True, downloader=SimpleNamespace(slots={"s": slot}))
    return build_from_crawler(UnreachableHostMiddleware, crawler), crawler, slot


def fail(mw, request: Request, times: int, exception=DownloadTimeoutError) -> None:
    """``request`` fails ``times`` times with a new ``exception()``."""
    for _ in range(times):
        mw.process_exception(request, exception())


def refused(mw, request: Request) -> Exception | None:
    """The exception ``process_request`` raises for ``request``; None when it lets it through."""
    try:
        asyncio.run(mw.process_request(request))
    except Exception as exc:  # noqa: BLE001 - the exception is the result
        return exc
    return None


def test_host_failing_in_a_row_is_down():
    mw, crawler, slot = host_middleware()
    dead, other = Request("http://dead.example/1.png"), Request("http://alive.example/1.png")
    outcomes: dict[str, object] = {}
    for request in (Request("http://dead.example/queued.png"), Request("http://alive.example/queued.png")):
        queued: Deferred = Deferred()
        queued.addBoth(lambda result, url=request.url: outcomes.__setitem__(url, result))
        slot.queue.append((request, queued))
    fail(mw, dead, 2)
    assert refused(mw, dead) is None  # two in a row: still up
    fail(mw, dead, 1)
    down = refused(mw, Request("http://dead.example/2.png"))
    assert isinstance(down, HostUnreachable) and failure_reason(down) == "host-unreachable"
    assert crawler.stats.get_value("imgscraper/hosts/down") == 1
    # The dead host's request waiting in the downloader fails at once; the other host's waits on.
    assert outcomes.pop("http://dead.example/queued.png").check(HostUnreachable)
    assert outcomes == {} and [entry[0].url for entry in slot.queue] == ["http://alive.example/queued.png"]
    assert refused(mw, other) is None
    # Another port is another host.
    assert refused(mw, Request("http://dead.example:8080/1.png")) is None


def test_an_answer_resets_the_count():
    mw, crawler, _ = host_middleware()
    request = Request("http://flaky.example/1.png")
    fail(mw, request, 2)
    mw.process_response(request, Response(request.url, status=500))  # any status: the host answered
    fail(mw, request, 2)
    fail(mw, request, 1, ConnectionLost)  # answered, then dropped the connection: reachable
    fail(mw, request, 2)
    assert refused(mw, request) is None
    # A response from the HTTP cache says nothing of the host now.
    mw.process_response(request, Response(request.url, flags=["cached"]))
    fail(mw, request, 1)
    assert isinstance(refused(mw, request), HostUnreachable)


def test_refused_requests_do_not_count_as_failures():
    """A request another middleware refused (an IgnoreRequest) never reached the host."""
    mw, crawler, _ = host_middleware()
    request = Request("http://10.0.0.1/1.png")
    fail(mw, request, 5, lambda: BlockedAddressError("10.0.0.1", "10.0.0.1", "private"))
    assert refused(mw, request) is None
    assert crawler.stats.get_value("imgscraper/hosts/down") is None


def test_off_without_a_failure_limit():
    with pytest.raises(NotConfigured):
        host_middleware(IMGSCRAPER_HOST_FAILURES=0)


def test_after_the_cool_down_one_probe_goes_and_the_others_wait():
    cooldown = 0.1
    mw, crawler, _ = host_middleware(IMGSCRAPER_HOST_COOLDOWN=cooldown)
    host = "http://dead.example"

    async def probe_round(answered: bool) -> list[Exception | None]:
        """After the cool-down: a probe, two requests waiting for its outcome; what the two get."""
        await asyncio.sleep(cooldown * 1.5)
        probe = Request(f"{host}/probe.png")
        await mw.process_request(probe)  # goes out
        waiting = [asyncio.ensure_future(mw.process_request(Request(f"{host}/{n}.png"))) for n in range(2)]
        await asyncio.sleep(0.01)
        assert not any(w.done() for w in waiting)
        if answered:
            mw.process_response(probe, Response(probe.url, status=404))
        else:
            mw.process_exception(probe, DownloadTimeoutError())
        return [exc for exc in await asyncio.gather(*waiting, return_exceptions=True)]

    async def main() -> tuple[list, list]:
        fail(mw, Request(f"{host}/0.png"), 3)
        still_down = await probe_round(answered=False)
        # Down for another cool-down: no probe yet.
        with pytest.raises(HostUnreachable):
            await mw.process_request(Request(f"{host}/3.png"))
        back = await probe_round(answered=True)
        mw.spider_closed()
        return still_down, back

    still_down, back = asyncio.run(main())
    assert [type(exc) for exc in still_down] == [HostUnreachable, HostUnreachable]
    assert back == [None, None]
    assert crawler.stats.get_value("imgscraper/hosts/probes") == 2
    assert crawler.stats.get_value("imgscraper/hosts/back") == 1


# -- PrivateNetworkMiddleware ---------------------------------------------------------------------


def private_network_middleware(**settings):
    crawler = crawler_with(**settings)
    return build_from_crawler(PrivateNetworkMiddleware, crawler), crawler


def test_ip_literal_in_a_private_network_is_refused():
    mw, crawler = private_network_middleware()
    with pytest.raises(BlockedAddressError) as blocked:
        mw.process_request(Request("http://169.254.169.254/latest/meta-data/"))
    assert failure_reason(blocked.value) == "blocked-address"
    assert (blocked.value.address, blocked.value.category) == ("169.254.169.254", "link-local")
    with pytest.raises(BlockedAddressError):
        mw.process_request(Request("http://[fd00:ec2::254]/a.png"))
    assert mw.process_request(Request("http://93.184.216.34/a.png")) is None
    assert stats(crawler, "imgscraper/blocked_addresses") == {
        "imgscraper/blocked_addresses": 2,
        "imgscraper/blocked_addresses/link-local": 1,
        "imgscraper/blocked_addresses/private": 1,
    }


def test_the_start_urls_networks_are_allowed(monkeypatch):
    """A crawl of an intranet host may fetch from private networks; other categories stay refused."""
    monkeypatch.setattr(AddressGuard, "installed", None)  # no resolver on the reactor: IP literals only
    mw, crawler = private_network_middleware()
    spider = Spider.from_crawler(crawler, name="test", start_urls=["http://10.0.0.5/"])
    asyncio.run(mw.spider_opened(spider))
    assert mw.process_request(Request("http://192.168.1.9/a.png")) is None
    with pytest.raises(BlockedAddressError):
        mw.process_request(Request("http://127.0.0.1/a.png"))
    assert crawler.stats.get_value("imgscraper/blocked_addresses/loopback") == 1


def test_a_name_the_resolver_refused_fails_as_blocked_address():
    """The guarded resolver refused ``intranet.test`` (its lookup failed): the request fails as
    blocked-address, not as an ordinary DNS failure, so it is neither retried nor a dead host's."""
    mw, crawler = private_network_middleware()
    assert mw.policy.refusal("intranet.test", "10.1.2.3") == "private"  # what the resolver asked
    with pytest.raises(BlockedAddressError) as blocked:
        mw.process_exception(Request("http://intranet.test/a.png"), DNSLookupError("intranet.test"))
    assert (blocked.value.host, blocked.value.address) == ("intranet.test", "10.1.2.3")
    assert crawler.stats.get_value("imgscraper/blocked_addresses/private") == 1
    # A name that does not resolve at all is an ordinary failure.
    assert mw.process_exception(Request("http://nowhere.test/a.png"), DNSLookupError("nowhere.test")) is None


def test_a_proxys_host_is_exempt_and_a_literal_target_still_checked():
    mw, crawler = private_network_middleware()
    mw.policy.add_start_hosts(["93.184.216.34"])
    # Through a proxy on this host: the proxy is the operator's choice, a literal target is still checked.
    proxied = Request("http://img.example/a.png", meta={"proxy": "http://127.0.0.1:3128"})
    assert mw.process_request(proxied) is None
    assert mw.policy.refusal("127.0.0.1", "127.0.0.1") is None
    with pytest.raises(BlockedAddressError):
        mw.process_request(Request("http://10.0.0.1/a.png", meta={"proxy": "http://127.0.0.1:3128"}))
    assert crawler.stats.get_value("imgscraper/blocked_addresses/private") == 1


def test_off_when_private_networks_are_allowed():
    with pytest.raises(NotConfigured):
        private_network_middleware(IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True)
