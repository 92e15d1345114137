"""End-to-end tests: run ``scrapy crawl images`` as a subprocess against the
generated site (:mod:`tests.support.sitegen`) served by a real HTTP server.

Contract under test (see the spider's and pipeline's docs):

* ``scrapy crawl images -a url=URL -a depth=N -s IMAGES_STORE=DIR -O
  items.jsonl`` (``-a download=no``, ``-s IMGSCRAPER_SRCSET=all``).
* Images are stored as ``DIR/full/<uuid>.<ext>`` (ext from the real
  format); only ``DIR/.imgscraper/`` may exist besides them.
* One item per discovered image URL, with url, page, path, checksum
  (sha256 of the stored bytes), width, height, format, size, status,
  reason. Identical bytes are stored once.
* A second crawl into the same store requests no stored image again.
* Bad arguments / unfetchable start page: non-zero exit code, exactly one
  error line, no traceback.

Crawls are shared between tests through module-scoped fixtures.
"""

from __future__ import annotations

import collections
import hashlib
import re
import shutil
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tests.support.sitegen import STORED_EXT

STORE_NAME = re.compile(r"^full/(?P<uuid>[0-9a-fA-F-]{36})\.(?P<ext>jpg|png|gif|webp|bmp|ico|svg)$")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def sha_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def requests_for(srv, result, url):
    return srv.requests_for(url, result.requests)


def assert_ok(result):
    assert result.returncode == 0, f"exit code {result.returncode}\n{result.tail()}"


def items_by_url(result) -> dict[str, dict]:
    counts = collections.Counter(item.get("url") for item in result.items)
    dupes = {u: n for u, n in counts.items() if n > 1}
    assert not dupes, f"URLs with more than one item: {dupes}"
    return result.by_url()


def short(url: str) -> str:
    return url if len(url) < 80 else url[:60] + "..."


def store_files(result) -> dict[str, Path]:
    """Store files (metadata folder excluded) by path relative to the store."""
    return {p.relative_to(result.store).as_posix(): p for p in result.stored_files()}


def check_stored(result, site, expected: dict[str, str], statuses=("downloaded",)) -> list[str]:
    """Problems with the items/files of the images in ``expected`` (URL -> sha256)."""
    items = result.by_url()
    problems = []
    for url, sha in sorted(expected.items()):
        item = items.get(url)
        if item is None:
            problems.append(f"{short(url)}: no item")
            continue
        label = f"{short(url)} [{site.images[url].kind}]"
        if item.get("status") not in statuses:
            problems.append(f"{label}: status {item.get('status')!r} (reason {item.get('reason')!r}), want {statuses}")
        path = item.get("path") or ""
        m = STORE_NAME.match(path)
        if not m:
            problems.append(f"{label}: bad path {path!r}")
            continue
        try:
            uuid.UUID(m["uuid"])
        except ValueError:
            problems.append(f"{label}: {path!r} is not named by a UUID")
        if m["ext"] != site.images[url].ext:
            problems.append(f"{label}: extension {m['ext']!r}, format is {site.images[url].format}")
        file = result.store / path
        if not file.is_file():
            problems.append(f"{label}: {path} missing from the store")
            continue
        if sha_file(file) != sha:
            problems.append(f"{label}: stored bytes differ from the served bytes")
        if item.get("checksum") != sha:
            problems.append(f"{label}: checksum {item.get('checksum')!r} != sha256 of the bytes")
        if item.get("size") != file.stat().st_size:
            problems.append(f"{label}: size {item.get('size')!r} != {file.stat().st_size}")
    return problems


def check_store_contents(result, expected: dict[str, str]) -> list[str]:
    """The store holds exactly one file per distinct image in ``expected``."""
    files = store_files(result)
    problems = [f"unexpected file in store: {rel}" for rel in files if not STORE_NAME.match(rel)]
    wanted_paths = {result.by_url().get(u, {}).get("path") for u in expected} - {None, ""}
    extra = set(files) - wanted_paths
    problems += [f"store file no expected item points to: {rel}" for rel in sorted(extra)]
    distinct = len(set(expected.values()))
    n_images = len([rel for rel in files if STORE_NAME.match(rel)])
    if n_images != distinct:
        problems.append(f"{n_images} images in the store, want {distinct} (one per distinct content)")
    return problems


