"""The ``images`` spider: argument parsing, and its callback on recorded pages.

The callback tests replay responses with scrapy-mock from cassettes in
``tests/fixtures/cassettes``, recorded from the project's generated test site
(``python -m tests.support.record_cassettes``). The site is deterministic, so the
expected images are computed by generating it again.
"""

from __future__ import annotations

import pytest
from scrapy.http import Request
from scrapy.utils.test import get_crawler

from imgscraper.discovery.references import ImageRef
from imgscraper.items import ImageItem
from imgscraper.exceptions import ArgumentError
from imgscraper.spiders.arguments import parse_click, parse_depth, parse_start_urls, parse_yes_no
from imgscraper.spiders.images import ImagesSpider
from imgscraper.spiders.scope import site_in_domains, site_of
from tests.support.sitegen import RECORDED_BASE, Site, generate_recorded_site


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    return generate_recorded_site(tmp_path_factory.mktemp("recorded-site"))


def make_spider(srcset: str = "largest", **arguments: str) -> ImagesSpider:
    crawler = get_crawler(ImagesSpider, settings_dict={"IMGSCRAPER_SRCSET": srcset})
    crawler._apply_settings()
    return ImagesSpider.from_crawler(crawler, **arguments)


def split_output(output) -> tuple[list[ImageItem], list[Request]]:
    output = list(output)
    return [o for o in output if isinstance(o, ImageItem)], [o for o in output if isinstance(o, Request)]


# -- callbacks on recorded responses -----------------------------------------


@pytest.mark.parametrize("url", [RECORDED_BASE])
def test_start_page_yields_every_image_once_and_no_links_at_depth_0(response, site):
    items, requests = split_output(make_spider(url=RECORDED_BASE).parse(response))
    assert [i.url for i in items] == list(dict.fromkeys(i.url for i in items)), "each URL once"
    assert {i.url for i in items} == site.discovered_at(0)
    assert all(i.page == RECORDED_BASE and i.status == "listed" for i in items)
    assert requests == []


@pytest.mark.parametrize("url", [RECORDED_BASE])
def test_start_page_follows_same_site_links_under_depth(response, site):
    _, requests = split_output(make_spider(url=RECORDED_BASE, depth="1").parse(response))
    followed = {r.url for r in requests}
    assert set(site.pages[1]) <= followed
    assert all(site.on_host(u) for u in followed), "pages on other hosts are not followed"
    assert not followed & set(site.external_pages)


@pytest.mark.parametrize("url", [RECORDED_BASE])
def test_a_page_yields_its_links_before_its_images(response, site):
    """Scrapy handles a callback's output CONCURRENT_ITEMS at a time, and an image item holds its place
    until it is stored: links yielded last would reach the scheduler only after most images."""
    output = list(make_spider(url=RECORDED_BASE, depth="1").parse(response))
    kinds = ["request" if isinstance(o, Request) else "item" for o in output]
    assert kinds.count("request") >= len(site.pages[1]) and kinds.count("item") > 0
    assert kinds == sorted(kinds, key=lambda kind: kind == "item"), kinds


@pytest.mark.parametrize("url", [RECORDED_BASE])
def test_srcset_all_takes_every_candidate(response, site):
    items, _ = split_output(make_spider("all", url=RECORDED_BASE).parse(response))
    assert {i.url for i in items} == site.discovered_at(0, srcset_all=True)


@pytest.mark.parametrize("url", [RECORDED_BASE + "a.html"])
def test_images_seen_on_an_earlier_page_are_not_repeated(response, site):
    spider = make_spider(url=RECORDED_BASE, depth="2")
    list(spider.new_images([ImageRef(url, "img") for url in site.discovered_at(0)], RECORDED_BASE))
    items, _ = split_output(spider.parse(response))
    on_page = {u for u, info in site.images.items() if response.url in info.pages and info.outcome in ("stored", "skipped", "failed")}
    assert {i.url for i in items} == on_page - site.discovered_at(0)


# -- arguments ----------------------------------------------------------------


def test_start_urls_from_argument_and_file(tmp_path):
    urls_file = tmp_path / "sites.txt"
    urls_file.write_text("# my sites\nhttps://b.example/\n\nhttps://a.example/\n", encoding="utf-8")
    assert parse_start_urls("https://a.example/, http://c.example/x", str(urls_file)) == [
        "https://a.example/",
        "http://c.example/x",
        "https://b.example/",
    ]


def test_start_urls_typed_without_a_scheme(tmp_path, caplog):
    urls_file = tmp_path / "sites.txt"
    urls_file.write_text("www.example.co.uk:8443/gallery?page=2\n", encoding="utf-8")
    with caplog.at_level("INFO"):
        urls = parse_start_urls("example.com, 127.0.0.1:8080/p, localhost, [::1]:8000/", str(urls_file))
    assert urls == [
        "https://example.com",
        "http://127.0.0.1:8080/p",
        "http://localhost",
        "http://[::1]:8000/",
        "https://www.example.co.uk:8443/gallery?page=2",
    ]
    assert "Start URL 'example.com' has no scheme: crawling https://example.com" in caplog.text


