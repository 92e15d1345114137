"""The gallery (``index.html`` in the store), checked in a real headless
Chromium: it loads from ``file://`` with no console error, every stored image
renders, and markup or script planted in a page's title, alt text or image
URL stays inert text."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imgscraper.extensions.gallery import GalleryImage, GallerySection, build_gallery, local_store, render_gallery
from imgscraper.pipelines.records import ImageRecord, SQLiteRecord
from tests.support.chromium import Chromium
from tests.support.images import png
from tests.support.sitegen import serve_site

PLANTED_TITLE = "Evil </title><script>window.pwned = 'title'</script> & co"
PLANTED_ALT = "\"><img src=x onerror=\"window.pwned='alt'\"><b>bold</b>"
PLANTED_QUERY = "?q=%22%3E%3Cscript%3Ewindow.pwned='url'%3C/script%3E"
EVIL_PAGE = f"""<!DOCTYPE html><html><head><title>{PLANTED_TITLE.replace('&', '&amp;').replace('<', '&lt;')}</title></head>
<body><img src="img/logo.png{PLANTED_QUERY}" alt="{PLANTED_ALT.replace('&', '&amp;').replace('"', '&quot;')}"></body></html>
"""

FIGURE_PAGE = """<!DOCTYPE html><html><head><title>Figures</title></head><body>
<figure><img src="img/logo.png?figure" alt="Our  logo" title="The logo">
<figcaption>The logo, <i>2026</i> edition</figcaption></figure></body></html>
"""

EVERY_IMAGE_RENDERS = """Promise.all([...document.images].map(img => {
  img.loading = 'eager';  // the gallery loads lazily: fetch them all now
  return img.decode().then(() => [img.getAttribute('src'), img.naturalWidth], () => [img.getAttribute('src'), 0]);
}))"""
INERT = """({
  pwned: typeof window.pwned,
  scripts: document.querySelectorAll('script').length,
  handlers: [...document.querySelectorAll('*')].flatMap(el => [...el.attributes].map(a => a.name))
    .filter(name => name.startsWith('on')),
  links: [...document.querySelectorAll('a[href]')].map(a => a.protocol).filter(p => !['http:', 'https:', 'file:'].includes(p)),
  text: document.body.textContent,
})"""


@dataclass
class GalleryStore:
    path: Path
    first: Any  # the CrawlResult of each crawl
    second: Any

    def __truediv__(self, name: str) -> Path:
        return self.path / name


@pytest.fixture(scope="module")
def browser(chromium):
    with Chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def store(tmp_path_factory, run_crawl):
    """Two crawls into one store: the test site (with thumbnails), then a page with planted markup and a
    page with a captioned figure."""
    tmp = tmp_path_factory.mktemp("gallery")
    store = tmp / "store"
    with serve_site(tmp / "www", other_site=False) as srv:
        (srv.root / "evil.html").write_text(EVIL_PAGE, encoding="utf-8")
        (srv.root / "figure.html").write_text(FIGURE_PAGE, encoding="utf-8")
        thumbs = ["-s", 'IMAGES_THUMBS={"small": [120, 120]}']
        first = run_crawl(["-a", f"url={srv.url}", "-a", "depth=2", *thumbs], store=store, out_dir=tmp / "1")
        assert first.returncode == 0, first.tail()
        second = run_crawl(["-a", f"url={srv.url}evil.html,{srv.url}figure.html", *thumbs], store=store,
                           out_dir=tmp / "2")
        assert second.returncode == 0, second.tail()
    assert f"Gallery: {(store / 'index.html').resolve().as_uri()}" in second.stderr
    return GalleryStore(store, first, second)


@pytest.fixture(scope="module")
def page(store, browser):
    browser.open((store / "index.html").as_uri())
    errors = browser.console_errors()
    figures = browser.evaluate("""[...document.querySelectorAll('section')].map(s => ({
        page: s.querySelector('h2').textContent,
        figures: [...s.querySelectorAll('figure')].map(f => ({
            file: f.querySelector('a.tile').getAttribute('href'),
            src: (f.querySelector('img') || {}).getAttribute?.('src') || '',
            loading: (f.querySelector('img') || {}).loading || '',
            alt: (f.querySelector('img') || {}).alt || '',
            title: (f.querySelector('img') || {}).title || '',
            caption: f.querySelector('figcaption').textContent}))}))""")
    inert = browser.evaluate(INERT)
    rendered = browser.evaluate(EVERY_IMAGE_RENDERS)
    return {"errors": errors, "rendered": rendered, "inert": inert, "sections": figures}


def stored_files(store: GalleryStore) -> set[str]:
    return {f"full/{p.name}" for p in (store / "full").iterdir() if p.is_file()}


def test_loads_without_console_errors(page):
    assert page["errors"] == []


def test_every_stored_image_is_shown_and_renders(store, page):
    shown = {fig["file"] for section in page["sections"] for fig in section["figures"]}
    assert shown == stored_files(store), "the gallery must show every file of the store, from both crawls"
    broken = [src for src, width in page["rendered"] if width <= 0]
    assert not broken, f"images that do not render: {broken}"
    assert len(page["rendered"]) >= len(shown)


def test_grouped_by_page_with_details(store, page):
    items = store.first.items + store.second.items
    stored = [item for item in items if item["status"] == "downloaded" and not item["url"].startswith("data:")]
    sections = {section["page"]: section["figures"] for section in page["sections"]}
    assert "Test site" in sections, list(sections)
    for item in stored:
        groups = [figs for figs in sections.values() if any(f["file"] == item["path"] for f in figs)]
        assert groups, f"{item['path']} not shown"
        fig = next(f for figs in groups for f in figs if f["file"] == item["path"])
        assert f"{item['width']}×{item['height']}" in fig["caption"], fig
        assert item["format"] in fig["caption"], fig
        assert fig["loading"] == "lazy"


def test_shows_alt_title_and_caption_of_the_crawled_page(store, page):
    sections = {section["page"]: section["figures"] for section in page["sections"]}
    assert "Figures" in sections, list(sections)
    [figure] = sections["Figures"]
    assert (figure["alt"], figure["title"]) == ("Our logo", "The logo")
    assert "Our logo" in figure["caption"] and "The logo, 2026 edition" in figure["caption"], figure
    assert not (store / ".imgscraper" / "gallery.sqlite3").exists(), "one record holds the context, no second database"


def test_uses_thumbnails(store, page):
    figures = [fig for section in page["sections"] for fig in section["figures"]]
    raster = [fig for fig in figures if not fig["file"].endswith(".svg")]
    assert raster and all(fig["src"].startswith("thumbs/small/") for fig in raster), raster[:3]
    assert all((store / fig["src"]).is_file() for fig in raster)


def test_planted_markup_stays_inert_text(page):
    inert = page["inert"]
    assert inert["pwned"] == "undefined"
    assert inert["scripts"] == 0 and inert["handlers"] == [] and inert["links"] == []
    assert PLANTED_TITLE in inert["text"], "the planted title should be shown as text"
    assert PLANTED_ALT in inert["text"], "the planted alt text should be shown as text"


def test_injection_in_record_fields_stays_inert(tmp_path, browser):
    """URLs, titles and alt text straight from the record, not sanitized by any crawl."""
    image = GalleryImage(
        path="full/a.png", url="javascript:window.pwned='href'//\"><script>window.pwned=1</script>",
        page="https://e.example/\"><script>window.pwned='page'</script>", format="PNG<script>", width=1, height=1,
        alt="<svg onload=\"window.pwned='svg'\">",
    )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.png").write_bytes(png("a", (4, 4)))
    section = GallerySection(image.page, "<iframe src=javascript:window.pwned=2>", [image])
    text = "".join(render_gallery([section], files=1, pages=1, size=0))
    (tmp_path / "index.html").write_text(text, encoding="utf-8")
    browser.open((tmp_path / "index.html").as_uri())
    inert = browser.evaluate(INERT)
    assert browser.console_errors() == []
    assert inert["pwned"] == "undefined" and inert["scripts"] == 0 and inert["handlers"] == [], inert
    assert inert["links"] == [], "a javascript: URL must not become a link"
    assert browser.evaluate("document.querySelectorAll('iframe, svg').length") == 0
    assert "<iframe src=javascript:window.pwned=2>" in inert["text"]


def test_ten_thousand_images(tmp_path, browser):
    """10,000 images on 100 pages: built, and opened by Chromium fetching only what is on screen."""
    (tmp_path / "full").mkdir()
    (tmp_path / "seed.png").write_bytes(png("seed", (64, 48)))
    record = SQLiteRecord.in_store(tmp_path)
    record.close()
    size = (tmp_path / "seed.png").stat().st_size
    rows = []
    for n in range(10_000):
        path = f"full/{n:08x}-0000-4000-8000-000000000000.png"
        os.link(tmp_path / "seed.png", tmp_path / path)
        rows.append((f"https://e.example/img/{n}.png", path, "x", "PNG", 64, 48, size, f"https://e.example/p/{n // 100}",
                     "", "", 0.0))
    with sqlite3.connect(tmp_path / SQLiteRecord.FILENAME) as db:
        db.executemany(
            "INSERT INTO images (url, path, checksum, format, width, height, size, page, etag, last_modified,"
            f" stored_at) VALUES ({', '.join('?' * len(rows[0]))})",
            rows,
        )
    index = build_gallery(tmp_path)
    assert len(re.findall(r'<img [^>]*loading="lazy"', index.read_text(encoding="utf-8"))) == 10_000
    load_time = browser.open(index.as_uri())
    assert browser.evaluate("document.querySelectorAll('figure').length") == 10_000
    assert browser.console_errors() == []
    fetched = [url for url in browser.requested_urls() if url.endswith(".png")]
    assert 0 < len(fetched) < 200, f"{len(fetched)} images fetched on opening: lazy loading is not working"
    print(f"10,000-image gallery: {index.stat().st_size / 1e6:.1f} MB, load event after {load_time:.2f} s")


def test_gallery_only_for_local_stores():
    class S(dict):
        get = dict.get
    assert local_store(S(IMAGES_STORE="s3://bucket/images")) is None
    assert local_store(S(IMAGES_STORE="file:///data/images")) == Path("/data/images")
    assert local_store(S(IMAGES_STORE="images")) == Path("images")


def test_gallery_off(site_server_module, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={site_server_module.url}", "-s", "IMGSCRAPER_GALLERY=false"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert result.stored_files() and not (result.store / "index.html").exists()


@pytest.mark.parametrize("existing", [None, "<p>the gallery of earlier crawls</p>"], ids=["new-store", "existing-gallery"])
def test_an_unreachable_start_page_leaves_the_gallery_as_it_was(run_crawl, tmp_path, existing):
    store = tmp_path / "store"
    if existing is not None:
        store.mkdir()
        (store / "index.html").write_text(existing, encoding="utf-8")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        result = run_crawl(["-a", f"url=http://127.0.0.1:{port}/"], store=store, out_dir=tmp_path)
    assert result.returncode == 1, result.tail()
    assert "Gallery:" not in result.stderr, result.tail()
    if existing is None:
        assert not (store / "index.html").exists(), "an empty gallery was written"
    else:
        assert (store / "index.html").read_text(encoding="utf-8") == existing


def test_titles_and_alt_text_noted_by_earlier_versions_still_shown(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.png").write_bytes(png("a", (8, 6)))
    record = SQLiteRecord.in_store(tmp_path)
    record.put(ImageRecord(url="https://e.example/a.png", path="full/a.png", checksum="c", format="PNG", width=8,
                           height=6, size=1, page="https://e.example/"))
    record.close()
    with sqlite3.connect(tmp_path / ".imgscraper" / "gallery.sqlite3") as notes:
        notes.execute("CREATE TABLE pages (url TEXT PRIMARY KEY, title TEXT)")
        notes.execute("CREATE TABLE alts (url TEXT PRIMARY KEY, alt TEXT)")
        notes.execute("INSERT INTO pages VALUES ('https://e.example/', 'Old title')")
        notes.execute("INSERT INTO alts VALUES ('https://e.example/a.png', 'Old alt')")
    notes.close()
    text = build_gallery(tmp_path).read_text(encoding="utf-8")
    assert ">Old title</a></h2>" in text and 'alt="Old alt"' in text


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """(heading text, the files linked) of each section of a gallery page."""
    found = []
    for section in re.findall(r"<section>(.*?)</section>", text, re.S):
        heading = re.sub(r"<[^>]+>", "", re.search(r"<h2>(.*?)</h2>", section).group(1))
        found.append((heading, re.findall(r'<a class="tile" href="([^"]+)"', section)))
    return found


def test_what_the_record_and_the_folder_hold_one_section_per_page(tmp_path):
    """Pages in order, each file once per page; a file the record names but the store lost is left
    out (and not counted); files the record does not name, and recorded images of no page, last."""
    (tmp_path / "full").mkdir()
    for name in ("a", "b", "c", "loose", "nopage"):
        (tmp_path / "full" / f"{name}.png").write_bytes(png(name, (8, 6)))
    record = SQLiteRecord.in_store(tmp_path)
    rows = [("https://e.example/a.png", "full/a.png", "https://e.example/2", "Page two"),
            ("https://e.example/a2.png", "full/a.png", "https://e.example/2", "Page two"),  # same bytes, same file
            ("https://e.example/b.png", "full/b.png", "https://e.example/1", "Page one"),
            ("https://e.example/c.png", "full/c.png", "https://e.example/2", ""),
            ("https://e.example/gone.png", "full/gone.png", "https://e.example/3", "Page three"),
            ("https://e.example/n.png", "full/nopage.png", "", "")]
    for url, path, page, title in rows:
        record.put(ImageRecord(url=url, path=path, checksum=url, format="PNG", width=8, height=6, size=100, page=page,
                               page_title=title))
    record.close()
    text = build_gallery(tmp_path).read_text(encoding="utf-8")
    assert "<h1>5 images from 2 pages</h1>" in text
    assert _sections(text) == [
        ("Page one", ["full/b.png"]),
        ("Page two", ["full/a.png", "full/c.png"]),
        ("Images not found on any recorded page", ["full/loose.png", "full/nopage.png"]),
    ]


def test_an_unreadable_record_leaves_a_gallery_of_the_files(tmp_path, caplog):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a.png").write_bytes(png("a", (8, 6)))
    (tmp_path / SQLiteRecord.FILENAME).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / SQLiteRecord.FILENAME).write_bytes(b"not a database, " * 512)
    text = build_gallery(tmp_path).read_text(encoding="utf-8")
    assert _sections(text) == [("Images not found on any recorded page", ["full/a.png"])]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "is unreadable" in warnings[0], warnings
