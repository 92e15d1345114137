"""A hostile web site for fault-injection tests, served by :class:`httpserver.HTTPTestServer`.

:class:`FaultSite` registers custom handlers on a real HTTP server on
127.0.0.1: each image fault is one URL (``/f/<name>``) whose handler resets
connections, stalls, answers 429/5xx a number of times, redirects in loops,
lies about the content type, truncates, inflates... Pages exercise page
faults (encodings, malformed HTML, a gigantic page, a gzip bomb, a link
trap) and URL spellings. :attr:`FaultSite.faults` says what the crawl must
make of each: the item status and reason, how many requests the server may
see, and for good images the exact bytes that must be stored.

The settings the crawl must use are :data:`CRAWL_SETTINGS` (short timeout,
small maximum sizes, no retry delays).
"""

from __future__ import annotations

import gzip
import io
import random
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Callable
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

from tests.support.httpserver import HTTPTestServer, RequestHandler
from tests.support.images import jpeg, png

__all__ = ["CRAWL_SETTINGS", "Fault", "FaultSite", "png_bomb"]

DOWNLOAD_TIMEOUT = 1.5
DOWNLOAD_MAXSIZE = 1024 * 1024
#: ``-s`` settings the fault crawls run with.
CRAWL_SETTINGS = {
    "DOWNLOAD_TIMEOUT": str(DOWNLOAD_TIMEOUT),
    "DOWNLOAD_MAXSIZE": str(DOWNLOAD_MAXSIZE),
    "DOWNLOAD_WARNSIZE": "0",
    "RETRY_TIMES": "2",
    "REDIRECT_MAX_TIMES": "5",
    "IMGSCRAPER_RETRY_AFTER_MAX": "5",
}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: a few KB that
    decode to ``width * height`` pixels (a decompression bomb)."""
    row = b"\0" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _gzip_bomb(size: int) -> bytes:
    """``size`` bytes of zeros, gzipped (about size/1000 bytes)."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as out:
        chunk = bytes(1024 * 1024)
        for _ in range(size // len(chunk)):
            out.write(chunk)
    return buf.getvalue()


def reset_connection(handler: RequestHandler) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0, then close)."""
    handler.close_connection = True
    sock = handler.connection
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    socket.socket(fileno=sock.detach()).close()


def reset_mid_body(handler: RequestHandler, body: bytes) -> None:
    """Announce ``body`` as a PNG, send half of it, then reset the connection."""
    handler.send_response(200)
    handler.send_header("Content-Type", "image/png")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body[: len(body) // 2])
    handler.wfile.flush()
    time.sleep(0.05)
    reset_connection(handler)


@dataclass
class Fault:
    """One fault and what the crawl must make of it.

    ``status``/``reason``: the expected item status and reason
    (``downloaded`` for an image that must be stored, then ``body`` is the
    exact bytes). ``tries``: how many requests for ``path`` the server must
    see (None: not checked). ``url`` is the URL the page references.
    """

    name: str
    path: str
    status: str
    reason: str = ""
    tries: int | None = 1
    body: bytes | None = None
    url: str = ""
    group: str = "image"


Handler = Callable[[RequestHandler], bool]


@dataclass
class FaultSite:
    """The fault site on ``server``: call :meth:`install` once, :meth:`reset` between crawls."""

    server: HTTPTestServer
    root: Path
    faults: list[Fault] = field(default_factory=list)
    hits: Counter = field(default_factory=Counter)
    pages: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def reset(self) -> None:
        with self._lock:
            self.hits.clear()
        self.server.log.clear()

    def _hit(self, handler: RequestHandler) -> int:
        """Count a request for this path; returns 1 for the first."""
        with self._lock:
            self.hits[handler.url_path] += 1
            return self.hits[handler.url_path]

    def fault(self, name: str, status: str, handler: Handler, reason: str = "", tries: int | None = 1,
              body: bytes | None = None, group: str = "image") -> Fault:
        path = f"/f/{name}"
        self.server.add_handler(path, handler)
        fault = Fault(name, path, status, reason, tries, body, self.url.rstrip("/") + path, group)
        self.faults.append(fault)
        return fault

    def image(self, seed: int) -> bytes:
        return png(seed)

    # -- the site ------------------------------------------------------------

    def install(self) -> "FaultSite":
        """Register every fault and write the pages; returns self."""
        self._image_faults()
        self._page_faults()
        self._url_spellings()
        self._safety()
        self._trap()
        images = "\n".join(f'<img src="{f.url}">' for f in self.faults if f.group == "image")
        pages = "\n".join(f'<a href="{p}">{p}</a>' for p in self.pages)
        self._write("index.html", f"<html><body><h1>Faults</h1>\n{images}\n{pages}\n</body></html>")
        self._write("robots.txt", "User-agent: *\nDisallow: /private/\n", binary=False)
        return self

    def _write(self, rel: str, text: str | bytes, binary: bool = True) -> None:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, str):
            text = text.encode("utf-8")
        target.write_bytes(text)

    def _image_faults(self) -> None:
        seed = iter(range(1000, 2000))

        def good(body: bytes, content_type: str | None = "image/png") -> Handler:
            def serve(h: RequestHandler) -> bool:
                self._hit(h)
                h.send_body(body, content_type=content_type or "")
                return True
            return serve

        def failing_then(body: bytes, first: Callable[[RequestHandler, int], None], times: int) -> Handler:
            def serve(h: RequestHandler) -> bool:
                n = self._hit(h)
                if n <= times:
                    first(h, n)
                else:
                    h.send_body(body, content_type="image/png")
                return True
            return serve

        def reset_mid_body_of(body: bytes) -> Callable[[RequestHandler, int], None]:
            def fault(h: RequestHandler, n: int) -> None:
                reset_mid_body(h, body)
            return fault

        def stall(h: RequestHandler, n: int) -> None:
            time.sleep(DOWNLOAD_TIMEOUT + 1)
            h.close_connection = True

        def status(code: int, headers: dict[str, str] | None = None) -> Callable[[RequestHandler, int], None]:
            def fault(h: RequestHandler, n: int) -> None:
                h.send_body(f"error {code}", status=code, content_type="text/html", headers=headers)
            return fault

        body = self.image(next(seed))
        self.fault("reset-once.png", "downloaded", failing_then(body, reset_mid_body_of(body), 1), tries=2, body=body)
        body = self.image(next(seed))
        self.fault("reset-always.png", "failed", failing_then(body, reset_mid_body_of(body), 99),
                   reason="data-loss", tries=3)
        body = self.image(next(seed))
        self.fault("stall-once.png", "downloaded", failing_then(body, stall, 1), tries=2, body=body)
        self.fault("stall-always.png", "failed", failing_then(body, stall, 99), reason="timeout", tries=3)
        body = self.image(next(seed))
        self.fault("500-then-ok.png", "downloaded", failing_then(body, status(500), 1), tries=2, body=body)
        body = self.image(next(seed))
        self.fault("503-twice-then-ok.png", "downloaded", failing_then(body, status(503), 2), tries=3, body=body)
        self.fault("503-always.png", "failed", failing_then(body, status(503), 99), reason="http-503", tries=3)
        body = self.image(next(seed))
        self.fault("429-retry-after.png", "downloaded",
                   failing_then(body, status(429, {"Retry-After": "2"}), 1), tries=2, body=body)
        body = self.image(next(seed))
        later = formatdate(time.time() + 2, usegmt=True)
        self.retry_after_date = later
        self.fault("429-retry-after-date.png", "downloaded",
                   failing_then(body, lambda h, n: status(429, {"Retry-After": formatdate(time.time() + 2, usegmt=True)})(h, n), 1),
                   tries=2, body=body)
        self.fault("429-retry-after-too-long.png", "failed",
                   failing_then(body, status(429, {"Retry-After": "3600"}), 99), reason="http-429", tries=1)
        self.fault("404.png", "failed", failing_then(body, status(404), 99), reason="http-404", tries=1)
        self.fault("410.png", "failed", failing_then(body, status(410), 99), reason="http-410", tries=1)

        # Redirects: a chain of 3 hops to a good image, a loop, and a redirect to file:.
        body = self.image(next(seed))
        self.server.add_handler("/r/chain-end.png", good(body))

        def redirect(target: Callable[[RequestHandler], str]) -> Handler:
            def serve(h: RequestHandler) -> bool:
                self._hit(h)
                h.send_body(b"", status=302, headers={"Location": target(h)})
                return True
            return serve

        self.server.add_handler("/r/hop*", redirect(lambda h: (
            f"/r/hop{int(h.url_path[6:]) + 1}" if int(h.url_path[6:]) < 2 else "/r/chain-end.png")))
        self.fault("redirect-chain.png", "downloaded", redirect(lambda h: "/r/hop1"), tries=1, body=body)
        self.fault("redirect-loop.png", "failed", redirect(lambda h: "/f/redirect-loop.png"),
                   reason="too-many-redirects", tries=6)
        self.fault("redirect-to-file.png", "failed", redirect(lambda h: "file:///etc/passwd"),
                   reason="http-302", tries=1)

        # Lies about the type, broken bodies.
        body = self.image(next(seed))
        self.fault("no-content-type.png", "downloaded", good(body, content_type=None), body=body)
        body = self.image(next(seed))
        self.fault("wrong-content-type.png", "downloaded", good(body, content_type="text/html"), body=body)
        body = jpeg("png-named-jpeg")
        self.fault("png-named-jpeg.gif", "downloaded", good(body, content_type="image/gif"), body=body)
        self.fault("html-as.jpg", "failed", good(b"<html><body>Not found</body></html>", "image/jpeg"),
                   reason="not-an-image")
        body = self.image(next(seed))
        self.fault("truncated.png", "failed", good(body[: len(body) // 2]), reason="truncated")
        self.fault("zero-bytes.png", "failed", good(b""), reason="empty")

        # Too big: announced by Content-Length, or streamed without it.
        big = b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(DOWNLOAD_MAXSIZE + 200_000)
        self.fault("too-large.png", "failed", good(big), reason="too-large", tries=1)

        def stream(h: RequestHandler) -> bool:
            self._hit(h)
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            chunk = big[:65536]
            try:
                for _ in range(4 * DOWNLOAD_MAXSIZE // len(chunk)):
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.write(b"0\r\n\r\n")
            except OSError:
                h.close_connection = True
            return True

        self.fault("too-large-streamed.png", "failed", stream, reason="too-large", tries=1)
        self.fault("decompression-bomb.png", "failed", good(png_bomb()), reason="decompression-bomb")
        zeros = _gzip_bomb(4 * DOWNLOAD_MAXSIZE)

        def gzip_bomb(h: RequestHandler) -> bool:
            self._hit(h)
            h.send_body(zeros, content_type="image/png", headers={"Content-Encoding": "gzip"})
            return True

        self.fault("gzip-bomb.png", "failed", gzip_bomb, reason="too-large", tries=1)

    # -- pages ----------------------------------------------------------------

    def _page_image(self, name: str, seed: int, group: str, path: str = "") -> Fault:
        """A good image for a page fault, served at ``path`` (default ``/p/<name>``)."""
        body = self.image(seed)
        path = path or f"/p/{name}"
        self.server.add_handler(path, lambda h: (self._hit(h), h.send_body(body, content_type="image/png"))[1] or True)
        fault = Fault(name, path, "downloaded", tries=1, body=body, url=self.url.rstrip("/") + path, group=group)
        self.faults.append(fault)
        return fault

    def _page_faults(self) -> None:
        # Latin-1 page (declared in the header) with a non-ASCII image path.
        # (A URL's path is UTF-8 whatever the page's encoding.)
        self._page_image("caf\u00e9-latin1.png", 3001, "page:latin-1", path="/p/caf%C3%A9-latin1.png")
        html = f'<html><body><p>Caf\u00e9 cr\u00e8me</p><img src="/p/caf\u00e9-latin1.png"></body></html>'
        self._page("latin1.html", html.encode("latin-1"), "text/html; charset=iso-8859-1")
        # Windows-1252 declared only in a <meta>, no charset in the header.
        img = self._page_image("meta-charset.png", 3002, "page:cp1252-meta")
        html = f'<html><head><meta charset="windows-1252"></head><body>\u201cquoted\u201d<img src="{img.path}"></body></html>'
        self._page("cp1252.html", html.encode("cp1252"), "text/html")
        # Declared UTF-8 but holds invalid bytes.
        img = self._page_image("bad-utf8.png", 3003, "page:invalid-utf-8")
        html = b'<html><body>\xff\xfe\xc3(<img src="' + img.path.encode() + b'">\x80\x81</body></html>'
        self._page("bad-utf8.html", html, "text/html; charset=utf-8")
        # Malformed HTML: unclosed tags, stray NULs, broken attributes, garbage.
        img = self._page_image("malformed.png", 3004, "page:malformed-html")
        html = (b"<html><body><div><table><tr><td><p>unclosed <b>tags <i>everywhere\0\0"
                b"<<<>>> </div></div></span></td></tr></tr><img src=" + img.path.encode() + b" alt='x>"
                b"<p <p <img src=\"/missing-quote.png alt=x><script>document.write('<img src=x>')</scr")
        self._page("malformed.html", html, "text/html")
        # A large page within DOWNLOAD_MAXSIZE: the image at its very end is found.
        img = self._page_image("end-of-large-page.png", 3005, "page:large")
        filler = ("<p>" + "lorem ipsum " * 40 + "</p>\n") * (DOWNLOAD_MAXSIZE // 600)
        self._page("large.html", f"<html><body>{filler}<img src=\"{img.path}\"></body></html>".encode(), "text/html")
        # A gigantic page (over DOWNLOAD_MAXSIZE) and a gzip bomb: aborted, counted.
        gigantic = b"<html><body>" + b"<p>x</p>" * (DOWNLOAD_MAXSIZE // 4) + b"<img src='/p/never.png'>"
        self._page("gigantic.html", gigantic, "text/html")
        bomb = _gzip_bomb(8 * DOWNLOAD_MAXSIZE)
        self.server.add_handler("/gzip-bomb.html", lambda h: h.send_body(
            bomb, content_type="text/html", headers={"Content-Encoding": "gzip"}) or True)
        self.pages.append("/gzip-bomb.html")

    def _page(self, name: str, body: bytes, content_type: str) -> None:
        path = f"/{name}"
        self.server.add_handler(path, lambda h: h.send_body(body, content_type=content_type) or True)
        self.pages.append(path)

    def _url_spellings(self) -> None:
        base = self.url.rstrip("/")
        host_upper = base.replace("http://", "HTTP://")
        images = []
        for name, seed, spelling in [
            ("my photo.png", 4001, "/u/my photo.png"),
            ("\u00fcber-\u65e5\u672c.png", 4002, "/u/\u00fcber-\u65e5\u672c.png"),
            ("Mixed-Case.PNG", 4003, f"{host_upper}/u/Mixed-Case.PNG"),
            ("fragment.png", 4004, "/u/fragment.png#section-2"),
            ("same.png", 4005, "/u/same.png"),
        ]:
            body = self.image(seed)
            path = "/u/" + quote(name)
            self.server.add_handler(path, (lambda b: lambda h: (self._hit(h), h.send_body(b, content_type="image/png"))[1] or True)(body))
            url = urljoin(self.url + "spellings.html", spelling).split("#")[0]
            url = urlunsplit(urlsplit(url)._replace(scheme="http", path=path))
            self.faults.append(Fault(name, path, "downloaded", tries=1, body=body, url=url, group="page:url-spellings"))
            images.append(spelling)
        # The same image, spelled several ways: fetched once, stored once.
        images += ["/u/./same.png", "/u/x/../same.png", "/u/%73ame.png", f"{host_upper}/u/same.png", "/u/same.png#a"]
        html = "<html><body>" + "".join(f'<img src="{u}">' for u in images) + "</body></html>"
        self._page("spellings.html", html.encode(), "text/html; charset=utf-8")

    def _safety(self) -> None:
        body = self.image(5001)
        crafted = ["/s/../../escape.png", "/s/%2e%2e%2f%2e%2e%2fescape2.png", "/s/" + "long" * 600 + ".png",
                   "/s/nul%00byte.png", "/s/..%5c..%5cwin.png"]
        self.server.add_handler("/s/*", lambda h: (self._hit(h), h.send_body(body, content_type="image/png"))[1] or True)
        self.server.add_handler("/escape*", lambda h: (self._hit(h), h.send_body(body, content_type="image/png"))[1] or True)
        self.crafted = crafted
        private = self.image(5002)
        self.server.add_handler("/private/*", lambda h: (self._hit(h), h.send_body(private, content_type="image/png"))[1] or True)
        schemes = ["file:///etc/hostname", "ftp://127.0.0.1/x.png", "gopher://127.0.0.1/x.png", "javascript:alert(1)"]
        self.ignored_schemes = schemes
        html = ("<html><body>" + "".join(f'<img src="{u}">' for u in crafted + schemes)
                + '<img src="/private/secret.png"><a href="/private/page.html">p</a></body></html>')
        self._page("safety.html", html.encode(), "text/html")

    def _trap(self) -> None:
        """An endless calendar: /cal/<n>.html links to /cal/<n+1>.html and shows one image."""
        def page(h: RequestHandler) -> bool:
            n = int(h.url_path[5:].removesuffix(".html"))
            self._hit(h)
            h.send_body(f'<html><body><img src="/cal/img-{n}.png"><a href="/cal/{n + 1}.html">next</a>'
                        f'<a href="/cal/{n + 1000}.html">next year</a></body></html>', content_type="text/html")
            return True

        def image(h: RequestHandler) -> bool:
            n = int(h.url_path[9:].removesuffix(".png"))
            self._hit(h)
            h.send_body(png(10_000 + n), content_type="image/png")
            return True

        self.server.add_handler("/cal/img-*", image)
        self.server.add_handler(lambda p: p.startswith("/cal/") and p.endswith(".html"), page)
