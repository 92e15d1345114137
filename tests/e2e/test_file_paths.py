"""IMGSCRAPER_FILE_PATH crawled whole: readable names with spaces, UTF-8, reserved characters and
240-byte file names, on disk and in the S3 test server; the same bytes found at two URLs on two
pages are one file; a second run keeps every path and transfers nothing; the gallery and the
thumbnails follow the paths."""

from __future__ import annotations

import base64
import html
import re
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest

from imgscraper.pipelines.images import CONTENT_NAMESPACE
from tests.support.httpserver import HTTPTestServer
from tests.support.images import jpeg, png
from tests.support.servers import S3_ENV, s3_client

TEMPLATE = "{page_host}/{page_path}/{alt} {name}-{uuid}{ext}"
LONG_ASCII = "n" * 236  # + ".png": a 240-byte file name
LONG_UTF8 = "é" * 118  # + ".png": 240 bytes of UTF-8
INDEX = f"""<!DOCTYPE html><html><head><title>Photos</title></head><body>
<img src="photos/caf%C3%A9%20au%20lait.jpg" alt="A cup: the best? &lt;yes&gt;">
<img src="photos/{LONG_ASCII}.png" alt="long">
<img src="photos/{LONG_UTF8}.png">
<img src="photos/same-a.png" alt="..">
<img src="data:image/png;base64,{base64.b64encode(png("data", (8, 8))).decode()}">
<a href="blog/2023/second%20post.html">more</a>
</body></html>
"""
SECOND = '<!DOCTYPE html><html><body><img src="/photos/same-b.png" alt="again"></body></html>'


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("paths-site")
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    (root / "blog" / "2023").mkdir(parents=True)
    (root / "blog" / "2023" / "second post.html").write_text(SECOND, encoding="utf-8")
    photos = root / "photos"
    photos.mkdir()
    (photos / "café au lait.jpg").write_bytes(jpeg("cafe", (60, 40)))
    (photos / f"{LONG_ASCII}.png").write_bytes(png("long ascii", (30, 20)))
    (photos / f"{LONG_UTF8}.png").write_bytes(png("long utf8", (30, 20)))
    for name in ("same-a.png", "same-b.png"):
        (photos / name).write_bytes(png("same", (50, 50)))
    with HTTPTestServer(root) as served:
        yield served


def file_uuid(item: dict) -> str:
    return str(uuid.uuid5(CONTENT_NAMESPACE, item["checksum"]))


def check_paths(items: list[dict], base: str) -> dict[str, str]:
    """The path of each downloaded image by its URL's file name, every component checked."""
    paths = {}
    for item in items:
        assert item["status"] in ("downloaded", "uptodate"), item
        for component in item["path"].split("/"):
            assert 0 < len(component.encode("utf-8")) <= 255, component
            assert not re.search(r'[<>:"\\|?*\x00-\x1f]', component) and component.strip(" .") == component
        assert item["path"].endswith(f"-{file_uuid(item)}.{item['format'].lower().replace('jpeg', 'jpg')}")
        paths[file_name(item, base)] = item["path"]
    return paths


def file_name(item: dict, base: str) -> str:
    """The file name of the item's URL on the test server, ``data`` for a ``data:`` URI."""
    return unquote(item["url"].rsplit("/", 1)[-1]) if item["url"].startswith(base) else "data"


