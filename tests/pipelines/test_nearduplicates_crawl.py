"""IMGSCRAPER_NEAR_DUPLICATES end to end: a served site holding a picture, a resized copy, a re-encoded
copy and an unrelated picture, crawled with mark and skip (twice into one store); near-duplicates
arriving together; a larger copy arriving after a smaller one."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

from imgscraper.pipelines.nearduplicates import hamming_distance
from imgscraper.pipelines.records import SQLiteRecord
from tests.support.httpserver import HTTPTestServer
from tests.support.images import encode, picture

COPIES = ("resized.jpg", "reencoded.webp")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("near-duplicates")
    harbour = picture("harbour", (800, 600))
    (root / "original.jpg").write_bytes(encode(harbour, "JPEG", quality=90))
    (root / "resized.jpg").write_bytes(encode(harbour.resize((400, 300), Image.Resampling.LANCZOS), "JPEG", quality=80))
    (root / "reencoded.webp").write_bytes(encode(harbour, "WEBP", quality=60))
    (root / "copy.png").write_bytes(encode(harbour, "PNG"))
    (root / "unrelated.jpg").write_bytes(encode(picture("forest", (800, 600)), "JPEG", quality=90))
    images = ["original.jpg", *COPIES, "unrelated.jpg"]
    (root / "index.html").write_text("".join(f'<img src="{name}">' for name in images), encoding="utf-8")
    (root / "together.html").write_text(
        '<img src="original.jpg"><img src="reencoded.webp"><img src="copy.png">', encoding="utf-8"
    )
    with HTTPTestServer(root) as server:
        yield server
        server.clear_handlers()


def delay(server: HTTPTestServer, seconds: float, *paths: str) -> None:
    """Answer ``paths`` ``seconds`` late, so the other images are stored first."""
    for path in paths:
        server.add_handler(f"/{path}", lambda handler: time.sleep(seconds) or False)


def by_file(items: list[dict]) -> dict[str, dict]:
    return {item["url"].rsplit("/", 1)[1]: item for item in items}


def test_mark_gives_each_stored_image_its_hash(site, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={site.url}", "-s", "IMGSCRAPER_NEAR_DUPLICATES=mark"],
                       store=tmp_path / "store", out_dir=tmp_path / "out")
    assert result.returncode == 0, result.tail()
    items = by_file(result.items)
    assert {item["status"] for item in items.values()} == {"downloaded"}
    hashes = {name: item["phash"] for name, item in items.items()}
    assert all(len(phash) == 16 and int(phash, 16) >= 0 for phash in hashes.values()), hashes
    record = SQLiteRecord.in_store(result.store)
    try:
        assert {name: record.get(item["url"]).phash for name, item in items.items()} == hashes
    finally:
        record.close()
    original = int(hashes["original.jpg"], 16)
    assert all(hamming_distance(original, int(hashes[copy], 16)) <= 6 for copy in COPIES), hashes
    assert hamming_distance(original, int(hashes["unrelated.jpg"], 16)) > 12, hashes
    assert len(result.stored_files()) == 4


def test_off_by_default_no_hash(site, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={site.url}"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert [item["phash"] for item in result.items] == [""] * 4


def test_skip_stores_one_of_each_picture_and_a_later_crawl_skips_too(site, run_crawl, tmp_path):
    delay(site, 1.0, *COPIES)
    try:
        first = run_crawl(["-a", f"url={site.url}", "-s", "IMGSCRAPER_NEAR_DUPLICATES=skip"],
                          store=tmp_path / "store", out_dir=tmp_path / "1")
        assert first.returncode == 0, first.tail()
    finally:
        site.clear_handlers()
    items = by_file(first.items)
    assert items["original.jpg"]["status"] == items["unrelated.jpg"]["status"] == "downloaded"
    original_path = items["original.jpg"]["path"]
    for copy in COPIES:
        assert (items[copy]["status"], items[copy]["reason"], items[copy]["path"]) == (
            "skipped", "near-duplicate", original_path), items[copy]
    assert sorted(f"full/{p.name}" for p in first.stored_files()) == sorted(
        [original_path, items["unrelated.jpg"]["path"]])
    assert first.stats.get("imgscraper/images/skipped/near-duplicate") == 2

    second = run_crawl(["-a", f"url={site.url}", "-s", "IMGSCRAPER_NEAR_DUPLICATES=skip"],
                       store=tmp_path / "store", out_dir=tmp_path / "2")
    assert second.returncode == 0, second.tail()
    items = by_file(second.items)
    assert items["original.jpg"]["status"] == items["unrelated.jpg"]["status"] == "uptodate"
    for copy in COPIES:
        assert (items[copy]["status"], items[copy]["reason"], items[copy]["path"]) == (
            "skipped", "near-duplicate", original_path), items[copy]
    assert len(second.stored_files()) == 2


def test_near_duplicates_arriving_together_one_stored(site, run_crawl, tmp_path):
    together = ("original.jpg", "reencoded.webp", "copy.png")
    barrier = threading.Barrier(len(together), timeout=5)

    def all_at_once(handler) -> bool:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return False

    for name in together:
        site.add_handler(f"/{name}", all_at_once)
    try:
        result = run_crawl(["-a", f"url={site.url}together.html", "-s", "IMGSCRAPER_NEAR_DUPLICATES=skip"],
                           store=tmp_path / "store", out_dir=tmp_path / "out")
        assert result.returncode == 0, result.tail()
    finally:
        site.clear_handlers()
    assert not barrier.broken, "the three images were not requested at the same time"
    items = by_file(result.items)
    stored = [name for name in together if items[name]["status"] == "downloaded"]
    assert len(stored) == 1, items
    for name in set(together) - set(stored):
        assert (items[name]["status"], items[name]["reason"], items[name]["path"]) == (
            "skipped", "near-duplicate", items[stored[0]]["path"])
    assert len(result.stored_files()) == 1


def test_a_larger_copy_after_a_smaller_one_is_stored_too(site, run_crawl, tmp_path):
    """First stored wins, unless the newcomer is larger: then both stay (a stored file is never taken back)."""
    delay(site, 1.0, "original.jpg")
    delay(site, 2.0, "reencoded.webp")
    try:
        result = run_crawl(["-a", f"url={site.url}", "-s", "IMGSCRAPER_NEAR_DUPLICATES=skip"],
                           store=tmp_path / "store", out_dir=tmp_path / "out")
        assert result.returncode == 0, result.tail()
    finally:
        site.clear_handlers()
    items = by_file(result.items)
    assert items["resized.jpg"]["status"] == items["original.jpg"]["status"] == "downloaded"
    assert (items["reencoded.webp"]["status"], items["reencoded.webp"]["path"]) == (
        "skipped", items["original.jpg"]["path"])


def test_skip_into_an_s3_store(site, run_crawl, s3_endpoint, tmp_path):
    """The same choices in an S3 store, whose record (in the bucket) a second crawl reads the hashes from."""
    from tests.support.servers import S3_ENV, s3_client

    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="near-duplicates")
    args = ["-a", f"url={site.url}", "-s", "IMGSCRAPER_NEAR_DUPLICATES=skip", "-s", f"AWS_ENDPOINT_URL={s3_endpoint}"]
    delay(site, 1.0, *COPIES)
    try:
        first = run_crawl(args, store="s3://near-duplicates/store", out_dir=tmp_path / "1", env=S3_ENV)
    finally:
        site.clear_handlers()
    second = run_crawl(args, store="s3://near-duplicates/store", out_dir=tmp_path / "2", env=S3_ENV)
    keys = [entry["Key"] for entry in client.list_objects_v2(Bucket="near-duplicates", Prefix="store/full/").get("Contents", [])]
    for result in (first, second):
        assert result.returncode == 0, result.tail()
        items = by_file(result.items)
        original_path = items["original.jpg"]["path"]
        for copy in COPIES:
            assert (items[copy]["status"], items[copy]["reason"], items[copy]["path"]) == (
                "skipped", "near-duplicate", original_path), items[copy]
    assert by_file(second.items)["original.jpg"]["status"] == "uptodate"
    assert sorted(keys) == sorted(f"store/{by_file(first.items)[name]['path']}" for name in ("original.jpg", "unrelated.jpg"))
