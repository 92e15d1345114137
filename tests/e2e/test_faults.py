"""Fault injection: a hostile site (:mod:`faultsite`) on a real HTTP server.

One crawl (depth 1) covers every image fault, page fault, URL spelling and
safety case; each is a parametrized test on that crawl's items, stats, store
and what the server saw. The link trap and IDN hosts get crawls of their own.
"""

from __future__ import annotations

import collections
import hashlib
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support.faultsite import CRAWL_SETTINGS, FaultSite
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png

STORE_NAME = re.compile(r"^full/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(png|jpg|gif)$")


def settings_args(**extra: str) -> list[str]:
    return [arg for key, value in {**CRAWL_SETTINGS, **extra}.items() for arg in ("-s", f"{key}={value}")]


@pytest.fixture(scope="module")
def fault_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("faultsite")
    with HTTPTestServer(root) as server:
        yield FaultSite(server, root).install()


@pytest.fixture(scope="module")
def crawl(fault_site, run_crawl, tmp_path_factory):
    fault_site.reset()
    out = tmp_path_factory.mktemp("fault-crawl")
    # A line for every failure (IMGSCRAPER_FAILURE_LINES=0): the tests below find each fault's line.
    return run_crawl(["-a", f"url={fault_site.url}", "-a", "depth=1", *settings_args(IMGSCRAPER_FAILURE_LINES="0")],
                     out_dir=out, servers=[fault_site.server])


def fault_by_name(site: FaultSite, name: str):
    return next(f for f in site.faults if f.name == name)


# Names of the faults (kept in sync with faultsite by test_every_fault_has_a_test).
IMAGE_FAULTS = [
    "reset-once.png", "reset-always.png", "stall-once.png", "stall-always.png", "500-then-ok.png",
    "503-twice-then-ok.png", "503-always.png", "429-retry-after.png", "429-retry-after-date.png",
    "429-retry-after-too-long.png", "404.png", "410.png", "redirect-chain.png", "redirect-loop.png",
    "redirect-to-file.png", "no-content-type.png", "wrong-content-type.png", "png-named-jpeg.gif",
    "html-as.jpg", "truncated.png", "zero-bytes.png", "too-large.png", "too-large-streamed.png",
    "decompression-bomb.png", "gzip-bomb.png",
]
PAGE_FAULTS = [
    "caf\u00e9-latin1.png", "meta-charset.png", "bad-utf8.png", "malformed.png", "end-of-large-page.png",
    "my photo.png", "\u00fcber-\u65e5\u672c.png", "Mixed-Case.PNG", "fragment.png", "same.png",
]


def test_every_fault_has_a_test(fault_site):
    assert [f.name for f in fault_site.faults] == IMAGE_FAULTS + PAGE_FAULTS


def test_crawl_completes(crawl):
    assert crawl.returncode == 0, crawl.tail()
    assert crawl.stats.get("finish_reason") == "finished"
    assert "Traceback" not in crawl.stderr, crawl.tail()


@pytest.mark.parametrize("name", IMAGE_FAULTS + PAGE_FAULTS)
def test_fault(name, fault_site, crawl):
    """Each fault: the item's status and reason, the tries the server saw, the stored bytes."""
    fault = fault_by_name(fault_site, name)
    item = crawl.by_url().get(fault.url)
    assert item is not None, f"no item for {fault.url}; items: {sorted(crawl.by_url())}"
    assert (item["status"], item["reason"]) == (fault.status, fault.reason), item
    tries = [r for r in crawl.requests if unquote(r.url_path) == unquote(fault.path)]
    if fault.tries is not None:
        assert len(tries) == fault.tries, [(r.path, r.status) for r in tries]
    if fault.status == "downloaded":
        stored = crawl.store / item["path"]
        assert STORE_NAME.match(item["path"]), item["path"]
        assert stored.read_bytes() == fault.body
        assert item["checksum"] == hashlib.sha256(fault.body).hexdigest()
    else:
        assert item["path"] == ""


