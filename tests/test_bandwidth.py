"""IMGSCRAPER_MAX_RATE: responses are read at the limit, requests are not delayed.

The token bucket and the pacing of a connection run on Twisted's fake clock
(``task.Clock``) and transport (``StringTransport``), the paced protocol on a
real HTTP exchange over that transport. The crawls are measured at the
server: it writes each image in 16 KiB chunks from a small send buffer and
notes when each chunk was taken, so its bytes over time follow the crawl's
reading, give or take what the sockets' buffers hold.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from scrapy.utils.test import get_crawler
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web._newclient import Request as TxRequest
from twisted.web.http_headers import Headers as TxHeaders

from imgscraper.bandwidth import BURST, ReadPacer, TokenBucket, _PacedHTTP11ClientFactory, crawl_bucket
from tests.support.crawl import CrawlResult
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png
from tests.support.tls import server_context

KIB = 1024


# --- the token bucket and the pacing, on a fake clock ------------------------------------


def test_the_bucket_lends_what_it_saved_then_says_how_long_it_is_in_debt():
    clock = Clock()
    bucket = TokenBucket(1000, 100, clock.seconds)
    assert bucket.take(100) == 0
    assert bucket.take(500) == pytest.approx(0.5)
    clock.advance(0.2)
    assert bucket.take(0) == pytest.approx(0.3)
    assert bucket.take(100) == pytest.approx(0.4)  # a taker after the debt waits for all of it
    clock.advance(0.4)
    assert bucket.take(0) == 0
    clock.advance(60)  # an idle bucket saves up its burst, no more
    assert bucket.take(100) == 0
    assert bucket.take(1) == pytest.approx(0.001)


def test_a_bucket_needs_a_rate():
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket(0, 0)


def test_a_connection_stops_reading_while_the_bucket_is_in_debt():
    clock, transport = Clock(), StringTransport()
    pacer = ReadPacer(transport, TokenBucket(1000, 100, clock.seconds), clock)
    pacer.read(100)
    assert transport.producerState == "producing" and not pacer.paused
    pacer.read(200)
    assert transport.producerState == "paused" and pacer.paused
    clock.advance(0.1)
    pacer.read(100)  # what reaches it still (a TLS record already decrypted) lengthens the pause
    transport.resumeProducing()  # as Twisted does when a response ends
    pacer.read(0)
    assert transport.producerState == "paused"
    clock.advance(0.199)
    assert transport.producerState == "paused"
    clock.advance(0.001)
    assert transport.producerState == "producing" and not pacer.paused


def test_a_closed_connection_is_not_resumed():
    clock, transport = Clock(), StringTransport()
    pacer = ReadPacer(transport, TokenBucket(1000, 0, clock.seconds), clock)
    pacer.read(500)
    pacer.stop()
    assert not clock.getDelayedCalls()
    clock.advance(1)
    assert transport.producerState == "paused"


def test_connections_sharing_a_bucket_read_at_its_rate_together():
    """Three connections read 64 KiB whenever they may, for 10 s of the fake clock: together they
    read the rate, give or take the bucket's burst and the chunk each reads before it learns to wait."""
    rate, chunk, seconds = 500 * KIB, 64 * KIB, 10
    clock = Clock()
    bucket = TokenBucket(rate, rate * BURST, clock.seconds)
    connections = [(transport, ReadPacer(transport, bucket, clock)) for transport in (StringTransport() for _ in range(3))]
    read = [0] * len(connections)
    for _ in range(seconds * 1000):
        for n, (transport, pacer) in enumerate(connections):
            if transport.producerState == "producing":
                read[n] += chunk
                pacer.read(chunk)
        clock.advance(0.001)
    assert rate * seconds - 3 * chunk <= sum(read) <= rate * (seconds + BURST) + 3 * chunk
    assert max(read) - min(read) <= 2 * chunk  # each its share


def test_the_paced_protocol_keeps_a_connection_paused_after_its_response_ends():
    """Twisted resumes a connection's transport when a response ends, before the connection goes
    back to the pool: the pause comes after, and holds while the bucket is in debt."""
    clock, transport, pooled = Clock(), StringTransport(), []
    factory = _PacedHTTP11ClientFactory(pooled.append, "test", bucket=TokenBucket(1000, 100, clock.seconds), clock=clock)
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(transport)
    responses = []
    request = TxRequest(b"GET", b"/", TxHeaders({b"host": [b"example.com"]}), None, persistent=True)
    protocol.request(request).addCallback(responses.append)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    protocol.dataReceived(head + b"x" * 1000)
    assert responses and responses[0].code == 200
    assert pooled == [protocol]
    assert transport.producerState == "paused"
    clock.advance((len(head) + 1000 - 100) / 1000)
    assert transport.producerState == "producing"


def test_a_crawls_download_handlers_share_one_bucket():
    crawler = get_crawler(settings_dict={"IMGSCRAPER_MAX_RATE": "500k"})
    bucket = crawl_bucket(crawler)
    assert bucket is not None and bucket.rate == 500 * KIB and bucket.burst == 500 * KIB * BURST
    assert crawl_bucket(crawler) is bucket
    assert crawl_bucket(get_crawler(settings_dict={"IMGSCRAPER_MAX_RATE": "500k"})) is not bucket
    assert crawl_bucket(get_crawler(settings_dict={"IMGSCRAPER_MAX_RATE": ""})) is None
    assert crawl_bucket(get_crawler(settings_dict={"IMGSCRAPER_MAX_RATE": 0})) is None


