"""Tests of the test helpers: the HTTP server, the site generator and the
``site_server`` fixture."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import threading
import time
import urllib.request
from urllib.error import HTTPError
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.support.httpserver import HTTPTestServer
from tests.support.sitegen import generate_site


@pytest.fixture
def server(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"\x89PNG fake png bytes")
    (tmp_path / "img" / "v.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (tmp_path / "pic.webp").write_bytes(b"RIFF....WEBP")
    (tmp_path / "favicon.ico").write_bytes(b"\0\0\1\0")
    (tmp_path / "index.html").write_text("<html>home</html>")
    (tmp_path / "robots.txt").write_text("User-agent: *\nDisallow:\n")
    with HTTPTestServer(tmp_path) as srv:
        yield srv


def _conn(server):
    return http.client.HTTPConnection(server.host, server.port, timeout=10)


def test_serves_files_with_headers(server):
    conn = _conn(server)
    conn.request("GET", "/img/a.png?v=1")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200
    assert body == b"\x89PNG fake png bytes"
    assert resp.getheader("Content-Type") == "image/png"
    assert resp.getheader("Content-Length") == str(len(body))
    assert resp.getheader("ETag")
    assert resp.getheader("Last-Modified").endswith("GMT")
    # keep-alive: a second request on the same connection
    for path, ctype in [("/img/v.svg", "image/svg+xml"), ("/pic.webp", "image/webp"),
                        ("/favicon.ico", "image/x-icon"), ("/robots.txt", "text/plain; charset=utf-8"),
                        ("/", "text/html; charset=utf-8")]:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200, path
        assert resp.getheader("Content-Type") == ctype, path
    conn.close()
    assert server.log.wait_idle()
    assert server.log.count() == 6
    assert len({r.client for r in server.log}) == 1  # one connection


def test_head_404_and_conditional(server):
    conn = _conn(server)
    conn.request("HEAD", "/img/a.png")
    resp = conn.getresponse()
    assert resp.read() == b""
    assert resp.status == 200 and resp.getheader("Content-Length") == "19"
    etag, last_modified = resp.getheader("ETag"), resp.getheader("Last-Modified")

    conn.request("GET", "/img/a.png", headers={"If-None-Match": etag})
    resp = conn.getresponse()
    assert resp.status == 304 and resp.read() == b""
    conn.request("GET", "/img/a.png", headers={"If-None-Match": '"other"'})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"\x89PNG fake png bytes"
    conn.request("GET", "/img/a.png", headers={"If-Modified-Since": last_modified})
    resp = conn.getresponse()
    assert resp.status == 304 and resp.read() == b""
    conn.request("GET", "/img/a.png", headers={"If-Modified-Since": "Thu, 01 Jan 1998 00:00:00 GMT"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read()
    conn.request("GET", "/nope.png")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 404
    conn.close()

    log = server.log
    assert log.wait_idle()
    assert [r.status for r in log] == [200, 304, 200, 304, 200, 404]
    assert log[0].method == "HEAD" and log[0].bytes_sent == 0
    assert log[1].bytes_sent == 0 and log[2].bytes_sent == 19
    assert log[1].header("if-none-match") == etag
    assert log.count(path_prefix="/img/") == 5
    assert log.count(status=304) == 2
    assert log.count(path="/img/a.png", method="GET") == 4
    assert all(r.end is not None and r.end >= r.start for r in log)
    log.clear()
    assert len(log) == 0 and log.count() == 0


def test_query_ignored_and_recorded(server):
    with urllib.request.urlopen(server.url + "img/a.png?size=full&x=1") as resp:
        assert resp.read() == b"\x89PNG fake png bytes"
    assert server.log.wait_idle()
    (rec,) = server.log
    assert rec.path == "/img/a.png?size=full&x=1"
    assert rec.url_path == "/img/a.png" and rec.query == "size=full&x=1"
    assert server.log.count(path="/img/a.png?size=full&x=1") == 1
    assert server.log.count(path="/img/a.png?v=2") == 0
    with pytest.raises(HTTPError) as exc:
        urllib.request.urlopen(server.url + "../../etc/passwd")
    assert exc.value.code in (403, 404)


def test_latency_and_max_in_flight(server):
    server.latency = 0.3
    results = []

    def fetch(i):
        with urllib.request.urlopen(server.url + f"img/a.png?i={i}") as resp:
            # urlopen returns once the headers are in: read the body too, or
            # the next request may start while the server still writes it.
            resp.read()
            results.append(resp.status)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 4
    assert time.monotonic() - t0 < 1.0  # served concurrently
    assert server.log.wait_idle()
    assert server.log.max_in_flight() == 4
    assert all(r.duration >= 0.3 for r in server.log)

    server.log.clear()
    server.latency = 0.05
    for i in range(3):
        fetch(i)
    assert server.log.wait_idle()
    assert server.log.max_in_flight() == 1


def test_custom_handler(server):
    def teapot(handler):
        if handler.query == "pass":
            return False  # fall through to the next handler / the files
        handler.send_body(b"short and stout", status=418, content_type="text/plain")
        return True

    server.add_handler("/img/*", teapot)
    with pytest.raises(HTTPError) as exc:
        urllib.request.urlopen(server.url + "img/a.png")
    assert exc.value.code == 418 and exc.value.read() == b"short and stout"
    with urllib.request.urlopen(server.url + "img/a.png?pass") as resp:
        assert resp.status == 200
    with urllib.request.urlopen(server.url) as resp:
        assert resp.status == 200
    assert server.log.wait_idle()
    assert [(r.path, r.status) for r in server.log] == [
        ("/img/a.png", 418), ("/img/a.png?pass", 200), ("/", 200)]
    assert server.log[0].bytes_sent == len(b"short and stout")

    server.remove_handler(teapot)
    with urllib.request.urlopen(server.url + "img/a.png") as resp:
        assert resp.status == 200

    def drop(handler):
        handler.close_connection = True
        return True  # answers nothing: the client sees the connection close

    server.add_handler(lambda path: path.endswith(".webp"), drop)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, OSError)):
        urllib.request.urlopen(server.url + "pic.webp")
    assert server.log.wait_idle()
    assert server.log.requests(path="/pic.webp")[0].status is None
    server.clear_handlers()
    with urllib.request.urlopen(server.url + "pic.webp") as resp:
        assert resp.status == 200


def test_generated_site(tmp_path):
    site = generate_site(tmp_path / "s", base_url="http://127.0.0.1:8000/",
                         unreachable_url="http://127.0.0.1:9/x.jpg")
    assert site.expected and site.srcset_smaller and site.skipped and site.failed
    assert set(site.expected) == set(site.by_depth[0]) | set(site.by_depth[1]) | set(site.by_depth[2])
    assert not set(site.by_depth[3]) & set(site.expected)
    formats = {site.images[u].format for u in site.expected}
    assert {"JPEG", "PNG", "GIF", "WEBP", "SVG", "BMP", "ICO"} <= formats
    # every stored image's sha is the one of its file (or data: URI payload)
    for url, sha in site.expected.items():
        info = site.images[url]
        if url.startswith("data:"):
            data = base64.b64decode(url.split(",", 1)[1])
        else:
            data = info.file.read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, url
        if info.format != "SVG":
            with Image.open(io.BytesIO(data)) as img:
                assert (img.format, img.size) == (info.format, (info.width, info.height)), url
    # distinct bytes except for the deliberate aliases
    by_sha = {}
    for url, sha in {**site.expected, **site.srcset_smaller}.items():
        by_sha.setdefault(sha, []).append(url)
    assert sorted(sorted(g) for g in by_sha.values() if len(g) > 1) == site.aliases
    assert len(site.aliases) == 2
    anim = [u for u in site.expected if site.images[u].frames == 3]
    assert len(anim) == 1
    rgba = [u for u in site.expected if site.images[u].mode == "RGBA" and site.images[u].format == "PNG"]
    assert rgba
    assert (tmp_path / "s" / "robots.txt").read_text().startswith("User-agent: *")
    assert site.pages[0] == ["http://127.0.0.1:8000/"]
    assert site.discovered_at(0) < site.discovered_at(1) < site.discovered_at(2) < site.discovered_at(3)
    assert set(site.skipped.values()) == {"too-small"}


def test_site_server_fixture(site_server):
    site = site_server.site
    assert site_server.url == site.base_url and site_server.url.startswith("http://127.0.0.1:")
    for url, sha in site.expected.items():
        if url.startswith("data:"):
            continue
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert hashlib.sha256(resp.read()).hexdigest() == sha, url
        assert site_server.requests_for(url), url
    for page in site.pages_at(3):
        with urllib.request.urlopen(page, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/html")
    fake = site.url("img/fake.jpg")
    with urllib.request.urlopen(fake, timeout=10) as resp:
        assert resp.read().lstrip().startswith(b"<!DOCTYPE html>")
    with pytest.raises(HTTPError):
        urllib.request.urlopen(site.url("img/missing.png"), timeout=10)
    with pytest.raises(OSError):
        urllib.request.urlopen(site.unreachable_url, timeout=10)
    if site_server.other is not None:
        assert urlsplit(site.external_pages[0]).hostname == "127.0.0.2"
    assert site_server.log.wait_idle()
    assert site_server.log.count(path="/img/missing.png", status=404) == 1
