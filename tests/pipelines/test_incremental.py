"""Incremental re-crawls into one store, checked on the server's side.

One small site and one store go through a sequence of crawls (module-scoped
fixtures, each depending on the previous one):

1. ``first``: everything downloaded.
2. ``unchanged``: nothing changed: no image requested, files untouched.
3. ``edited``: an image added, one removed, one changed at the same URL and a
   new cache-busting alias: only the new URLs are fetched, the removed
   image's file stays, the changed one is still fresh (not fetched).
4. ``expired``: the record aged 2 hours except for one image, crawled with
   ``IMGSCRAPER_EXPIRES=1h``: aged images are revalidated with conditional
   requests (304, no bytes) except the changed one (200, stored anew); the
   young one is not requested.
5. ``damaged``: the record overwritten with junk: rebuilt from its snapshot,
   nothing requested.
6. ``lost``: the record and its snapshot deleted: every image fetched once
   more, nothing stored twice; ``rebuilt`` then needs no image request.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.httpserver import HTTPTestServer, RecordedRequest
from tests.support.images import jpeg, png

IMAGES = {  # path -> bytes
    "a.png": png("a", (40, 30)),
    "b.jpg": jpeg("b", (50, 40)),
    "c.png": png("c", (30, 30)),
    "d.png": png("d", (20, 40)),
}


def write_page(root: Path, refs: list[str]) -> None:
    body = "".join(f'<img src="{ref}">' for ref in refs)
    (root / "index.html").write_text(f"<!doctype html><title>t</title><body>{body}</body>", encoding="utf-8")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Crawl:
    result: object
    requests: list[RecordedRequest]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # rel path -> (sha256, mtime_ns)

    @property
    def items(self) -> dict[str, dict]:
        return {i["url"]: i for i in self.result.items}

    def image_requests(self) -> dict[str, list[RecordedRequest]]:
        out: dict[str, list[RecordedRequest]] = {}
        for request in self.requests:
            if request.url_path not in ("/", "/index.html", "/robots.txt"):
                out.setdefault(request.path.lstrip("/"), []).append(request)
        return out


@dataclass
class Site:
    root: Path
    server: HTTPTestServer
    store: Path
    run_crawl: object

    def url(self, ref: str) -> str:
        return self.server.url + ref

    def crawl(self, *settings: str) -> Crawl:
        args = ["-a", f"url={self.server.url}"] + [a for s in settings for a in ("-s", s)]
        result = self.run_crawl(args, store=self.store, servers=[self.server])
        assert result.returncode == 0, result.tail()
        assert "Traceback" not in result.stderr, result.tail()
        files = {
            p.relative_to(self.store).as_posix(): (sha(p.read_bytes()), p.stat().st_mtime_ns)
            for p in result.stored_files()
        }
        return Crawl(result, result.requests, files)


@pytest.fixture(scope="module")
def site(tmp_path_factory, run_crawl):
    root = tmp_path_factory.mktemp("incremental-site")
    (root / "mirror").mkdir()
    for name, body in IMAGES.items():
        (root / name).write_bytes(body)
    shutil.copy(root / "a.png", root / "mirror" / "a.png")
    write_page(root, ["a.png", "b.jpg", "c.png", "d.png", "mirror/a.png"])
    with HTTPTestServer(root) as server:
        yield Site(root, server, tmp_path_factory.mktemp("incremental-out") / "store", run_crawl)


@pytest.fixture(scope="module")
def first(site):
    return site.crawl()


@pytest.fixture(scope="module")
def unchanged(site, first):
    return site.crawl()


@pytest.fixture(scope="module")
def edited(site, unchanged):
    time.sleep(1.1)  # Last-Modified has a one-second resolution
    (site.root / "e.png").write_bytes(png("e", (33, 22)))
    (site.root / "c.png").write_bytes(png("c, changed", (30, 30)))
    (site.root / "d.png").unlink()
    write_page(site.root, ["a.png", "b.jpg", "c.png", "mirror/a.png", "a.png?v=2", "e.png"])
    return site.crawl()


@pytest.fixture(scope="module")
def expired(site, edited):
    two_hours_ago = time.time() - 7200
    with sqlite3.connect(site.store / ".imgscraper" / "records.sqlite3") as db:
        db.execute("UPDATE images SET stored_at = ? WHERE url != ?", (two_hours_ago, site.url("b.jpg")))
    db.close()
    return site.crawl("IMGSCRAPER_EXPIRES=1h")


@pytest.fixture(scope="module")
def damaged(site, expired):
    (site.store / ".imgscraper" / "records.sqlite3").write_bytes(b"not a database\n" * 500)
    return site.crawl()


@pytest.fixture(scope="module")
def lost(site, damaged):
    shutil.rmtree(site.store / ".imgscraper")
    return site.crawl()


@pytest.fixture(scope="module")
def rebuilt(site, lost):
    return site.crawl()


def test_first_crawl_downloads_everything_and_stores_aliases_once(site, first):
    assert {i["status"] for i in first.items.values()} == {"downloaded"}
    assert set(first.image_requests()) == {"a.png", "b.jpg", "c.png", "d.png", "mirror/a.png"}
    assert first.items[site.url("a.png")]["path"] == first.items[site.url("mirror/a.png")]["path"]
    assert len(first.files) == 4  # a.png and mirror/a.png are the same bytes


def test_unchanged_site_requests_no_image_and_leaves_files_untouched(site, first, unchanged):
    assert unchanged.image_requests() == {}
    assert unchanged.files == first.files
    for url, item in unchanged.items.items():
        assert item["status"] == "uptodate", item
        assert item["path"] == first.items[url]["path"]
        assert item["checksum"] == first.items[url]["checksum"]


def test_edited_site_fetches_only_new_urls(site, unchanged, edited):
    requested = edited.image_requests()
    assert set(requested) == {"e.png", "a.png?v=2"}
    assert all(len(r) == 1 and r[0].status == 200 and r[0].bytes_sent > 0 for r in requested.values())
    items = edited.items
    assert items[site.url("e.png")]["status"] == "downloaded"
    # A new URL of stored bytes: fetched once, but stored once, and the item points at that one file.
    assert items[site.url("a.png?v=2")]["path"] == unchanged.items[site.url("a.png")]["path"]
    # The changed image is still fresh (IMAGES_EXPIRES is 90 days): not fetched, old file.
    assert items[site.url("c.png")]["status"] == "uptodate"
    assert items[site.url("c.png")]["path"] == unchanged.items[site.url("c.png")]["path"]
    # The removed image's file stays; every old file is untouched; one new file (e.png).
    assert unchanged.items[site.url("d.png")]["path"] in edited.files
    assert {k: v for k, v in edited.files.items() if k in unchanged.files} == unchanged.files
    assert len(edited.files) == len(unchanged.files) + 1


def test_expired_images_are_revalidated_with_conditional_requests(site, edited, expired):
    requested = expired.image_requests()
    assert "b.jpg" not in requested, "an image stored less than IMGSCRAPER_EXPIRES=1h ago was requested"
    assert set(requested) == {"a.png", "a.png?v=2", "mirror/a.png", "c.png", "e.png"}
    for ref, (request,) in requested.items():
        assert request.header("If-None-Match"), f"{ref}: no If-None-Match"
        assert request.header("If-Modified-Since"), f"{ref}: no If-Modified-Since"
        if ref == "c.png":
            assert request.status == 200 and request.bytes_sent == (site.root / "c.png").stat().st_size
        else:
            assert (request.status, request.bytes_sent) == (304, 0), ref
            assert expired.items[site.url(ref)]["status"] == "uptodate"
            assert expired.items[site.url(ref)]["path"] == edited.items[site.url(ref)]["path"]
    changed = expired.items[site.url("c.png")]
    assert changed["status"] == "downloaded"
    assert changed["checksum"] == sha((site.root / "c.png").read_bytes())
    assert changed["path"] != edited.items[site.url("c.png")]["path"]
    assert expired.files[changed["path"]][0] == changed["checksum"]
    # The old bytes of c.png stay (other URLs may share them); nothing else was rewritten.
    assert {k: v for k, v in expired.files.items() if k in edited.files} == edited.files


def test_revalidation_is_remembered(site, expired):
    """A 304 renews the record: the next crawl within the hour requests nothing."""
    again = site.crawl("IMGSCRAPER_EXPIRES=1h")
    assert again.image_requests() == {}
    assert {i["status"] for i in again.items.values()} == {"uptodate"}


def test_damaged_record_is_rebuilt_from_its_snapshot(site, expired, damaged):
    assert damaged.image_requests() == {}
    assert {i["status"] for i in damaged.items.values()} == {"uptodate"}
    assert damaged.files == expired.files
    assert damaged.result.stats.get("imgscraper/record_rebuilt") == "backup"
    warnings = [line for line in damaged.result.stderr.splitlines() if "WARNING" in line and "record" in line]
    assert len(warnings) == 1 and "damaged" in warnings[0], warnings
    assert list((site.store / ".imgscraper").glob("records.sqlite3.damaged-*"))


def test_lost_record_is_rebuilt_without_storing_anything_twice(site, damaged, lost, rebuilt):
    requested = lost.image_requests()
    assert set(requested) == {"a.png", "a.png?v=2", "mirror/a.png", "b.jpg", "c.png", "e.png"}
    assert all(len(r) == 1 for r in requested.values())
    assert lost.files == damaged.files, "files were stored again or rewritten"
    for url, item in lost.items.items():
        assert item["path"] == damaged.items[url]["path"]
    assert lost.result.stats.get("imgscraper/record_rebuilt") == "empty"
    # The record is whole again: the next crawl requests nothing.
    assert rebuilt.image_requests() == {}
    assert {i["status"] for i in rebuilt.items.values()} == {"uptodate"}


def test_bad_expiry_stops_the_crawl_with_its_reason(site, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={site.server.url}", "-s", "IMGSCRAPER_EXPIRES=soon"], store=tmp_path / "s")
    assert result.returncode != 0
    errors = result.error_lines()
    assert len(errors) == 1 and "IMGSCRAPER_EXPIRES='soon' is not a duration" in errors[0], errors
    assert "Traceback" not in result.stderr
    assert not result.stored_files()


def test_concurrent_jobs_share_the_record(site, run_crawl, tmp_path):
    """Two crawls writing one store at the same time both finish, and what
    they stored is known to the next crawl, which requests no image."""
    from concurrent.futures import ThreadPoolExecutor

    shared = Site(site.root, site.server, tmp_path / "shared-store", run_crawl)
    site.server.log.clear()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(
            lambda n: run_crawl(["-a", f"url={site.server.url}"], store=shared.store, out_dir=tmp_path / f"job{n}"),
            range(2),
        ))
    for result in results:
        assert result.returncode == 0, result.tail()
        assert {i["status"] for i in result.items} <= {"downloaded", "uptodate"}
        assert "database is locked" not in result.stderr
    paths = {i["url"]: i["path"] for i in results[0].items}
    assert paths == {i["url"]: i["path"] for i in results[1].items}
    after = shared.crawl()
    assert after.image_requests() == {}
    assert {i["url"]: i["path"] for i in after.result.items} == paths
