"""A crawl through an HTTP proxy (``http_proxy`` in the environment, Scrapy's
HttpProxyMiddleware): pages and images all go through it, images are stored as served."""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.request

import pytest


class RecordingProxy(http.server.ThreadingHTTPServer):
    """A forward HTTP proxy on 127.0.0.1 that records each absolute URL it is asked for."""

    daemon_threads = True

    def __init__(self):
        self.requested: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingProxy

    def do_GET(self) -> None:  # noqa: N802
        with self.server.lock:
            self.server.requested.append(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection", "host")}
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(urllib.request.Request(self.path, headers=headers), timeout=10) as upstream:
                status, body, upstream_headers = upstream.status, upstream.read(), upstream.headers
        except urllib.error.HTTPError as exc:
            status, body, upstream_headers = exc.code, exc.read(), exc.headers
        self.send_response(status)
        for name in ("Content-Type", "ETag", "Last-Modified"):
            if upstream_headers.get(name):
                self.send_header(name, upstream_headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxy():
    server = RecordingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_crawl_through_an_http_proxy(site_server_module, run_crawl, proxy):
    srv = site_server_module
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=1"], env={"http_proxy": proxy.url})
    assert result.returncode == 0, result.tail()
    expected = srv.site.stored_at(1)
    items = result.by_url()
    for url, sha in expected.items():
        assert items[url]["status"] == "downloaded", items[url]
        assert hashlib.sha256((result.store / items[url]["path"]).read_bytes()).hexdigest() == sha
    # Every page and image of the site went through the proxy (data: URIs are not fetched).
    fetched = set(proxy.requested)
    assert srv.url in fetched
    assert {u for u in expected if u.startswith(srv.url)} <= fetched
