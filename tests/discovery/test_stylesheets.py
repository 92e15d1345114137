"""Background images named only in external style sheets, crawled for real."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.images import png


@pytest.fixture
def css_site(tmp_path):
    files = {
        "index.html": b'<html><head><link rel="stylesheet" href="/css/site.css"></head><body><p>hi</p>'
        b'<style>@import "css/inline.css";</style></body></html>',
        "css/inline.css": b".banner{background:url(/img/banner.png)}",
        "css/site.css": b'@import url("more.css");\n.hero{background:url(../img/hero.png)}\n'
        b"@font-face{font-family:f;src:url(../fonts/f.woff2)}",
        "css/more.css": b".card{background-image:url('/img/card.png')}",
        "img/hero.png": png("hero"),
        "img/card.png": png("card"),
        "img/banner.png": png("banner"),
        "robots.txt": b"User-agent: *\nDisallow:\n",
    }
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with HTTPTestServer(tmp_path) as server:
        yield server, {server.url_for(f"img/{n}"): hashlib.sha256(files[f"img/{n}"]).hexdigest() for n in ("hero.png", "card.png", "banner.png")}


def test_images_from_stylesheets_and_their_imports_are_stored(css_site, run_crawl):
    """Sheets linked by the page, imported by them, and imported by the page's <style>."""
    server, expected = css_site
    result = run_crawl(["-a", f"url={server.url}"])
    assert result.returncode == 0, result.tail()
    stored = {i["url"]: i["checksum"] for i in result.items if i["status"] == "downloaded"}
    assert stored == expected
    assert all(i["page"] == server.url for i in result.items)
    assert server.log.count(path="/fonts/f.woff2") == 0


def test_stylesheets_are_not_fetched_when_the_setting_is_off(css_site, run_crawl):
    server, _ = css_site
    result = run_crawl(["-a", f"url={server.url}", "-s", "IMGSCRAPER_STYLESHEETS=False"])
    assert result.returncode == 0 and result.items == []
    assert server.log.count(path_prefix="/css/") == 0