def check_item_set(result, want: set[str]) -> list[str]:
    got = set(items_by_url(result))
    problems = [f"missing item: {short(u)}" for u in sorted(want - got)]
    problems += [f"unexpected item: {short(u)}" for u in sorted(got - want)]
    return problems


def fmt(problems: list[str], result=None) -> str:
    text = "\n".join(problems)
    if result is not None:
        text += "\n--- stderr tail ---\n" + result.tail(25)
    return text


# ---------------------------------------------------------------------------
# crawls (module-scoped: each runs once)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(site_server_module):
    return site_server_module


@pytest.fixture(scope="module")
def site(srv):
    return srv.site


@pytest.fixture(scope="module")
def full(srv, run_crawl):
    """Default crawl, depth 2."""
    return run_crawl(["-a", f"url={srv.url}", "-a", "depth=2"], servers=srv.servers)


@pytest.fixture(scope="module")
def second(srv, run_crawl, full, tmp_path_factory):
    """A second crawl (depth 2) into a copy of the first crawl's store."""
    out = tmp_path_factory.mktemp("second")
    store = out / "store"
    if full.store.exists():
        shutil.copytree(full.store, store)
    return run_crawl(["-a", f"url={srv.url}", "-a", "depth=2"], store=store, out_dir=out, servers=srv.servers)


@pytest.fixture(scope="module", params=[0, 1, 3], ids=lambda d: f"depth{d}")
def limited(request, srv, run_crawl):
    depth = request.param
    return depth, run_crawl(["-a", f"url={srv.url}", "-a", f"depth={depth}"], servers=srv.servers)


@pytest.fixture(scope="module")
def srcset_all(srv, run_crawl):
    return run_crawl(["-a", f"url={srv.url}", "-a", "depth=2", "-s", "IMGSCRAPER_SRCSET=all"], servers=srv.servers)


@pytest.fixture(scope="module")
def listed(srv, run_crawl):
    return run_crawl(["-a", f"url={srv.url}", "-a", "depth=2", "-a", "download=no"], servers=srv.servers)


# ---------------------------------------------------------------------------
# full crawl, depth 2
# ---------------------------------------------------------------------------


def test_full_exits_ok(full):
    assert_ok(full)


