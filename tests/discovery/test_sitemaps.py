"""Crawls that start from sitemaps (``-a sitemap=URL``, ``-a sitemap=auto``): :mod:`imgscraper.discovery.sitemaps`
on its own, then ``scrapy crawl images`` against a served site with plain, index,
gzipped and image sitemaps and a robots.txt that names them."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from scrapy.http import Response, TextResponse, XmlResponse

from imgscraper.discovery.sitemaps import SitemapContents, read_sitemap, sitemap_body, sitemaps_in_robots_txt
from imgscraper.exceptions import ArgumentError
from imgscraper.spiders.arguments import parse_sitemaps
from tests.support.httpserver import HTTPTestServer
from tests.support.images import jpeg, png
from tests.support.sitegen import sha256

URLSET = "http://www.sitemaps.org/schemas/sitemap/0.9"
IMAGE_NS = "http://www.google.com/schemas/sitemap-image/1.1"


def urlset(pages: dict[str, list[str]]) -> bytes:
    """A sitemap listing ``pages``, each with its ``<image:image>`` entries."""
    entries = "".join(
        f"<url><loc>{page}</loc><lastmod>2026-01-01</lastmod>"
        + "".join(f"<image:image><image:loc>{image}</image:loc><image:caption>A photo</image:caption></image:image>"
                  for image in images)
        + "</url>\n"
        for page, images in pages.items()
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="{URLSET}" xmlns:image="{IMAGE_NS}">\n{entries}</urlset>'.encode()


def sitemap_index(sitemaps: list[str]) -> bytes:
    entries = "".join(f"<sitemap><loc>{url}</loc></sitemap>" for url in sitemaps)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="{URLSET}">{entries}</sitemapindex>'.encode()


# -- reading sitemaps -----------------------------------------------------------------


def test_a_sitemap_lists_pages_with_their_images():
    body = urlset({"/a.html": ["https://cdn.example.net/1.jpg", "/img/2.png"], "https://example.com/b.html": []})
    assert read_sitemap(body, "https://example.com/sitemap.xml") == SitemapContents(pages={
        "https://example.com/a.html": ["https://cdn.example.net/1.jpg", "https://example.com/img/2.png"],
        "https://example.com/b.html": [],
    })


def test_an_image_namespace_under_another_prefix():
    body = (f'<urlset xmlns="{URLSET}" xmlns:i="{IMAGE_NS}"><url><loc>https://example.com/p</loc>'
            "<i:image><i:loc> https://example.com/x.webp </i:loc></i:image></url></urlset>").encode()
    assert read_sitemap(body, "https://example.com/").pages == {"https://example.com/p": ["https://example.com/x.webp"]}


def test_a_sitemap_index_lists_sitemaps():
    body = sitemap_index(["/maps/pages.xml.gz", "https://example.com/maps/images.xml"])
    assert read_sitemap(body, "https://example.com/sitemap.xml") == SitemapContents(
        sitemaps=["https://example.com/maps/pages.xml.gz", "https://example.com/maps/images.xml"])


@pytest.mark.parametrize("body", [b"", b"<html><body><p>Hello</p></body></html>", b"User-agent: *", b"\x00\x01\x02"])
def test_what_is_not_a_sitemap(body):
    assert read_sitemap(body, "https://example.com/sitemap.xml") is None


def test_sitemap_bodies_gzipped_or_not():
    xml = urlset({"https://example.com/a.html": []})
    # A .xml.gz file served as XML (as Python's mimetypes, and so the test server, types it).
    gzipped = XmlResponse("https://example.com/s.xml.gz", body=gzip.compress(xml))
    assert sitemap_body(gzipped) == xml
    assert sitemap_body(gzipped, max_size=len(xml) - 1) is None, "unzips to more than the maximum"
    assert sitemap_body(Response("https://example.com/s.xml", body=xml)) == xml
    assert sitemap_body(TextResponse("https://example.com/page", body=b"<html></html>")) is None


def test_sitemaps_named_by_robots_txt():
    robots = b"User-agent: *\nDisallow: /private/\nSitemap: /sitemap.xml\nsitemap: https://example.com/sitemap.xml\n"
    assert sitemaps_in_robots_txt(robots, "https://example.com/robots.txt") == ["https://example.com/sitemap.xml"]


def test_sitemap_argument():
    assert parse_sitemaps(None) == ([], False)
    assert parse_sitemaps("https://example.com/a.xml, auto,https://example.com/b.xml.gz") == (
        ["https://example.com/a.xml", "https://example.com/b.xml.gz"], True)
    with pytest.raises(ArgumentError, match=r"sitemap 'ftp://example.com/s.xml' is not an http\(s\) URL"):
        parse_sitemaps("ftp://example.com/s.xml")


# -- crawls of a served site ------------------------------------------------------------


class SitemapSite:
    def __init__(self, root: Path, server: HTTPTestServer):
        self.root, self.server, self.url = root, server, server.url
        self.images: dict[str, bytes] = {}

    def write(self, path: str, data: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)

    def page(self, path: str, *images: str, links: tuple[str, ...] = ()) -> None:
        for image in images:
            self.images[image] = (png if image.endswith(".png") else jpeg)(image, (40, 30))
            self.write(image, self.images[image])
        self.write(path, "".join(f'<img src="/{image}">' for image in images)
                   + "".join(f'<a href="/{link}">link</a>' for link in links))

    def pages_requested(self) -> list[str]:
        return sorted(r.path for r in self.server.log.requests() if r.path.endswith(".html"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """index.html links nowhere; the sitemaps list the pages: sitemap.xml (a.html, b.html),
    sitemap_index.xml -> maps/pages.xml.gz (c.html) and maps/images.xml (d.html, with an
    image the page does not show, and one it does); robots.txt names the index."""
    root = tmp_path_factory.mktemp("sitemap-site")
    with HTTPTestServer(root) as server:
        site = SitemapSite(root, server)
        site.page("index.html", "img/index.jpg")
        site.page("a.html", "img/a.jpg")
        site.page("b.html", "img/b.jpg", links=("linked.html",))
        site.page("linked.html", "img/linked.jpg")
        site.page("gallery/c.html", "img/c.jpg")
        site.page("gallery/d.html", "img/d.jpg")
        site.images["img/only-in-sitemap.png"] = png("only-in-sitemap", (60, 40))
        site.write("img/only-in-sitemap.png", site.images["img/only-in-sitemap.png"])
        site.write("sitemap.xml", urlset({f"{site.url}a.html": [], f"{site.url}b.html": []}))
        site.write("sitemap_index.xml", sitemap_index(["/maps/pages.xml.gz", f"{site.url}maps/images.xml"]))
        site.write("maps/pages.xml.gz", gzip.compress(urlset({f"{site.url}gallery/c.html": []})))
        site.write("maps/images.xml", urlset({
            f"{site.url}gallery/d.html": [f"{site.url}img/only-in-sitemap.png", f"{site.url}img/d.jpg"]}))
        site.write("stale.xml", urlset({f"{site.url}a.html": [], f"{site.url}gone.html": [f"{site.url}img/gone.jpg"]}))
        site.write("robots.txt", "User-agent: *\nDisallow: /private/\nSitemap: /sitemap_index.xml\n")
        yield site


def stored(site: SitemapSite, result) -> dict[str, tuple[str, str, str]]:
    """Per image path: the page it was found on (a path too), how, and whether it was stored byte for byte."""
    items = {}
    for item in result.items:
        path = item["url"].removeprefix(site.url)
        intact = item["status"] == "downloaded" and item["checksum"] == sha256(site.images[path])
        items[path] = (item["page"].removeprefix(site.url), item["source"], "stored" if intact else item["status"])
    return items


def test_a_sitemap_instead_of_a_start_url(site, run_crawl):
    result = run_crawl(["-a", f"sitemap={site.url}sitemap.xml"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    # Its pages are start pages: at depth 0 their links are not followed.
    assert site.pages_requested() == ["/a.html", "/b.html"]
    assert stored(site, result) == {"img/a.jpg": ("a.html", "img", "stored"), "img/b.jpg": ("b.html", "img", "stored")}
    assert result.stats.get("imgscraper/sitemaps") == 1


def test_depth_counts_from_the_pages_a_sitemap_lists(site, run_crawl):
    result = run_crawl(["-a", f"url={site.url}index.html", "-a", f"sitemap={site.url}sitemap.xml", "-a", "depth=1",
                        "-a", "download=no"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert site.pages_requested() == ["/a.html", "/b.html", "/index.html", "/linked.html"]


def test_an_index_of_gzipped_and_image_sitemaps(site, run_crawl):
    result = run_crawl(["-a", f"sitemap={site.url}sitemap_index.xml"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert site.pages_requested() == ["/gallery/c.html", "/gallery/d.html"]
    # The image only the sitemap lists is taken with its page; the one the page shows keeps its own source.
    assert stored(site, result) == {
        "img/c.jpg": ("gallery/c.html", "img", "stored"),
        "img/d.jpg": ("gallery/d.html", "img", "stored"),
        "img/only-in-sitemap.png": ("gallery/d.html", "sitemap", "stored"),
    }
    assert result.stats.get("imgscraper/sitemaps") == 3


def test_sitemap_auto_reads_robots_txt(site, run_crawl):
    result = run_crawl(["-a", f"url={site.url}index.html", "-a", "sitemap=auto", "-a", "deny=/d\\.html"],
                       servers=[site.server])
    assert result.returncode == 0, result.tail()
    # deny leaves out a page a sitemap lists, and so the images listed with it.
    assert site.pages_requested() == ["/gallery/c.html", "/index.html"]
    assert set(stored(site, result)) == {"img/index.jpg", "img/c.jpg"}
    assert site.server.log.count(path="/maps/images.xml") == 1


def test_a_page_a_sitemap_lists_that_is_gone_is_a_warning(site, run_crawl):
    """Sitemaps go stale: a page one lists that cannot be fetched is not a failed start page."""
    result = run_crawl(["-a", f"sitemap={site.url}stale.xml"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert f"WARNING: Cannot fetch page {site.url}gone.html: HTTP 404" in result.stderr
    assert result.error_lines() == []
    assert set(stored(site, result)) == {"img/a.jpg"}


def test_sitemap_auto_without_sitemap_lines(tmp_path, run_crawl):
    (tmp_path / "index.html").write_text("<p>No images</p>")
    (tmp_path / "robots.txt").write_text("User-agent: *\nDisallow:\n")
    with HTTPTestServer(tmp_path) as server:
        result = run_crawl(["-a", f"url={server.url}", "-a", "sitemap=auto"])
    assert result.returncode == 0, result.tail()
    assert f"WARNING: No Sitemap: line in {server.url}robots.txt (-a sitemap=auto)" in result.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["-a", "sitemap={url}missing.xml"], "ERROR: Cannot read sitemap {url}missing.xml: HTTP 404"),
        (["-a", "sitemap={url}index.html"], "ERROR: Cannot read sitemap {url}index.html: not a sitemap"),
        (["-a", "sitemap=auto"], "Bad argument: sitemap=auto reads the sitemaps the start sites' robots.txt names"),
        (["-a", "sitemap=ftp://127.0.0.1/s.xml"], "Bad argument: sitemap 'ftp://127.0.0.1/s.xml' is not an http(s) URL"),
    ],
    ids=["missing", "not-a-sitemap", "auto-without-url", "not-http"],
)
def test_a_sitemap_that_cannot_be_read_fails_the_crawl_in_one_line(site, run_crawl, args, error):
    result = run_crawl([arg.format(url=site.url) for arg in args], servers=[site.server])
    assert result.returncode == 1, result.tail()
    errors = result.error_lines()
    assert len(errors) == 1 and error.format(url=site.url) in errors[0], result.tail()