def test_one_log_line_per_failure(fault_site, crawl):
    """Each failed or skipped image is one log line (WARNING, or DEBUG for a skip), never more."""
    lines = [line for line in crawl.stderr.splitlines() if " WARNING: " in line or " ERROR: " in line]
    for fault in fault_site.faults:
        if fault.status == "failed":
            mentions = [line for line in lines if fault.url + " " in line + " " or fault.url + ">" in line]
            assert len(mentions) == 1, (fault.name, mentions)


def test_failures_counted_by_reason(fault_site, crawl):
    """``imgscraper/images/<status>/<reason>`` counts every failed or skipped item."""
    by_reason = collections.Counter(
        (item["status"], item["reason"]) for item in crawl.items if item["status"] in ("failed", "skipped")
    )
    assert by_reason, "no failures at all"
    for (status, reason), count in by_reason.items():
        assert crawl.stats.get(f"imgscraper/images/{status}/{reason}") == count, (status, reason)
    expected = collections.Counter((f.status, f.reason) for f in fault_site.faults if f.status != "downloaded")
    assert expected <= by_reason


def test_store_holds_only_good_images(fault_site, crawl):
    """No partial, temporary or junk file: exactly one file per distinct good image."""
    files = [p.relative_to(crawl.store).as_posix() for p in crawl.store.rglob("*") if p.is_file()]
    images = [f for f in files if not f.startswith(".imgscraper/") and f != "index.html"]
    assert all(STORE_NAME.match(f) for f in images), images
    stored = {hashlib.sha256((crawl.store / f).read_bytes()).hexdigest() for f in images}
    good = {hashlib.sha256(f.body).hexdigest() for f in fault_site.faults if f.status == "downloaded"}
    assert good <= stored
    extra = stored - good
    # The only other good image is the safety page's (one file for all its crafted URLs).
    assert len(extra) == 1


def test_retry_after_is_honoured(fault_site, crawl):
    for name in ("429-retry-after.png", "429-retry-after-date.png"):
        first, second = [r for r in crawl.requests if r.url_path == fault_by_name(fault_site, name).path]
        assert first.status == 429 and second.status == 200
        # Retry-After: 2 (seconds, or a date 2 s ahead at the time of the 429).
        assert second.start - first.end >= 1.0 if "date" in name else second.start - first.end >= 1.9
    assert crawl.stats.get("imgscraper/retry_after/too_long") == 1


def test_404_and_410_not_retried(fault_site, crawl):
    for name in ("404.png", "410.png"):
        assert len([r for r in crawl.requests if r.url_path == fault_by_name(fault_site, name).path]) == 1


def test_bad_pages_counted_and_crawl_goes_on(crawl):
    """The gigantic page and the gzip bomb are aborted (one line each) and counted."""
    assert crawl.stats.get("imgscraper/pages_failed/too-large") == 2
    for page in ("gigantic.html", "gzip-bomb.html"):
        lines = [line for line in crawl.stderr.splitlines() if "Cannot fetch page" in line and page in line]
        assert len(lines) == 1, lines
    assert not crawl.error_lines(), crawl.error_lines()


def test_same_image_under_several_spellings_fetched_once(fault_site, crawl):
    same = [r.path for r in crawl.requests if "same.png" in unquote(r.path)]
    assert same == ["/u/same.png"], same


def test_crafted_urls_cannot_escape_the_store(fault_site, crawl, tmp_path_factory):
    """Crafted URL paths (``..``, encoded ``..``, NUL, very long) are stored under full/<uuid>.png."""
    items = crawl.by_url()
    crafted = [u for u in items if "/s/" in u or "escape" in u]
    assert len(crafted) == len(fault_site.crafted), crafted
    for url in crafted:
        assert items[url]["status"] == "downloaded", items[url]
        assert STORE_NAME.match(items[url]["path"])
        assert (crawl.store / items[url]["path"]).resolve().is_relative_to(crawl.store.resolve())
    base = Path(tmp_path_factory.getbasetemp())
    leaked = [p for p in base.rglob("*") if "escape" in p.name or "win.png" in p.name or "byte.png" in p.name]
    assert not leaked, leaked


