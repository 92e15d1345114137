"""Every request goes out exactly as the page wrote it: the path and query of
Scrapy's ``Request.url`` (the page's URL after ``safe_url_string``), byte for byte.

One site names its pages, frame, style sheets (and an ``@import``), images and
a redirect with URLs full of escapes that a transport might "normalise":
``%2C %3A %2F %3D %26 %25 %7E`` in path and query, lower- and upper-case escapes,
``+`` and ``%20``, a percent-encoded URL as a query value, ``|[]{}``, a UTF-8
path, and an internationalised host name (``bücher.test``, mapped to 127.0.0.1
by :mod:`tests.support.resolver_stub`). The server answers only the exact request targets it
expects (anything else is a 404) and records each raw request line; one
endpoint checks an HMAC over the raw query, as image proxies do, and answers
403 to any other spelling.

The same site is crawled as a crawl of its own, as a shared crawl through
Redis, and with ``render=yes``; the plain crawl is then repeated with every
image expired, so each image is revalidated with a conditional request.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import pytest
from scrapy import Request

from tests.support.httpserver import HTTPTestServer, RequestHandler
from tests.support.images import png

SIGNING_KEY = b"imgscraper-test-key"

#: Image URLs of the start page, as written in its HTML (relative to the server).
PAGE_IMAGES = [
    "/img/a%2Cb%3Ac%2Fd%3De%26f%25g%7Eh.png",
    "/img/lower%2c%7e.png?t=130%2c87&T=130%2C87&tilde=%7E",
    "/img/plus+space%20x.png?q=a+b%20c",
    "/img/nested.png?image_uri=https%3A%2F%2Fs.example%2Fa%2Cb%2Fc.jpg%3Fw%3D1%26h%3D2&x=%3D%26%25",
    "/img/br[a]{c}|d.png?k=[1]{2}|3",
    "/img/café.png?q=é",
]
START = "/start%2Cpage/index%7e.html?from=a%2Cb&u=https%3A%2F%2Fh%2Fp%3Fq%3D1"
LINKED_PAGE = "/pages/next%2Cpage.html?p=%2F1%7e"
FRAME = "/frames/f%2Cr.html?f=%7E"
STYLESHEET = "/css/s%2Ct.css?v=1%2C2"
IMPORTED = "/css/imp%3Aorted.css?i=%7e"
REDIRECT = "/redirect/r%2Cs.png?to=%2Fimg"
REDIRECTED = "/img/after%2Credirect.png?u=https%3A%2F%2Fh%2Fp"
SIGNED_QUERY = "thumbnail=130%2C87&quality=80&image_uri=https%3A%2F%2Fs.example%2Fp%2Cq.png"
IDN_IMAGE = "/img/idn%2C.png?x=%7e"


def signature(raw_query: str) -> str:
    return hmac.new(SIGNING_KEY, raw_query.encode("ascii"), hashlib.sha256).hexdigest()[:20]


def wire(url: str) -> str:
    """The request target Scrapy's ``Request`` makes of ``url``."""
    parts = urlsplit(Request(url).url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Site:
    server: HTTPTestServer
    idn_base: str  # http://bücher.test:PORT
    #: raw request target -> (content type, body); images also in ``images``.
    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)  # absolute URL as the page writes it -> bytes

    @property
    def base(self) -> str:
        return self.server.url.rstrip("/")

    @property
    def crawl_args(self) -> list[str]:
        """The crawl of the site: from its start page, depth 1, host names answered by the resolver stub."""
        return ["-a", f"url={self.base}{START}", "-a", "depth=1",
                "-s", "TWISTED_DNS_RESOLVER=tests.support.resolver_stub.LoopbackTestResolver"]

    def add(self, url: str, content_type: str, body: bytes | str) -> None:
        body = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[wire(url)] = (content_type, body)
        if content_type.startswith("image/"):
            self.images[url] = body

    def expected_targets(self) -> set[str]:
        return set(self.routes) | {wire(urljoin(self.base, REDIRECT))}

    def serve(self, h: RequestHandler) -> bool:
        target = h.path
        if urlsplit(target).path == "/signed/photo.png":
            query = urlsplit(target).query
            unsigned, _, sig = query.rpartition("&signature=")
            if not hmac.compare_digest(sig, signature(unsigned)):
                h.send_body(b"bad signature", status=403)
                return True
        if target == wire(urljoin(self.base, REDIRECT)):
            h.send_body(b"", status=302, headers={"Location": REDIRECTED})
            return True
        if target not in self.routes:
            h.send_body(b"not found", status=404)
            return True
        content_type, body = self.routes[target]
        etag = '"%s"' % hashlib.sha1(body).hexdigest()[:16]
        if h.headers.get("If-None-Match") == etag:
            h.send_response(304)
            h.send_header("ETag", etag)
            h.end_headers()
            return True
        h.send_body(body, content_type=content_type, headers={"ETag": etag})
        return True


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    server = HTTPTestServer(tmp_path_factory.mktemp("verbatim")).start()
    site = Site(server, idn_base=f"http://bücher.test:{server.port}")
    base = site.base
    signed = f"/signed/photo.png?{SIGNED_QUERY}&signature={signature(SIGNED_QUERY)}"
    images = [*PAGE_IMAGES, signed, f"{site.idn_base}{IDN_IMAGE}"]
    tags = "".join(f'<img src="{url}">' for url in images)
    site.add(base + START, "text/html; charset=utf-8", f"""<!doctype html><html><head>
        <meta charset="utf-8"><link rel="stylesheet" href="{STYLESHEET}"></head><body>
        {tags}<img src="{REDIRECT}"><a href="{LINKED_PAGE}">next</a><iframe src="{FRAME}"></iframe>
        </body></html>""")
    site.add(base + LINKED_PAGE, "text/html; charset=utf-8",
             '<html><body><img src="/img/from%2Clinked.png?l=%3A"></body></html>')
    site.add(base + FRAME, "text/html; charset=utf-8", '<html><body><img src="/img/in%2Cframe.png?z=%2f"></body></html>')
    site.add(base + STYLESHEET, "text/css",
             f'@import url("{IMPORTED}");\n.a {{ background: url("/img/bg%2Cone.png?b=%2F") }}\n')
    site.add(base + IMPORTED, "text/css", ".b { background-image: url(/img/bg%2Ctwo.png?c=%3D) }\n")
    site.add(base + "/robots.txt", "text/plain", "User-agent: *\nAllow: /\n")
    image_urls = [
        *(urljoin(base + START, url) for url in images), base + REDIRECTED,
        base + "/img/from%2Clinked.png?l=%3A", base + "/img/in%2Cframe.png?z=%2f",
        base + "/img/bg%2Cone.png?b=%2F", base + "/img/bg%2Ctwo.png?c=%3D",
    ]
    for n, url in enumerate(image_urls):
        site.add(url, "image/png", png(n, (4 + n, 3)))
    # The page names the redirect: its item carries that URL.
    site.images[base + REDIRECT] = site.images.pop(base + REDIRECTED)
    server.add_handler(lambda path: True, site.serve)
    yield site
    server.stop()



