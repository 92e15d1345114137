"""``IMAGES_STORE=s3://bucket/prefix`` against a real S3 endpoint (moto_server).

The generated site is crawled into a bucket, then again (everything up to
date, no image fetched), then with ``IMAGES_EXPIRES=0`` (conditional
re-fetches answered 304). Checked in the bucket itself: one object per
distinct image, named like the local store, byte-exact, with the right
``Content-Type``, and the store record next to them.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from imgscraper.pipelines.records import ImageRecord, S3Record
from tests.support.servers import S3_ENV, s3_client

BUCKET = "images"
PREFIX = "crawls/site"
STORE = f"s3://{BUCKET}/{PREFIX}"
NAME = re.compile(r"^full/[0-9a-f-]{36}\.(jpg|png|gif|webp|bmp|ico|svg)$")
CONTENT_TYPES = {
    "JPEG": {"image/jpeg"},
    "PNG": {"image/png"},
    "GIF": {"image/gif"},
    "WEBP": {"image/webp"},
    "BMP": {"image/bmp"},
    "ICO": {"image/x-icon", "image/vnd.microsoft.icon"},
    "SVG": {"image/svg+xml"},
}


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    return s3_endpoint, client


def bucket_objects(client, prefix: str) -> dict[str, bytes]:
    """Key (relative to ``prefix``) -> bytes of every object under ``prefix``."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for entry in page.get("Contents", []):
            out[entry["Key"][len(prefix):]] = client.get_object(Bucket=BUCKET, Key=entry["Key"])["Body"].read()
    return out


def images_in(objects: dict[str, bytes]) -> dict[str, bytes]:
    """The objects outside the store's metadata folder ``.imgscraper/``."""
    return {key: data for key, data in objects.items() if not key.startswith(".imgscraper/")}


@pytest.fixture(scope="module")
def crawls(s3, site_server_module, run_crawl):
    endpoint, client = s3
    srv = site_server_module
    args = ["-a", f"url={srv.url}", "-a", "depth=2", "-s", f"AWS_ENDPOINT_URL={endpoint}"]
    first = run_crawl(args, store=STORE, env=S3_ENV, servers=srv.servers)
    assert first.returncode == 0, first.tail()
    objects_after_first = images_in(bucket_objects(client, f"{PREFIX}/"))
    second = run_crawl(args, store=STORE, env=S3_ENV, servers=srv.servers)
    assert second.returncode == 0, second.tail()
    objects_after_second = images_in(bucket_objects(client, f"{PREFIX}/"))
    expired = run_crawl([*args, "-s", "IMAGES_EXPIRES=0"], store=STORE, env=S3_ENV, servers=srv.servers)
    assert expired.returncode == 0, expired.tail()
    return first, objects_after_first, second, objects_after_second, expired


def image_requests(srv, result, urls):
    return [r for url in urls if not url.startswith("data:") for r in srv.requests_for(url, result.requests)]


def test_s3_store_holds_every_image_once_byte_exact(crawls, site_server_module):
    first, objects, *_ = crawls
    site = site_server_module.site
    expected = site.stored_at(2)
    items = first.by_url()
    assert {u for u in expected if items.get(u, {}).get("status") != "downloaded"} == set()
    assert set(objects) == {items[u]["path"] for u in expected}
    assert all(NAME.match(key) for key in objects)
    assert len(objects) == len(set(expected.values()))
    for url, sha in expected.items():
        assert hashlib.sha256(objects[items[url]["path"]]).hexdigest() == sha, url
        assert items[url]["checksum"] == sha


def test_s3_objects_have_the_content_type_of_their_format(crawls, site_server_module, s3):
    first, *_ = crawls
    _, client = s3
    site = site_server_module.site
    for url in site.stored_at(2):
        path = first.by_url()[url]["path"]
        head = client.head_object(Bucket=BUCKET, Key=f"{PREFIX}/{path}")
        assert head["ContentType"] in CONTENT_TYPES[site.images[url].format], (url, head["ContentType"])


def test_s3_store_record_lives_in_the_bucket(crawls, site_server_module, s3):
    first, *_ = crawls
    _, client = s3
    expected = {u for u in site_server_module.site.stored_at(2) if not u.startswith("data:")}
    every = S3Record(client, BUCKET, f"{PREFIX}/").all()
    records = {r.url: r for r in every if not r.rejected}
    assert set(records) == expected
    for url in expected:
        assert records[url].path == first.by_url()[url]["path"]
        assert records[url].etag  # the test server sends ETags: kept for revalidation
    # Images rejected for their bytes are remembered too (not fetched again while fresh).
    rejected = {r.url: r.rejected for r in every if r.rejected}
    site = site_server_module.site
    want = {**site.skipped_at(2), **site.failed_at(2)}
    assert rejected == {u: r for u, r in want.items() if r in ("too-small", "not-an-image") and not u.startswith("data:")}
    assert all(r.path == "" for r in every if r.rejected)


def test_s3_recrawl_fetches_no_stored_image(crawls, site_server_module):
    _, objects_first, second, objects_second, _ = crawls
    srv = site_server_module
    expected = srv.site.stored_at(2)
    items = second.by_url()
    assert {u: items.get(u, {}).get("status") for u in expected} == dict.fromkeys(expected, "uptodate")
    assert image_requests(srv, second, expected) == []
    assert objects_second == objects_first


def test_s3_expired_images_are_revalidated(crawls, site_server_module):
    *_, objects_second, expired = crawls
    srv = site_server_module
    expected = srv.site.stored_at(2)
    items = expired.by_url()
    assert {u: items.get(u, {}).get("status") for u in expected} == dict.fromkeys(expected, "uptodate")
    requests = image_requests(srv, expired, [u for u in expected if srv.site.on_host(u)])
    assert requests and all(r.header("If-None-Match") and r.status == 304 for r in requests)


def test_s3_record_unit(s3):
    _, client = s3
    record = S3Record(client, BUCKET, "unit/")
    assert record.get("http://x/a.png") is None
    entry = ImageRecord(url="http://x/a.png", path="full/a.png", checksum="c", format="PNG",
                        width=2, height=3, size=4, etag='"e"', stored_at=1.0)
    record.put(entry)
    assert record.get("http://x/a.png") == entry
    record.touch("http://x/a.png", 5.0)
    assert record.get("http://x/a.png").stored_at == 5.0
    assert record.get("http://x/b.png") is None
    assert record.all() == [record.get("http://x/a.png")]