# --- crawls, measured at the server ---------------------------------------------------------

RATE = 500 * KIB
#: Four noise PNGs of about 512 KiB (2 MiB), on one page: four connections at once.
IMAGES, SIDE = 4, 418
CHUNK = 16 * KIB
#: How far the sockets' buffers (the server's small send buffer, the crawl's receive buffer) let
#: the server get ahead of the crawl's reading on the four connections: 140 to 190 KiB each measured.
BUFFERED = 1024 * KIB


class ChunkedImages:
    """A page of :data:`IMAGES` images, each written in :data:`CHUNK` pieces from a small send
    buffer; :attr:`sent` holds (time, size) of every piece once the kernel took it."""

    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.images = {f"/img/{n}.png": png(n, (SIDE, SIDE), noise=True) for n in range(IMAGES)}
        self.sent: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        page = "<html><body>" + "".join(f'<img src="{path}">' for path in self.images) + "</body></html>"
        server.add_handler("/", lambda handler: handler.send_body(page, content_type="text/html") or True)
        server.add_handler("/img/*", self._send_image)

    def _send_image(self, handler) -> bool:
        body = self.images[handler.url_path]
        # Small: the server's writes follow the crawl's reading closely.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * KIB)
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for start in range(0, len(body), CHUNK):
            piece = body[start:start + CHUNK]
            handler.wfile.write(piece)
            with self._lock:
                self.sent.append((time.monotonic(), len(piece)))
        return True


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with HTTPTestServer(tmp_path_factory.mktemp("paced")) as server:
        yield ChunkedImages(server)


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory):
    context = server_context(tmp_path_factory.mktemp("tls"))
    with HTTPTestServer(tmp_path_factory.mktemp("paced-tls"), ssl_context=context) as server:
        yield ChunkedImages(server)


def crawl(site: ChunkedImages, run_crawl, *settings: str) -> tuple[CrawlResult, list[tuple[float, int]]]:
    """A crawl of the page with ``settings``: its result, and the server's pieces in time order."""
    site.sent.clear()
    result = run_crawl(["-a", f"url={site.server.url}", *(arg for s in settings for arg in ("-s", s))],
                       servers=[site.server])
    assert result.returncode == 0, result.tail()
    stored = sorted(path.read_bytes() for path in result.stored_files())
    assert stored == sorted(site.images.values()), "not every image stored byte for byte"
    return result, sorted(site.sent)


@pytest.fixture(scope="module")
def paced(site, run_crawl):
    return crawl(site, run_crawl, "IMGSCRAPER_MAX_RATE=500k")


@pytest.fixture(scope="module")
def unpaced(site, run_crawl):
    return crawl(site, run_crawl)


def ahead_of(rate: float, sent: list[tuple[float, int]]) -> float:
    """The most bytes the server sent in any stretch of time beyond ``rate`` times its length."""
    most, lowest, total = 0.0, float("inf"), 0
    for when, size in sent:
        lowest = min(lowest, total - rate * when)
        total += size
        most = max(most, total - rate * when - lowest)
    return most


def when_sent(sent: list[tuple[float, int]], share: float) -> float:
    """When the server had sent ``share`` of its bytes."""
    total, running = sum(size for _, size in sent), 0
    for when, size in sent:
        running += size
        if running >= share * total:
            return when
    raise ValueError(share)


def test_a_paced_crawl_reads_at_the_limit(paced):
    result, sent = paced
    total = sum(size for _, size in sent)
    assert result.duration >= 3.5, f"2 MiB at 500k in {result.duration:.2f} s"
    # The server never got further ahead of the limit than the sockets' buffers let it...
    assert ahead_of(RATE, sent) <= BUFFERED
    # ...and once they were full, sent at about the limit (slower only on a machine too busy to read).
    quarter = when_sent(sent, 0.25)
    rate = 0.75 * total / (sent[-1][0] - quarter)
    assert 0.6 * RATE <= rate <= 1.3 * RATE, f"{rate / KIB:.0f} KiB/s"
    assert "Reading http and https responses at 512,000 bytes/s at most (IMGSCRAPER_MAX_RATE)" in result.log


def test_a_paced_crawl_sends_its_requests_at_once(paced):
    """Reading is paced, not requesting: the image requests reach the server together."""
    result, _ = paced
    starts = sorted(request.start for request in result.requests if request.url_path.startswith("/img/"))
    assert len(starts) == IMAGES
    assert starts[-1] - starts[0] < 0.5, [round(start - starts[0], 3) for start in starts]


def test_an_unpaced_crawl_reads_as_fast_as_it_can(paced, unpaced):
    result, sent = unpaced
    assert sent[-1][0] - sent[0][0] < 1.0
    assert ahead_of(RATE, sent) > 1.5 * BUFFERED  # what the paced crawl's check would catch
    assert result.duration < paced[0].duration
    assert "IMGSCRAPER_MAX_RATE" not in result.log


def test_https_is_paced_too(tls_site, run_crawl):
    """Over TLS the paused transport is the TCP one under the TLS layer: the server is held back alike."""
    rate = 1024 * KIB
    _, sent = crawl(tls_site, run_crawl, "IMGSCRAPER_MAX_RATE=1M")
    total = sum(size for _, size in sent)
    assert ahead_of(rate, sent) <= BUFFERED
    assert sent[-1][0] - sent[0][0] >= (total - BUFFERED) / rate