def assert_verbatim(site: Site, result, *, expected: set[str] | None = None) -> None:
    """Every request the server saw was one it expects, and each expected one came."""
    assert result.returncode == 0, result.tail()
    seen = {record.path for record in site.server.log} - {"/favicon.ico"}
    expected = site.expected_targets() if expected is None else expected
    assert seen == expected, f"unexpected: {sorted(seen - expected)}\nnever requested: {sorted(expected - seen)}"
    assert not [r for r in site.server.log if r.status in (403, 404)], result.tail()


def assert_images_stored(site: Site, result) -> None:
    items = {wire(item["url"]): item for item in result.items}
    for url, body in site.images.items():
        item = items.get(wire(url))
        assert item is not None, f"no item for {url}"
        assert item["status"] in ("downloaded", "uptodate"), item
        assert (result.store / item["path"]).read_bytes() == body, url


@pytest.fixture(scope="module")
def plain(site, run_crawl, tmp_path_factory):
    return run_crawl(site.crawl_args, store=tmp_path_factory.mktemp("plain") / "store", servers=[site.server])


def test_every_request_goes_out_as_the_page_wrote_it(site, plain):
    assert_verbatim(site, plain)
    assert_images_stored(site, plain)
    # Escapes the page wrote stay as written (Request.url keeps them; nothing else may change them).
    seen = {record.path for record in site.server.log}
    for written in (START, LINKED_PAGE, FRAME, STYLESHEET, IMPORTED, REDIRECT, REDIRECTED, *PAGE_IMAGES[:4]):
        assert written in seen, written
    assert f"/signed/photo.png?{SIGNED_QUERY}&signature={signature(SIGNED_QUERY)}" in seen


def test_the_internationalised_host_goes_out_as_punycode(site, plain):
    (record,) = [r for r in site.server.log if r.path == IDN_IMAGE]
    assert record.header("Host") == f"xn--bcher-kva.test:{site.server.port}"
    assert record.status == 200


def test_revalidation_repeats_each_request_as_written(site, plain, run_crawl):
    again = run_crawl([*site.crawl_args, "-s", "IMGSCRAPER_EXPIRES=0s"], store=plain.store, servers=[site.server])
    assert_verbatim(site, again)
    conditional = [r for r in site.server.log if r.header("If-None-Match")]
    assert {r.path for r in conditional} >= {wire(url) for url in site.images} - {wire(site.base + REDIRECT)}
    assert all(item["status"] == "uptodate" for item in again.items), [i for i in again.items if i["status"] != "uptodate"]


def test_a_shared_crawl_sends_every_request_as_written(site, run_crawl, redis_url, tmp_path):
    result = run_crawl([*site.crawl_args, "-s", f"IMGSCRAPER_REDIS_URL={redis_url}",
                        "-s", "IMGSCRAPER_CRAWL_ID=verbatim"], store=tmp_path / "store", servers=[site.server])
    assert_verbatim(site, result)
    assert_images_stored(site, result)


def test_a_rendered_crawl_sends_every_request_as_written(site, run_crawl, chromium, tmp_path):
    result = run_crawl([*site.crawl_args, "-a", "render=yes"], store=tmp_path / "store", servers=[site.server])
    assert_verbatim(site, result)
    assert_images_stored(site, result)
