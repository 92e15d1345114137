"""Each way the network can fail gets its reason.

One crawl of a page whose images fail in every way the network can fail,
plus an unreachable second start page.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.faultsite import reset_mid_body
from tests.support.httpserver import HTTPTestServer, RequestHandler
from tests.support.images import png

IMAGE = png(7)
TIMEOUT = 1


def reset_image_mid_body(h: RequestHandler) -> bool:
    reset_mid_body(h, IMAGE)
    return True


def close_before_response(h: RequestHandler) -> bool:
    h.close_connection = True
    h.connection.shutdown(socket.SHUT_RDWR)
    return True


def stall(h: RequestHandler) -> bool:
    time.sleep(TIMEOUT + 1)
    h.close_connection = True
    return True


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed once the block ends


# image -> the reason both handlers give
EXPECTED = {
    "refused.png": "connection-refused",
    # A label over 63 characters: the lookup fails without asking a DNS server.
    "unresolvable.png": "dns-error",
    "stall.png": "timeout",
    "reset-mid-body.png": "data-loss",
    "closed-before-response.png": "download-failed-error",
    "missing.png": "http-404",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("download-errors")
    with HTTPTestServer(root) as server:
        server.add_handler("/reset-mid-body.png", reset_image_mid_body)
        server.add_handler("/closed-before-response.png", close_before_response)
        server.add_handler("/stall.png", stall)
        urls = [
            f"http://127.0.0.1:{closed_port()}/refused.png",
            f"http://{'a' * 70}.example/unresolvable.png",
            "/stall.png", "/reset-mid-body.png", "/closed-before-response.png", "/missing.png",
        ]
        (root / "index.html").write_text("".join(f'<img src="{url}">' for url in urls))
        yield server


@pytest.fixture(scope="module")
def crawl(server, run_crawl):
    args = ["-a", f"url={server.url},http://127.0.0.1:{closed_port()}/page.html",
            "-s", "RETRY_TIMES=0", "-s", f"DOWNLOAD_TIMEOUT={TIMEOUT}", "-s", "ROBOTSTXT_OBEY=False"]
    return run_crawl(args, servers=[server])


def test_image_failures_have_the_same_reasons(crawl):
    reasons = {item["url"].rsplit("/", 1)[1]: (item["status"], item["reason"]) for item in crawl.items}
    assert reasons == {name: ("failed", reason) for name, reason in EXPECTED.items()}, crawl.tail()


def test_unreachable_page_has_the_same_reason(crawl):
    assert crawl.returncode == 1  # a start page failed
    assert crawl.stats.get("imgscraper/pages_failed/connection-refused") == 1, crawl.tail()
    assert "Traceback" not in crawl.stderr, crawl.tail()