def test_full_log_has_no_traceback(full):
    """Failed images (404, not an image, unreachable host) are reported as
    items and log lines, not as Python tracebacks."""
    lines = full.stderr.splitlines()
    record = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[")
    culprits, last_record = [], "(start of output)"
    for line in lines:
        if record.match(line):
            last_record = line
        elif line.startswith("Traceback") and last_record not in culprits:
            culprits.append(last_record)
    assert not culprits, "log records with a traceback:\n" + "\n".join(culprits)


def test_full_log_has_no_experimental_warning(full):
    """The default transport is Scrapy's production HTTP/1.1 handler."""
    assert "experimental" not in full.stderr.lower(), full.tail()
    assert "Traceback" not in full.stderr, full.tail()


def test_full_one_item_per_discovered_url(full, site):
    problems = check_item_set(full, site.discovered_at(2))
    assert not problems, fmt(problems, full)


def test_full_every_expected_image_stored(full, site):
    problems = check_stored(full, site, site.expected)
    assert not problems, fmt(problems, full)


def test_full_store_holds_nothing_else(full, site):
    problems = check_store_contents(full, site.expected)
    assert not problems, fmt(problems)


def test_full_served_bytes_match_site_files(full, site):
    """Stored files are byte-identical to the files the server has."""
    items = full.by_url()
    problems = []
    for url in site.expected:
        info, item = site.images[url], items.get(url)
        if info.file is None or not item or not item.get("path"):
            continue
        stored = full.store / item["path"]
        if stored.is_file() and stored.read_bytes() != info.file.read_bytes():
            problems.append(f"{url}: stored file differs from {info.file}")
    assert not problems, fmt(problems)


@pytest.mark.parametrize("rel", [
    "img/photo.jpg", "img/shared.png", "img/pic-fallback.png", "img/anim.gif", "img/pic-800.webp",
    "img/bitmap.bmp", "favicon.ico", "img/vector.svg", "img/full/photo.JPG?size=full",
    "deep/c-only.png",
])
def test_full_item_fields(full, site, rel):
    url = site.url(rel)
    info = site.images[url]
    item = full.by_url().get(url)
    assert item is not None, f"no item for {url}"
    assert item["status"] == "downloaded", item
    assert item["page"] in info.pages, f"page {item['page']!r} not one of {info.pages}"
    assert item["format"] == info.format, item
    assert item["checksum"] == info.sha256
    assert item["size"] == info.size
    assert item.get("reason", "") == ""
    stored = full.store / item["path"]
    assert item["path"].endswith("." + STORED_EXT[info.format])
    if info.format == "SVG":
        assert stored.read_bytes().lstrip().startswith(b"<?xml")
        return
    with Image.open(stored) as img:
        assert img.format == info.format
        assert (item["width"], item["height"]) == img.size == (info.width, info.height)


def test_full_data_uri_image(full, site):
    (url,) = [u for u in site.expected if u.startswith("data:")]
    item = full.by_url().get(url)
    assert item is not None, "no item for the data: URI"
    assert item["status"] == "downloaded", item
    assert item["checksum"] == site.expected[url]
    assert (item["format"], item["width"], item["height"]) == ("PNG", 8, 8)
    assert sha_file(full.store / item["path"]) == site.expected[url]


def test_full_failed_images(full, site):
    items = full.by_url()
    problems = []
    for url, reason in site.failed.items():
        item = items.get(url)
        if item is None:
            problems.append(f"{url}: no item")
            continue
        if item.get("status") != "failed":
            problems.append(f"{url}: status {item.get('status')!r}, want failed")
        if not item.get("reason") or reason not in item["reason"]:
            problems.append(f"{url}: reason {item.get('reason')!r} should contain {reason!r}")
        if item.get("path"):
            problems.append(f"{url}: failed but has path {item['path']!r}")
    assert not problems, fmt(problems)


def test_full_skipped_images(full, site):
    items = full.by_url()
    stored_shas = {sha_file(p) for p in full.stored_files()}
    problems = []
    for url, reason in site.skipped.items():
        item = items.get(url)
        if item is None:
            problems.append(f"{url}: no item")
            continue
        if item.get("status") != "skipped":
            problems.append(f"{url}: status {item.get('status')!r}, want skipped")
        if reason not in (item.get("reason") or ""):
            problems.append(f"{url}: reason {item.get('reason')!r} should contain {reason!r}")
        if item.get("path"):
            problems.append(f"{url}: skipped but has path {item['path']!r}")
        if site.images[url].sha256 in stored_shas:
            problems.append(f"{url}: skipped but its bytes are in the store")
    assert not problems, fmt(problems)


def test_full_respects_depth_and_site(full, site, srv):
    items = full.by_url()
    for url in site.by_depth[3]:
        assert url not in items, f"depth-3 image {url} found with depth=2"
    for url in site.absent_at(2):
        assert url not in items, f"{url} must not be found at depth 2"
    for page in site.pages[3]:
        assert not requests_for(srv, full, page), f"depth-3 page {page} fetched"
    for page in site.external_pages:
        assert not requests_for(srv, full, page), f"external page {page} fetched"


def test_full_fetches_each_page_and_image_once(full, site, srv):
    problems = []
    for page in site.pages_at(2):
        n = len([r for r in requests_for(srv, full, page) if r.method == "GET"])
        if n != 1:
            problems.append(f"page {page}: {n} GET requests, want 1")
    for url in site.expected:
        if url.startswith("data:") or not (site.on_host(url) or url.startswith(site.other_url or "-")):
            continue
        n = len(requests_for(srv, full, url))
        if n != 1:
            problems.append(f"image {url}: {n} requests, want 1")
    assert not problems, fmt(problems)


def test_full_duplicates_one_item_stored_once(full, site):
    shared = site.url("img/shared.png")
    assert len(site.images[shared].pages) >= 3
    items = [i for i in full.items if i.get("url") == shared]
    assert len(items) == 1


def test_full_aliases_stored_once(full, site):
    items = full.by_url()
    for group in site.aliases:
        paths = {items.get(u, {}).get("path") for u in group}
        assert len(paths) == 1 and "" not in paths and None not in paths, f"{group}: paths {paths}"
        (path,) = paths
        assert sha_file(full.store / path) == site.expected[group[0]]


def test_full_png_transparency_preserved(full, site):
    url = site.url("img/pic-fallback.png")
    item = full.by_url()[url]
    stored = full.store / item["path"]
    assert stored.read_bytes() == site.images[url].file.read_bytes()
    with Image.open(stored) as img:
        assert img.format == "PNG" and img.mode == "RGBA"
        assert img.getchannel("A").getextrema()[0] == 0


def test_full_animated_gif_keeps_frames(full, site):
    url = site.url("img/anim.gif")
    item = full.by_url()[url]
    with Image.open(full.store / item["path"]) as img:
        assert img.format == "GIF"
        assert img.n_frames == 3 and img.is_animated


def test_full_offsite_cdn_image(full, site, srv):
    if srv.other is None:
        pytest.skip("127.0.0.2 not available")
    (url,) = [u for u in site.expected if u.startswith(site.other_url)]
    item = full.by_url().get(url)
    assert item is not None and item["status"] == "downloaded", item


# ---------------------------------------------------------------------------
# depth limits
# ---------------------------------------------------------------------------


def test_depth_limits(limited, site, srv):
    depth, result = limited
    assert_ok(result)
    problems = check_item_set(result, site.discovered_at(depth))
    problems += check_stored(result, site, site.stored_at(depth))
    problems += check_store_contents(result, site.stored_at(depth))
    for d, pages in site.pages.items():
        for page in pages:
            fetched = bool(requests_for(srv, result, page))
            if d <= depth and not fetched:
                problems.append(f"page {page} (depth {d}) not fetched")
            if d > depth and fetched:
                problems.append(f"page {page} (depth {d}) fetched with depth={depth}")
    assert not problems, fmt(problems, result)


# ---------------------------------------------------------------------------
# second crawl into the same store
# ---------------------------------------------------------------------------


def test_image_requests_look_like_a_browsers(full, site, srv):
    """Image requests carry the page as Referer and a browser's image Accept header."""
    problems = []
    for url in site.stored_at(2):
        for request in requests_for(srv, full, url):
            headers = {k.lower(): v for k, v in request.headers.items()}
            if not headers.get("accept", "").startswith("image/avif,image/webp,"):
                problems.append(f"{short(url)}: Accept {headers.get('accept')!r}")
            if not headers.get("referer", "").startswith(srv.url):
                problems.append(f"{short(url)}: Referer {headers.get('referer')!r}")
    assert not problems, fmt(problems, full)


def test_an_image_as_start_url_is_stored(srv, site, run_crawl):
    """``-a url=`` naming an image (by its extension, or by what it serves) stores that image."""
    photo = f"{srv.url}img/photo.jpg"
    body = (srv.server.root / "img" / "photo.jpg").read_bytes()
    srv.server.add_handler("/photo", lambda h: h.send_body(body, content_type="image/jpeg") or True)
    result = run_crawl(["-a", f"url={photo},{srv.url}photo"], servers=srv.servers)
    assert_ok(result)
    items = result.by_url()
    assert set(items) == {photo, f"{srv.url}photo"}, items
    for item in items.values():
        assert item["status"] == "downloaded" and item["checksum"] == site.images[photo].sha256, item
        assert (result.store / item["path"]).read_bytes() == body
    # The image URL is fetched once, as an image, not as a page too.
    assert len(requests_for(srv, result, photo)) == 1


def test_second_run_exits_ok(second):
    assert_ok(second)


def test_second_run_items_uptodate(second, full, site):
    problems = check_item_set(second, site.discovered_at(2))
    problems += check_stored(second, site, site.expected, statuses=("uptodate",))
    first = full.by_url()
    for url, item in second.by_url().items():
        if url in site.expected and first.get(url, {}).get("path") != item.get("path"):
            problems.append(f"{short(url)}: path changed {first.get(url, {}).get('path')!r} -> {item.get('path')!r}")
    assert not problems, fmt(problems, second)


def test_second_run_requests_no_stored_image(second, site, srv):
    # Only stored images must not be requested: re-trying failed (404,
    # not-an-image) and skipped ones on a later crawl is allowed.
    requested = [u for u in site.expected if requests_for(srv, second, u)]
    assert not requested, "stored images requested again:\n" + "\n".join(requested)
    for page in site.pages_at(2):
        assert requests_for(srv, second, page), f"page {page} not fetched again"


def test_second_run_remembers_rejections_by_content(second, site, srv):
    """Images rejected for their bytes (too small, not an image) are not fetched again
    while fresh, and keep their status and reason; HTTP and network failures are retried."""
    remembered = {"too-small", "not-an-image"}
    expected = {url: ("skipped", reason) for url, reason in site.skipped_at(2).items()}
    expected.update({url: ("failed", reason) for url, reason in site.failed_at(2).items()})
    assert {reason for _, reason in expected.values()} >= remembered | {"404"}
    items = second.by_url()
    problems = []
    for url, (status, reason) in expected.items():
        item = items.get(url, {})
        if item.get("status") != status or (reason in remembered and item.get("reason") != reason):
            problems.append(f"{short(url)}: {item.get('status')}/{item.get('reason')}, want {status}/{reason}")
        fetched = bool(requests_for(srv, second, url))
        if reason in remembered and fetched:
            problems.append(f"{short(url)} ({reason}) fetched again")
        if reason == "404" and not fetched:
            problems.append(f"{short(url)} (404) not retried")
    assert not problems, fmt(problems, second)


def test_second_run_store_unchanged(second, full):
    before = {rel: sha_file(p) for rel, p in store_files(full).items()}
    after = {rel: sha_file(p) for rel, p in store_files(second).items()}
    assert after == before


# ---------------------------------------------------------------------------
# IMGSCRAPER_SRCSET=all
# ---------------------------------------------------------------------------


def test_srcset_all_stores_smaller_candidates(srcset_all, site):
    assert_ok(srcset_all)
    want = site.stored_at(2, srcset_all=True)
    assert set(site.srcset_smaller) <= set(want)
    problems = check_item_set(srcset_all, site.discovered_at(2, srcset_all=True))
    problems += check_stored(srcset_all, site, want)
    problems += check_store_contents(srcset_all, want)
    assert not problems, fmt(problems, srcset_all)


# ---------------------------------------------------------------------------
# download=no
# ---------------------------------------------------------------------------


def test_download_no_lists_only(listed, site, srv):
    assert_ok(listed)
    problems = check_item_set(listed, site.discovered_at(2))
    for item in listed.items:
        if item.get("status") != "listed":
            problems.append(f"{short(item.get('url', ''))}: status {item.get('status')!r}, want listed")
        if item.get("path"):
            problems.append(f"{short(item.get('url', ''))}: path {item['path']!r} though nothing is downloaded")
    for url in site.images:
        if not url.startswith("data:") and requests_for(srv, listed, url):
            problems.append(f"image requested with download=no: {url}")
    images = [rel for rel in store_files(listed)]
    if images:
        problems.append(f"files in the store: {images}")
    for page in site.pages_at(2):
        if not requests_for(srv, listed, page):
            problems.append(f"page {page} not fetched")
    assert not problems, fmt(problems, listed)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


def assert_clean_failure(result, keywords: tuple[str, ...]):
    """Non-zero exit, no traceback, exactly one error line naming the problem."""
    problems = []
    if result.returncode == 0:
        problems.append("exit code 0")
    if "Traceback" in result.output:
        problems.append("a Python traceback was printed")
    errors = result.error_lines()
    if len(errors) != 1:
        problems.append(f"{len(errors)} error lines, want exactly 1:\n  " + "\n  ".join(errors))
    elif not any(k.lower() in errors[0].lower() for k in keywords):
        problems.append(f"error line {errors[0]!r} should mention one of {keywords}")
    if result.stored_files():
        problems.append("files stored on failure")
    assert not problems, fmt(problems, result)


@pytest.mark.parametrize(
    "args, keywords",
    [
        ([], ("url",)),
        (["-a", "url=ftp://x"], ("ftp://x",)),
        (["-a", "url=http://127.0.0.1:99999/"], ("malformed", "99999")),
        (["-a", "url={url}", "-a", "depth=-1"], ("depth",)),
        (["-a", "url={url}", "-a", "depth=abc"], ("depth",)),
        (["-a", "url={url}", "-a", "downlaod=no"], ("unknown argument downlaod (did you mean download?)",)),
    ],
    ids=["no-url", "ftp-url", "bad-port", "negative-depth", "non-integer-depth", "unknown-argument"],
)
def test_bad_arguments(srv, run_crawl, args, keywords):
    args = [a.format(url=srv.url) for a in args]
    result = run_crawl(list(args), servers=srv.servers)
    assert_clean_failure(result, keywords)
    assert not requests_for(srv, result, srv.url), "start page fetched despite bad arguments"


def test_start_url_typed_without_a_scheme(srv, run_crawl, site):
    """``-a url=127.0.0.1:PORT/`` crawls http://127.0.0.1:PORT/ (an address: http, as a browser tries it)."""
    result = run_crawl(["-a", f"url={srv.url.removeprefix('http://')}"], servers=srv.servers)
    assert_ok(result)
    assert f"Start URL '{srv.url.removeprefix('http://')}' has no scheme: crawling {srv.url}" in result.stderr
    assert len(requests_for(srv, result, srv.url)) == 1
    assert sum(item["status"] == "downloaded" for item in result.items) > 0


def test_start_page_404(srv, run_crawl):
    url = srv.url + "no-such-page.html"
    result = run_crawl(["-a", f"url={url}"], servers=srv.servers)
    assert_clean_failure(result, ("no-such-page.html", "404"))


def test_start_page_unreachable(srv, run_crawl, site):
    url = site.unreachable_url.rsplit("/", 1)[0] + "/"
    result = run_crawl(["-a", f"url={url}"], servers=srv.servers)
    assert_clean_failure(result, (url.rstrip("/"), "refused", "connect"))


def test_links_to_files_are_not_downloaded_as_pages(tmp_path, run_crawl):
    """A link to a PDF is not followed; an extensionless link that serves a large
    download is stopped at its headers; the pages around them are crawled."""
    from tests.support.httpserver import HTTPTestServer
    from tests.support.images import png
    from tests.support.sitegen import sha256

    total = 64 * 1024 * 1024
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "next.png").write_bytes(png("next", (40, 30)))
    (tmp_path / "report.pdf").write_bytes(b"%PDF-1.4\n" + b"0" * 1024)
    (tmp_path / "index.html").write_text(
        '<a href="/report.pdf">PDF</a> <a href="/download?id=7">Download</a> <a href="/next.html">Next</a>'
        ' <a href="/photo?id=9">Full size</a>'
    )
    (tmp_path / "next.html").write_text('<img src="/img/next.png">')

    def big_download(handler) -> bool:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        chunk = b"\0" * 65536
        try:
            for _ in range(total // len(chunk)):
                handler.wfile.write(chunk)
        except OSError:
            pass
        return True

    photo = png("photo", (50, 40))

    def photo_by_id(handler) -> bool:
        handler.send_body(photo, content_type="image/png")
        return True

    with HTTPTestServer(tmp_path) as server:
        server.add_handler("/download", big_download)
        server.add_handler("/photo", photo_by_id)
        # A start URL without an image extension that serves an image is stored all the same.
        result = run_crawl(["-a", f"url={server.url},{server.url_for('photo?id=5')}", "-a", "depth=1"])
        assert result.returncode == 0, result.tail()
        stored = {i["url"]: i["checksum"] for i in result.items if i["status"] == "downloaded"}
        # So is a link without an image extension that serves an image, found on the page that links to it.
        assert stored == {server.url_for("img/next.png"): sha256((tmp_path / "img" / "next.png").read_bytes()),
                          server.url_for("photo?id=5"): sha256(photo), server.url_for("photo?id=9"): sha256(photo)}
        assert {i["url"]: i["page"] for i in result.items}[server.url_for("photo?id=9")] == server.url
        assert server.log.count(path="/report.pdf") == 0
        (download,) = server.log.requests(path="/download")
        server.log.wait_idle()
        assert download.bytes_sent < total / 4, download.bytes_sent
    assert result.stats.get("imgscraper/pages_not_html") == 3


def test_links_to_image_file_names_that_are_pages_are_skipped(tmp_path, run_crawl):
    """<a href="/wiki/File:A.jpg"> (MediaWiki) leads to a page about the image: skipped as
    link-to-page, quietly, and not fetched again by the next crawl; an <img> whose URL
    serves a page is still a failed image, and a link to a real image is stored."""
    from tests.support.httpserver import HTTPTestServer
    from tests.support.images import png
    from tests.support.sitegen import sha256

    (tmp_path / "thumb").mkdir()
    (tmp_path / "full").mkdir()
    thumb, full = png("thumb", (40, 30)), png("full", (80, 60))
    (tmp_path / "thumb" / "A.png").write_bytes(thumb)
    (tmp_path / "full" / "A.png").write_bytes(full)
    (tmp_path / "index.html").write_text(
        '<a href="/wiki/File:A.jpg"><img src="/thumb/A.png"></a> <a href="/files/B.jpg">B</a>'
        ' <a href="/full/A.png">full size</a> <img src="/broken.jpg">'
    )
    page = b"<!DOCTYPE html><html><body><p>About this file</p></body></html>"

    def html(content_type: str):
        return lambda handler: handler.send_body(page, content_type=content_type) or True

    with HTTPTestServer(tmp_path) as server:
        server.add_handler("/wiki/*", html("text/html; charset=utf-8"))
        server.add_handler("/files/*", html("image/jpeg"))  # by its name; the bytes are a page
        server.add_handler("/broken.jpg", html("text/html"))
        store = tmp_path / "store"
        result = run_crawl(["-a", f"url={server.url}"], store=store)
        assert result.returncode == 0, result.tail()
        items = {i["url"].removeprefix(server.url): i for i in result.items}
        assert {url: (i["status"], i["reason"], i["source"]) for url, i in items.items()} == {
            "thumb/A.png": ("downloaded", "", "img"),
            "broken.jpg": ("failed", "not-an-image", "img"),
            "wiki/File:A.jpg": ("skipped", "link-to-page", "link-href"),
            "files/B.jpg": ("skipped", "link-to-page", "link-href"),
            "full/A.png": ("downloaded", "", "link-href"),
        }
        assert sorted(p.read_bytes() for p in (store / "full").iterdir()) == sorted([thumb, full])
        assert items["full/A.png"]["checksum"] == sha256(full)
        assert result.stats.get("imgscraper/images/skipped/link-to-page") == 2
        assert "WARNING: Image failed (not-an-image): " + server.url + "broken.jpg" in result.stderr
        assert "File:A.jpg" not in "".join(line for line in result.stderr.splitlines() if "WARNING" in line)

        server.log.clear()
        again = run_crawl(["-a", f"url={server.url}"], store=store)
        assert again.returncode == 0, again.tail()
        assert {i["url"].removeprefix(server.url): i["reason"] for i in again.items if i["status"] == "skipped"} == {
            "wiki/File:A.jpg": "link-to-page", "files/B.jpg": "link-to-page"}
        assert server.log.count(path="/wiki/File:A.jpg") == server.log.count(path="/files/B.jpg") == 0


@pytest.mark.parametrize("depth", [0, 1])
def test_frames_are_part_of_the_page_where_links_stop(tmp_path, run_crawl, depth):
    """The same-site pages a page shows in <frame>/<iframe> are crawled with it, even where
    its links are no longer followed; their own links and frames are not (one level)."""
    from tests.support.httpserver import HTTPTestServer
    from tests.support.images import png

    (tmp_path / "img").mkdir()
    for name in ("top", "left", "gallery", "linked", "nested", "deep"):
        (tmp_path / "img" / f"{name}.png").write_bytes(png(name, (30 + len(name), 20)))
    pages = {
        "index.html": '<img src="/img/top.png"><a href="/linked.html">more</a>'
                      '<iframe src="/gallery.html"></iframe><iframe src="/frames.html"></iframe>',
        "frames.html": '<frameset><frame src="/left.html"></frameset>',
        "left.html": '<img src="/img/left.png"><iframe src="/nested.html"></iframe>',
        "gallery.html": '<img src="/img/gallery.png"><a href="/deep.html">deeper</a>',
        "linked.html": '<img src="/img/linked.png"><iframe src="/deep.html"></iframe>',
        "nested.html": '<img src="/img/nested.png">',
        "deep.html": '<img src="/img/deep.png">',
    }
    for name, html in pages.items():
        (tmp_path / name).write_text(html)
    with HTTPTestServer(tmp_path) as server:
        result = run_crawl(["-a", f"url={server.url}", "-a", f"depth={depth}"])
        assert result.returncode == 0, result.tail()
        stored = sorted(i["url"].rsplit("/", 1)[1] for i in result.items if i["status"] == "downloaded")
        requested = sorted(p.lstrip("/") for p in server.log.paths() if p.endswith(".html"))
    if depth == 0:  # the start page's frames; frames.html's frame (left.html) is one level too deep
        assert stored == ["gallery.png", "top.png"]
        assert requested == ["frames.html", "gallery.html"]
    else:  # links at depth 1, and the frames of the depth-1 pages
        assert stored == ["deep.png", "gallery.png", "left.png", "linked.png", "top.png"]
        assert requested == ["deep.html", "frames.html", "gallery.html", "left.html", "linked.html"]


def test_a_start_page_that_moves_to_another_site_is_crawled_there(tmp_path, run_crawl):
    """http://brand.com -> https://www.brand.co.uk/: the pages of the site the start page
    redirected to are followed; other sites still are not."""
    from tests.support.httpserver import HTTPTestServer
    from tests.support.images import png

    old, new = tmp_path / "old", tmp_path / "new"
    (new / "img").mkdir(parents=True)
    old.mkdir()
    for name in ("home", "inner", "deeper"):
        (new / "img" / f"{name}.png").write_bytes(png(name, (32, 24)))
    with HTTPTestServer(old) as moved_from, HTTPTestServer(new) as site, HTTPTestServer(tmp_path) as elsewhere:
        (new / "index.html").write_text(f'<img src="/img/home.png"><a href="/inner.html">in</a>'
                                        f'<a href="{elsewhere.url_for("other.html")}">elsewhere</a>')
        # Found from a page found from the start page: the site is carried along (in any process).
        (new / "inner.html").write_text('<img src="/img/inner.png"><a href="/deeper.html">deeper</a>')
        (new / "deeper.html").write_text('<img src="/img/deeper.png">')

        def moved(handler) -> bool:
            handler.send_body(b"", status=301, headers={"Location": site.url})
            return True

        moved_from.add_handler("/", moved)
        result = run_crawl(["-a", f"url={moved_from.url}", "-a", "depth=2"])
        assert result.returncode == 0, result.tail()
        stored = sorted(i["url"] for i in result.items if i["status"] == "downloaded")
        assert stored == [site.url_for(f"img/{name}.png") for name in ("deeper", "home", "inner")]
        assert elsewhere.log.count(path="/other.html") == 0
    assert f"moved to 127.0.0.1:{site.port}" in result.stderr