def test_other_schemes_ignored_and_counted(fault_site, crawl):
    for scheme in ("file", "ftp", "gopher", "javascript"):
        assert crawl.stats.get(f"imgscraper/urls_ignored/{scheme}") == 1, scheme
    assert not [u for u in crawl.by_url() if not u.startswith(("http://", "https://", "data:"))]


def test_robots_txt_obeyed(fault_site, crawl):
    assert not [r.path for r in crawl.requests if r.url_path.startswith("/private/")]
    item = crawl.by_url()[fault_site.url + "private/secret.png"]
    assert (item["status"], item["reason"]) == ("skipped", "robots-txt")
    assert crawl.stats.get("imgscraper/images/skipped/robots-txt") == 1


# -- link trap ----------------------------------------------------------------


def calendar_pages(requests) -> list[str]:
    return sorted(r.url_path for r in requests if r.url_path.startswith("/cal/") and r.url_path.endswith(".html"))


def test_link_trap_bounded_by_depth(fault_site, run_crawl):
    fault_site.reset()
    result = run_crawl(["-a", f"url={fault_site.url}cal/0.html", "-a", "depth=3", *settings_args()],
                       servers=[fault_site.server])
    assert result.returncode == 0, result.tail()
    pages = calendar_pages(result.requests)
    # 0 -> 1, 1000 -> 2, 1001, 2000 -> 3, 1002, 2001, 3000: 10 pages at depth <= 3.
    assert len(pages) == len(set(pages)) == 10, pages
    assert len([i for i in result.items if i["status"] == "downloaded"]) == 10


def test_link_trap_bounded_by_page_budget(fault_site, run_crawl):
    fault_site.reset()
    result = run_crawl(["-a", f"url={fault_site.url}cal/0.html", "-a", "depth=1000",
                        *settings_args(IMGSCRAPER_MAX_PAGES="7")], servers=[fault_site.server])
    assert result.returncode == 0, result.tail()
    pages = calendar_pages(result.requests)
    assert len(pages) == len(set(pages)) == 7, pages
    assert len([i for i in result.items if i["status"] == "downloaded"]) == 7
    assert len(result.stored_files()) == 7
    assert "Page budget reached (IMGSCRAPER_MAX_PAGES=7)" in result.stderr


# -- IDN hosts ------------------------------------------------------------------


def test_idn_host_requested_as_punycode(tmp_path, run_crawl):
    """An IDN start URL and image host go on the wire as punycode.

    No DNS here: the crawl goes through an HTTP proxy (our test server), which
    sees the absolute URL and ``Host`` header the crawler sends.
    """
    root = tmp_path / "idn"
    root.mkdir()
    image, other = png(4242), png(4243)
    with HTTPTestServer(root) as proxy:
        proxy.add_handler("/index.html", lambda h: h.send_body(
            '<img src="/b\u00fccher.png"><img src="http://\u6e2c\u8a66.example/x.png">', content_type="text/html") or True)
        proxy.add_handler("/b%C3%BCcher.png", lambda h: h.send_body(image, content_type="image/png") or True)
        proxy.add_handler("/x.png", lambda h: h.send_body(other, content_type="image/png") or True)
        proxy.add_handler("/robots.txt", lambda h: h.send_body("", content_type="text/plain") or True)
        result = run_crawl(["-a", "url=http://b\u00fccher.example/index.html", *settings_args()],
                           env={"http_proxy": proxy.url}, servers=[proxy])
    seen = {(r.header("Host"), r.path) for r in result.requests}
    assert result.returncode == 0, result.tail()
    assert ("xn--bcher-kva.example", "http://xn--bcher-kva.example/index.html") in seen, seen
    assert ("xn--bcher-kva.example", "http://xn--bcher-kva.example/b%C3%BCcher.png") in seen, seen
    assert ("xn--g6w251d.example", "http://xn--g6w251d.example/x.png") in seen, seen
    statuses = {i["url"]: i["status"] for i in result.items}
    assert list(statuses.values()) == ["downloaded", "downloaded"], statuses