@pytest.mark.parametrize(
    ("url", "urls_file", "message"),
    [
        (None, None, "no start URL"),
        ("ftp://example.com/", None, r"not an http\(s\) URL"),
        ("mailto:photos@example.com", None, r"not an http\(s\) URL"),
        ("/var/www/index.html", None, r"not an http\(s\) URL"),
        ("http://[::1", None, r"malformed \(Invalid IPv6 URL\)"),
        ("https://example.com:99999/", None, r"malformed \(Port out of range"),
        ("https://", None, r"not an http\(s\) URL"),
        (None, "/nonexistent/sites.txt", "cannot read urls_file"),
    ],
)
def test_bad_start_urls(url, urls_file, message):
    with pytest.raises(ArgumentError, match=message):
        parse_start_urls(url, urls_file)


@pytest.mark.parametrize(("value", "expected"), [("0", 0), (" 3 ", 3), (2, 2)])
def test_depth(value, expected):
    assert parse_depth(value) == expected


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", ""])
def test_bad_depth(value):
    with pytest.raises(ArgumentError, match="not a non-negative integer"):
        parse_depth(value)


def test_yes_no():
    assert parse_yes_no("download", "No") is False and parse_yes_no("download", "yes") is True
    with pytest.raises(ArgumentError, match="download 'maybe' is not yes or no"):
        parse_yes_no("download", "maybe")


def test_click_is_a_css_selector_that_needs_rendering():
    assert parse_click(None, None) == "" and parse_click(None, "no") == ""
    assert parse_click("button.more:not([disabled])", None) == "button.more:not([disabled])"
    assert parse_click('button:has-text("More")', "yes") == 'button:has-text("More")'  # a browser's pseudo-class
    with pytest.raises(ArgumentError, match=r"click 'button\[' is not a CSS selector"):
        parse_click("button[", None)
    with pytest.raises(ArgumentError, match="click '' is not a CSS selector"):
        parse_click("", None)
    with pytest.raises(ArgumentError, match="render is 'no'"):
        parse_click(".more", "no")


def test_click_implies_render_unless_render_is_given():
    assert make_spider(url="https://example.com/").render is False
    spider = make_spider(url="https://example.com/", click=".more")
    assert (spider.render, spider.click) == (True, ".more")
    assert "render is 'off'" in make_spider(url="https://example.com/", click=".more", render="off").argument_error


def test_pages_are_followed_on_the_start_sites_and_extra_domains():
    spider = make_spider(url="https://www.example.com/", follow_domains="blog.example.org")
    assert spider.should_follow("http://example.com/a") and spider.should_follow("https://img.example.com/b")
    assert spider.should_follow("https://blog.example.org/c")
    assert not spider.should_follow("https://example.org/") and not spider.should_follow("https://notexample.com/")
    assert make_spider(url="https://example.com/", follow_domains="*").should_follow("https://anything.test/")
    assert site_in_domains("a.b.c", ["b.c"]) and not site_in_domains("ab.c", ["b.c"])
    assert site_of("https://WWW.Example.com:443/x") == "example.com" and site_of("http://h:8080/") == "h:8080"
    assert not make_spider(url="http://127.0.0.1:8719/").should_follow("http://127.0.0.1:9/other.html")


def test_scrapyd_arguments_are_accepted():
    """Scrapyd passes its own arguments with a leading underscore (scrapyd.webservice.Schedule:
    ``_job``, and ``_version`` when asked for); its ``setting`` parameters become ``-s``."""
    spider = make_spider(url="https://example.com/", _job="abc123", _version="r7")
    assert spider.argument_error == "" and spider._job == "abc123"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"downlaod": "no"}, "unknown argument downlaod (did you mean download?): the arguments are url, urls_file, "),
        ({"dept": "1"}, "unknown argument dept (did you mean depth?)"),
        ({"URL": "https://example.org/"}, "unknown argument URL (did you mean url?)"),
        ({"colour": "red", "rendr": "yes"}, "unknown arguments colour, rendr (did you mean render?): "),
    ],
)
def test_unknown_arguments_are_bad_arguments_with_a_hint(arguments, message):
    assert make_spider(url="https://example.com/", **arguments).argument_error.startswith(message)


def test_argument_names_are_the_spiders_keyword_parameters():
    names = ImagesSpider.argument_names()
    assert names[:6] == ("url", "urls_file", "depth", "follow_domains", "download", "render")
    assert make_spider(**dict.fromkeys(names, "")).argument_error == (
        "no start URL: pass -a url=https://example.com (or -a urls_file=FILE, -a sitemap=URL)")


def test_bad_argument_is_kept_for_start_to_report():
    assert "not a non-negative integer" in make_spider(url="https://example.com/", depth="x").argument_error
