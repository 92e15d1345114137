"""Filters (:mod:`imgscraper.filters`): which pages are followed, which images are kept.

The functions on their own, then ``scrapy crawl images`` against a served site:
what the server was asked for (and how much of a body it sent), the items and
the stats.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from scrapy.http import Headers
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from imgscraper import settings as project_settings
from imgscraper.addons.settingscheck import check_settings
from imgscraper.filters import (
    ImageFilter,
    URLFilter,
    format_of_media_type,
    parse_byte_size,
    parse_formats,
    parse_regex,
)
from imgscraper.spiders.images import ImagesSpider
from tests.support.httpserver import HTTPTestServer
from tests.support.images import jpeg, png
from tests.support.sitegen import make_animated_gif, sha256

# -- the functions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 0), (None, 0), (0, 0), (512, 512), ("20000", 20000), ("20k", 20480), ("20K", 20480), ("20 KB", 20480),
     ("1.5M", 1572864), ("5MiB", 5242880), ("2g", 2 * 1024**3)],
)
def test_byte_sizes(value, expected):
    assert parse_byte_size(value) == expected


@pytest.mark.parametrize("value", ["lots", "20x", "-1", "k", "1e3", "5 M B"])
def test_bad_byte_sizes(value):
    with pytest.raises(ValueError, match="is not a size such as 20000, 20k or 5M"):
        parse_byte_size(value)


def test_formats():
    assert parse_formats("jpeg, PNG,jpg,,webp") == {"JPEG", "PNG", "WEBP"}
    assert parse_formats(["svg", "tif"]) == {"SVG", "TIFF"}
    assert parse_formats("") == parse_formats(None) == frozenset()
    with pytest.raises(ValueError, match="is not a list of formats such as jpeg,png"):
        parse_formats(5)
    with pytest.raises(ValueError, match=r"unknown format 'jpgg' \(formats: jpeg, png, gif, webp, avif, "):
        parse_formats("png,jpgg")


def test_regexes_and_url_filters():
    assert parse_regex("") is None
    with pytest.raises(ValueError, match=r"is not a regular expression \(missing \), unterminated subpattern"):
        parse_regex("(gallery")
    pages = URLFilter(parse_regex("/gallery/"), parse_regex("/drafts/|[?&]sort="))
    assert pages.allows("https://example.com/gallery/2024/")
    assert not pages.allows("https://example.com/blog/") and not pages.allows("https://example.com/gallery/drafts/x")
    assert not pages.allows("https://example.com/gallery/?page=2&sort=date")
    assert URLFilter(deny=parse_regex(r"\.gif$")).allows("https://example.com/a.png")
    assert not URLFilter() and URLFilter(deny=parse_regex("x"))


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("image/jpeg", "JPEG"), ("IMAGE/JPG; charset=binary", "JPEG"), ("image/png", "PNG"), ("image/svg+xml", "SVG"),
     ("image/vnd.microsoft.icon", "ICO"), ("image/*", None), ("image/x-unknown", None),
     ("application/octet-stream", None), ("text/html; charset=utf-8", None), ("", None)],
)
def test_format_of_media_type(content_type, expected):
    assert format_of_media_type(content_type) == expected


def test_image_filter_on_facts_and_headers():
    kept = ImageFilter(frozenset({"JPEG", "PNG"}), min_bytes=1000, max_bytes=5000)
    assert kept.rejection("JPEG", 2000) == ""
    assert kept.rejection("GIF", 2000) == "format GIF"
    assert kept.rejection("PNG", 999) == "999 bytes, under 1000"
    assert kept.rejection("PNG", 5001) == "5001 bytes, over 5000"
    assert kept.rejection_by_headers(Headers({"Content-Type": "image/gif"})) == "format GIF (Content-Type)"
    # What the headers cannot tell is left to the bytes.
    assert kept.rejection_by_headers(Headers({"Content-Type": "application/octet-stream", "Content-Length": "10"})) == ""
    assert kept.rejection_by_headers(Headers({"Content-Length": "9000"})) == "9000 bytes (Content-Length), over 5000"
    # The length of an encoded body is not the image's.
    assert kept.rejection_by_headers(Headers({"Content-Length": "9000", "Content-Encoding": "gzip"})) == ""
    assert not ImageFilter() and not ImageFilter(min_bytes=10).decides_on_headers
    # A body of unknown length is counted as it arrives, unless encoded.
    assert kept.counts_arriving_bytes(Headers({"Content-Type": "image/jpeg"}))
    assert not kept.counts_arriving_bytes(Headers({"Content-Length": "100"}))
    assert not kept.counts_arriving_bytes(Headers({"Content-Encoding": "gzip"}))
    assert kept.rejection_by_arriving_bytes(5000) == "" and kept.rejection_by_arriving_bytes(5001)


def test_bad_filter_settings_are_reported_each_in_one_line():
    settings = Settings()
    settings.setmodule(project_settings)
    settings.setdict({"IMGSCRAPER_DENY": "[a-", "IMGSCRAPER_FORMATS": "png,heic", "IMGSCRAPER_MAX_BYTES": "big",
                      "ITEM_PIPELINES": {}})
    assert check_settings(settings) == [
        "IMGSCRAPER_DENY='[a-' is not a regular expression (unterminated character set at position 0): "
        "pass e.g. -s IMGSCRAPER_DENY=/tag/",
        "IMGSCRAPER_FORMATS='png,heic' names an unknown format 'heic' (formats: jpeg, png, gif, webp, avif, bmp, tiff, "
        "ico, svg): pass e.g. -s IMGSCRAPER_FORMATS=jpeg,png",
        "IMGSCRAPER_MAX_BYTES='big' is not a size such as 20000, 20k or 5M: pass e.g. -s IMGSCRAPER_MAX_BYTES=5M",
    ]


def make_spider(settings: dict | None = None, **arguments: str) -> ImagesSpider:
    crawler = get_crawler(ImagesSpider, settings_dict=settings)
    crawler._apply_settings()
    crawler.settings.frozen = False  # as before Scrapy freezes them, once the spider is built
    return ImagesSpider.from_crawler(crawler, url="https://example.com/", **arguments)


def test_a_filter_argument_wins_over_its_setting():
    settings = {"IMGSCRAPER_FORMATS": "gif", "IMGSCRAPER_MAX_BYTES": "1M", "IMGSCRAPER_DENY": "/tag/"}
    spider = make_spider(settings, formats="jpeg,png", allow="/gallery/", image_deny="logo")
    assert spider.argument_error == ""
    assert ImageFilter.from_settings(spider.crawler.settings) == ImageFilter(frozenset({"JPEG", "PNG"}), 0, 1024**2)
    assert spider.page_filter == URLFilter(re.compile("/gallery/"), re.compile("/tag/"))
    assert spider.image_url_filter == URLFilter(None, re.compile("logo"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"allow": "(gallery"}, "allow '(gallery' is not a regular expression (missing ), unterminated subpattern "
                                "at position 0): pass e.g. -a allow=/gallery/"),
        ({"image_deny": "*.png"}, "image_deny '*.png' is not a regular expression (nothing to repeat at position 0)"),
        ({"formats": "jpeg,raw"}, "formats 'jpeg,raw' names an unknown format 'raw'"),
        ({"min_bytes": "20kb", "max_bytes": "5 megs"}, "max_bytes '5 megs' is not a size such as 20000, 20k or 5M: "
                                                      "pass e.g. -a max_bytes=5M"),
        ({"alow": "/gallery/"}, "unknown argument alow (did you mean allow?): the arguments are url, urls_file, "),
        ({"image_alow": "x", "format": "png"}, "unknown arguments image_alow (did you mean image_allow?), "
                                               "format (did you mean formats?): "),
    ],
)
def test_bad_filter_arguments(arguments, message):
    assert make_spider(**arguments).argument_error.startswith(message)


# -- crawls of a served site -------------------------------------------------------

#: Body bytes of the responses the crawl should stop at their headers.
HUGE = 64 * 1024 * 1024


def huge_body(content_type: str, length: bool = True):
    """A handler of a HUGE body of ``content_type`` that writes until the client hangs up,
    announced by its Content-Length, or (not ``length``) ended by closing the connection."""

    def handler(request) -> bool:
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        if length:
            request.send_header("Content-Length", str(HUGE))
        else:
            request.close_connection = True
        request.end_headers()
        chunk = b"\0" * 65536
        try:
            for _ in range(HUGE // len(chunk)):
                request.wfile.write(chunk)
        except OSError:
            pass
        return True

    return handler


def served(body: bytes, content_type: str | None, length: bool = True):
    """A handler serving ``body``, without Content-Type when None, and ended by closing the
    connection instead of a Content-Length when not ``length``."""

    def handler(request) -> bool:
        request.send_response(200)
        if content_type:
            request.send_header("Content-Type", content_type)
        if length:
            request.send_header("Content-Length", str(len(body)))
        else:
            request.close_connection = True
        request.end_headers()
        request.wfile.write(body)
        return True

    return handler


class FilterSite:
    """A served site: pages under /gallery/, /gallery/drafts/ and /blog/, images of several
    formats and sizes, and responses whose headers tell (or hide) what the body is."""

    def __init__(self, root: Path, server: HTTPTestServer):
        self.root, self.server, self.url = root, server, server.url
        self.files: dict[str, bytes] = {}

    def write(self, path: str, data: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = data.encode() if isinstance(data, str) else data
        target.write_bytes(data)
        self.files[path] = data

    def requested(self, path: str) -> int:
        return self.server.log.count(path=path)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("filter-site")
    with HTTPTestServer(root) as server:
        site = FilterSite(root, server)
        site.write("img/photo.jpg", jpeg("photo", (40, 30)))
        site.write("img/shot.png", png("shot", (40, 30)))
        site.write("img/anim.gif", make_animated_gif("anim", (40, 30)))
        site.write("img/tiny.png", png("tiny", (8, 8)))
        site.write("img/large.jpg", jpeg("large", (800, 600)))
        site.write("logo/brand.png", png("brand", (40, 30)))
        for page in ("gallery/one", "blog/two", "gallery/drafts/three"):
            site.write(f"img/{page.rpartition('/')[2]}.jpg", jpeg(page, (40, 30)))
            site.write(f"{page}.html", f'<img src="/img/{page.rpartition("/")[2]}.jpg">')
        site.write("index.html", (
            '<img src="/img/photo.jpg"><img src="/img/shot.png"><img src="/img/anim.gif"><img src="/logo/brand.png">'
            '<a href="/gallery/one.html">1</a> <a href="/blog/two.html">2</a> <a href="/gallery/drafts/three.html">3</a>'
        ))
        site.write("formats.html", (
            '<img src="/img/photo.jpg"><img src="/img/shot.png"><img src="/img/anim.gif">'
            '<img src="/huge.png"><img src="/octet.jpg"><img src="/untyped.jpg">'
        ))
        site.write("sizes.html", (
            '<img src="/img/photo.jpg"><img src="/img/tiny.png"><img src="/img/large.jpg">'
            '<img src="/huge.jpg"><img src="/streamed.jpg"><img src="/streamed-huge.jpg">'
        ))
        assert len(site.files["img/tiny.png"]) < 1024 < len(site.files["img/photo.jpg"]) < 10240
        assert len(site.files["img/large.jpg"]) > 10240
        server.add_handler("/huge.png", huge_body("image/png"))
        server.add_handler("/huge.jpg", huge_body("image/jpeg"))
        server.add_handler("/streamed-huge.jpg", huge_body("image/jpeg", length=False))
        # A GIF served under a type that names no format: decided on the bytes.
        server.add_handler("/octet.jpg", served(site.files["img/anim.gif"], "application/octet-stream"))
        server.add_handler("/untyped.jpg", served(site.files["img/photo.jpg"], None))
        # Over max_bytes, without a Content-Length: decided on the bytes.
        server.add_handler("/streamed.jpg", served(site.files["img/large.jpg"], "image/jpeg", length=False))
        yield site


def outcomes(site: FilterSite, result) -> dict[str, tuple[str, str]]:
    return {item["url"].removeprefix(site.url): (item["status"], item["reason"]) for item in result.items}


def test_allow_and_deny_choose_the_pages_followed(site, run_crawl):
    result = run_crawl(["-a", f"url={site.url}index.html", "-a", "depth=1", "-a", "allow=/gallery/",
                        "-a", "deny=/drafts/", "-a", "download=no"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    # The start page is crawled whatever the filters say; of its links, only /gallery/ outside /drafts/.
    assert [r.path for r in site.server.log.requests() if r.path.endswith(".html")] == ["/index.html", "/gallery/one.html"]
    assert "decided on downloads" not in result.stderr
    assert {url for url, (status, _) in outcomes(site, result).items() if status == "listed"} == {
        "img/photo.jpg", "img/shot.png", "img/anim.gif", "logo/brand.png", "img/one.jpg"}


def test_image_allow_and_deny_leave_images_unrequested(site, run_crawl):
    result = run_crawl(["-a", f"url={site.url}index.html", "-a", r"image_allow=\.(png|jpg)$",
                        "-a", "image_deny=/logo/"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert outcomes(site, result) == {
        "img/photo.jpg": ("downloaded", ""), "img/shot.png": ("downloaded", ""),
        "img/anim.gif": ("skipped", "filtered"), "logo/brand.png": ("skipped", "filtered"),
    }
    assert site.requested("/img/anim.gif") == site.requested("/logo/brand.png") == 0
    assert site.requested("/img/photo.jpg") == site.requested("/img/shot.png") == 1
    assert result.stats.get("imgscraper/images/skipped/filtered") == 2
    assert sorted(p.read_bytes() for p in result.stored_files()) == sorted(
        [site.files["img/photo.jpg"], site.files["img/shot.png"]])


def test_image_url_filters_in_listing_mode(site, run_crawl):
    result = run_crawl(["-a", f"url={site.url}index.html", "-a", "download=no",
                        "-s", "IMGSCRAPER_IMAGE_DENY=brand|anim", "-a", "formats=gif"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert "WARNING: formats, min_bytes and max_bytes are decided on downloads: download=no lists every image" in result.stderr
    assert outcomes(site, result) == {
        "img/photo.jpg": ("listed", ""), "img/shot.png": ("listed", ""),
        "img/anim.gif": ("skipped", "filtered"), "logo/brand.png": ("skipped", "filtered"),
    }
    assert result.stats.get("imgscraper/images/skipped/filtered") == 2


def test_formats_are_decided_on_the_headers_then_on_the_bytes(site, run_crawl):
    # The argument wins over the setting.
    result = run_crawl(["-a", f"url={site.url}formats.html", "-a", "formats=jpeg,gif",
                        "-s", "IMGSCRAPER_FORMATS=png"], servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert outcomes(site, result) == {
        "img/photo.jpg": ("downloaded", ""), "img/anim.gif": ("downloaded", ""),
        "img/shot.png": ("skipped", "filtered"),
        "huge.png": ("skipped", "filtered"),  # Content-Type: image/png
        "octet.jpg": ("downloaded", ""),  # a GIF under application/octet-stream: on the bytes
        "untyped.jpg": ("downloaded", ""),
    }
    (huge,) = site.server.log.requests(path="/huge.png")
    assert huge.bytes_sent < HUGE / 4, f"{huge.bytes_sent} bytes of the unwanted PNG sent"
    assert {p.read_bytes() for p in result.stored_files()} == {site.files["img/photo.jpg"], site.files["img/anim.gif"]}
    assert result.stats.get("imgscraper/images/skipped/filtered") == 2

    again = run_crawl(["-a", f"url={site.url}formats.html", "-a", "formats=png"], servers=[site.server])
    assert outcomes(site, again)["octet.jpg"] == ("skipped", "filtered"), "a GIF whatever its Content-Type"


def test_sizes_are_decided_on_content_length_then_on_the_bytes(site, run_crawl):
    result = run_crawl(["-a", f"url={site.url}sizes.html", "-a", "min_bytes=1k", "-a", "max_bytes=10k"],
                       servers=[site.server])
    assert result.returncode == 0, result.tail()
    assert outcomes(site, result) == {
        "img/photo.jpg": ("downloaded", ""),
        "img/tiny.png": ("skipped", "filtered"),
        "img/large.jpg": ("skipped", "filtered"),
        "huge.jpg": ("skipped", "filtered"),
        "streamed.jpg": ("skipped", "filtered"),
        "streamed-huge.jpg": ("skipped", "filtered"),
    }
    # Stopped at its Content-Length; without one, once the bytes received are over the maximum.
    for path in ("/huge.jpg", "/streamed-huge.jpg"):
        (huge,) = site.server.log.requests(path=path)
        assert huge.bytes_sent < HUGE / 4, f"{huge.bytes_sent} bytes of {path} sent"
    assert [p.read_bytes() for p in result.stored_files()] == [site.files["img/photo.jpg"]]
    assert result.stats.get("imgscraper/images/skipped/filtered") == 5
    assert [i["checksum"] for i in result.items if i["status"] == "downloaded"] == [sha256(site.files["img/photo.jpg"])]


def test_an_image_stored_earlier_is_filtered_without_a_request(site, run_crawl, tmp_path):
    store = tmp_path / "store"
    first = run_crawl(["-a", f"url={site.url}formats.html"], store=store)
    assert first.returncode == 0, first.tail()
    again = run_crawl(["-a", f"url={site.url}formats.html", "-a", "formats=png"], store=store, servers=[site.server])
    assert again.returncode == 0, again.tail()
    assert outcomes(site, again)["img/photo.jpg"] == ("skipped", "filtered")
    assert outcomes(site, again)["img/shot.png"] == ("uptodate", "")
    assert site.requested("/img/photo.jpg") == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["-a", "allow=(gallery"], "Bad argument: allow '(gallery' is not a regular expression"),
        (["-a", "max_bytes=5 megs"], "Bad argument: max_bytes '5 megs' is not a size"),
        (["-a", "alow=/gallery/"], "Bad argument: unknown argument alow (did you mean allow?)"),
        (["-s", "IMGSCRAPER_IMAGE_DENY=*.gif"], "Bad setting: IMGSCRAPER_IMAGE_DENY='*.gif' is not a regular expression"),
        (["-s", "IMGSCRAPER_FORMATS=heic"], "Bad setting: IMGSCRAPER_FORMATS='heic' names an unknown format 'heic'"),
    ],
    ids=["bad-regex", "bad-size", "misspelt-argument", "bad-regex-setting", "bad-format-setting"],
)
def test_bad_filters_stop_the_crawl_in_one_line(site, run_crawl, args, error):
    result = run_crawl(["-a", f"url={site.url}index.html", *args], servers=[site.server])
    assert result.returncode == 1, result.tail()
    assert len(result.error_lines()) == 1 and error in result.error_lines()[0], result.tail()
    assert "Traceback" not in result.stderr
    assert len(site.server.log) == 0, "nothing is requested"