def test_readable_paths_on_disk_and_a_second_run_transfers_nothing(server, run_crawl, tmp_path):
    args = ["-a", f"url={server.url}", "-a", "depth=1", "-s", f"IMGSCRAPER_FILE_PATH={TEMPLATE}",
            "-s", 'IMAGES_THUMBS={"small": [20, 20]}']
    first = run_crawl(args, out_dir=tmp_path / "first", store=tmp_path / "store", servers=[server])
    assert first.returncode == 0, first.tail()
    paths = check_paths(first.items, server.url)
    by_url = {file_name(item, server.url): item for item in first.items}
    assert paths["café au lait.jpg"] == f"127.0.0.1/A cup_ the best_ _yes_ café au lait-{file_uuid(by_url['café au lait.jpg'])}.jpg"
    long_ascii, long_utf8 = paths[f"{LONG_ASCII}.png"], paths[f"{LONG_UTF8}.png"]
    assert long_ascii.startswith("127.0.0.1/long nnnn") and len(long_ascii.split("/")[1].encode("utf-8")) == 255
    assert long_utf8.startswith("127.0.0.1/éééé") and 253 <= len(long_utf8.split("/")[1].encode("utf-8")) <= 255
    assert paths["data"] == f"127.0.0.1/-{file_uuid(by_url['data'])}.png"  # no name, no alt
    # The same bytes on two pages under two URLs: one file, where the first page put it.
    assert paths["same-a.png"] == paths["same-b.png"]
    assert paths["same-a.png"] in (f"127.0.0.1/same-a-{file_uuid(by_url['same-a.png'])}.png",
                                   f"127.0.0.1/blog/2023/second post.html/again same-b-{file_uuid(by_url['same-b.png'])}.png")
    store = tmp_path / "store"
    images = {p.relative_to(store).as_posix() for p in first.stored_files() if p.parts[len(store.parts)] != "thumbs"}
    assert images == set(paths.values())
    for path in images:
        assert (store / "thumbs" / "small" / Path(path).with_suffix(".jpg")).is_file()
    gallery = (store / "index.html").read_text(encoding="utf-8")
    linked = {unquote(html.unescape(href)) for href in re.findall(r'<a class="tile" href="([^"]+)"', gallery)}
    assert linked == images
    sources = {unquote(html.unescape(src)) for src in re.findall(r'<img src="([^"]+)"', gallery)}
    assert sources == {f"thumbs/small/{Path(path).with_suffix('.jpg').as_posix()}" for path in images}

    second = run_crawl(args, out_dir=tmp_path / "second", store=store, servers=[server])
    assert second.returncode == 0, second.tail()
    assert {item["status"] for item in second.items if not item["url"].startswith("data:")} == {"uptodate"}
    assert check_paths(second.items, server.url) == paths
    assert [r.url_path for r in second.requests if r.url_path.startswith("/photos/")] == []


@pytest.fixture(scope="module")
def s3(s3_endpoint):
    client = s3_client(s3_endpoint)
    client.create_bucket(Bucket="paths")
    return s3_endpoint, client


def test_readable_paths_are_s3_keys(server, run_crawl, tmp_path, s3):
    endpoint, client = s3
    args = ["-a", f"url={server.url}", "-a", "depth=1", "-s", f"IMGSCRAPER_FILE_PATH={TEMPLATE}",
            "-s", f"AWS_ENDPOINT_URL={endpoint}"]
    result = run_crawl(args, out_dir=tmp_path, store="s3://paths/crawl", env=S3_ENV, servers=[server])
    assert result.returncode == 0, result.tail()
    paths = check_paths(result.items, server.url)
    keys = {entry["Key"].removeprefix("crawl/") for entry in client.list_objects_v2(Bucket="paths")["Contents"]}
    assert {key for key in keys if not key.startswith(".imgscraper/")} == set(paths.values())
    assert paths["same-a.png"] == paths["same-b.png"]
    assert client.get_object(Bucket="paths", Key=f"crawl/{paths['café au lait.jpg']}")["Body"].read() == jpeg("cafe", (60, 40))


def test_readable_paths_with_near_duplicates(tmp_path, run_crawl):
    """IMGSCRAPER_NEAR_DUPLICATES=skip with a path template: a smaller re-encoded copy of a stored
    picture is skipped, its item naming the original's readable path; the original is stored once."""
    from tests.support.images import encode, picture

    original = picture("harbour", (320, 240))
    root = tmp_path / "site"
    root.mkdir()
    (root / "big.png").write_bytes(encode(original, "PNG"))
    (root / "small.jpg").write_bytes(encode(original.resize((160, 120)), "JPEG", quality=90))
    (root / "index.html").write_text('<img src="big.png" alt="harbour"><img src="small.jpg" alt="copy">',
                                     encoding="utf-8")
    with HTTPTestServer(root, latency=0.05) as served:
        # The copy is requested once the original is stored: one request at a time.
        result = run_crawl(["-a", f"url={served.url}", "-s", "IMGSCRAPER_NEAR_DUPLICATES=skip",
                            "-s", "IMGSCRAPER_FILE_PATH={alt}/{name}-{uuid}{ext}", "-s", "CONCURRENT_REQUESTS=1"],
                           store=tmp_path / "store", out_dir=tmp_path, servers=[served])
    assert result.returncode == 0, result.tail()
    by_name = {item["url"].rsplit("/", 1)[-1]: item for item in result.items}
    stored = by_name["big.png"]
    assert stored["status"] == "downloaded" and stored["path"].startswith("harbour/big-"), stored
    copy = by_name["small.jpg"]
    assert (copy["status"], copy["reason"]) == ("skipped", "near-duplicate"), copy
    assert copy["path"] == stored["path"]
    assert [p.relative_to(tmp_path / "store").as_posix() for p in result.stored_files()] == [stored["path"]]
