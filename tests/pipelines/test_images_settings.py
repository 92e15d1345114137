"""The pipeline's settings, each checked on a real crawl of the generated site."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from PIL import Image

from tests.support.httpserver import HTTPTestServer
from tests.support.images import png


@pytest.fixture(scope="module")
def srv(site_server_module):
    return site_server_module


def stored(result) -> dict[str, dict]:
    return {i["url"]: i for i in result.items if i["status"] == "downloaded"}


def test_random_file_names_are_uuid4_minted_once_per_image(srv, run_crawl):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=0", "-s", "IMGSCRAPER_FILE_NAMES=random"])
    assert result.returncode == 0, result.tail()
    items = stored(result)
    assert set(items) == set(srv.site.stored_at(0))
    for item in items.values():
        path = result.store / item["path"]
        assert uuid.UUID(Path(item["path"]).stem).version == 4
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["checksum"] == srv.site.images[item["url"]].sha256
    # Every item has its own file: aliases are not merged in random mode.
    assert len({i["path"] for i in items.values()}) == len(items) == len(result.stored_files())


def test_stable_names_derive_from_the_bytes(srv, run_crawl):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=0"])
    assert result.returncode == 0, result.tail()
    for item in stored(result).values():
        expected = uuid.uuid5(uuid.UUID("6f1c8a52-3a57-4d5e-9a43-8e2f0b4d7c11"), item["checksum"])
        assert Path(item["path"]).stem == str(expected)


def test_convert_to_jpeg_reencodes_non_jpegs_with_transparency_on_white(srv, run_crawl):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=0", "-s", "IMGSCRAPER_CONVERT_TO_JPEG=True"])
    assert result.returncode == 0, result.tail()
    items = stored(result)
    assert items and {Path(i["path"]).suffix for i in items.values()} <= {".jpg", ".svg"}
    rgba = [u for u, i in items.items() if srv.site.images[u].mode == "RGBA" and srv.site.images[u].format == "PNG"]
    assert rgba, "the site has an RGBA PNG on its start page"
    with Image.open(result.store / items[rgba[0]]["path"]) as image:
        assert image.format == "JPEG"
        # sitegen's RGBA PNG has a fully transparent band at the top-left.
        assert image.convert("RGB").getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=8)
    jpegs = [u for u in items if srv.site.images[u].format == "JPEG"]
    assert jpegs and all(items[u]["checksum"] == srv.site.images[u].sha256 for u in jpegs), "JPEGs are kept as served"


def test_thumbs_given_on_the_command_line_as_json(srv, run_crawl):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=0", "-s", 'IMAGES_THUMBS={"small": [32, 32]}'])
    assert result.returncode == 0, result.tail()
    items = stored(result)
    raster = [i for i in items.values() if i["format"] != "SVG"]
    thumbs = sorted((result.store / "thumbs" / "small").iterdir())
    assert {p.stem for p in thumbs} == {Path(i["path"]).stem for i in raster}
    for thumb in thumbs:
        with Image.open(thumb) as image:
            assert image.format == "JPEG" and max(image.size) <= 32
    assert "Traceback" not in result.stderr


def test_min_width_skips_small_images_from_the_header_without_traceback(srv, run_crawl):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=0", "-s", "IMAGES_MIN_WIDTH=100"])
    assert result.returncode == 0, result.tail()
    too_small = [i for i in result.items if i["reason"] == "too-small"]
    assert too_small and all(i["status"] == "skipped" and i["path"] == "" for i in too_small)
    small_urls = {u for u, i in srv.site.images.items() if i.width is not None and i.width < 100}
    assert small_urls & set(srv.site.stored_at(0)) <= {i["url"] for i in too_small}
    assert all(i["width"] >= 100 for i in stored(result).values() if i["width"])
    assert "Traceback" not in result.stderr


def test_tracking_pixels_kept_when_the_setting_is_off(srv, run_crawl):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=0", "-s", "IMGSCRAPER_SKIP_TRACKING_PIXELS=False"])
    assert result.returncode == 0, result.tail()
    pixels = [i for i in result.items if (i["width"], i["height"]) == (1, 1)]
    assert pixels and all(i["status"] == "downloaded" for i in pixels)
    assert all((result.store / i["path"]).is_file() for i in pixels)


def test_remembered_rejections_follow_the_size_limits_of_each_crawl(srv, run_crawl, tmp_path):
    """A too-small image is not fetched again while its rejection is fresh, unless
    this crawl's limits would take it, or IMGSCRAPER_EXPIRES says it is stale."""
    store = tmp_path / "store"
    args = ["-a", f"url={srv.url}", "-a", "depth=0"]
    strict = ["-s", "IMAGES_MIN_WIDTH=100"]

    def run(extra: list[str]):
        srv.clear_logs()
        result = run_crawl(args + extra, store=store)
        assert result.returncode == 0, result.tail()
        srv.server.log.wait_idle()
        result.requests = srv.all_requests()
        return result

    first = run(strict)
    small = {
        i["url"] for i in first.items
        if i["reason"] == "too-small" and srv.site.images[i["url"]].width > 1 and not i["url"].startswith("data:")
    }
    assert small, "the start page has images narrower than 100 px"

    again = run(strict)
    assert {i["url"]: (i["status"], i["reason"]) for i in again.items if i["url"] in small} == {
        url: ("skipped", "too-small") for url in small
    }
    assert not [url for url in small if srv.requests_for(url, again.requests)]

    stale = run(strict + ["-s", "IMGSCRAPER_EXPIRES=0"])
    assert all(srv.requests_for(url, stale.requests) for url in small)

    relaxed = run([])
    items = relaxed.by_url()
    assert {items[url]["status"] for url in small} == {"downloaded"}
    assert all((store / items[url]["path"]).is_file() for url in small)


@pytest.mark.parametrize("skip", [True, False])
def test_blank_svg_placeholders_are_skipped_like_tracking_pixels(tmp_path, run_crawl, skip):
    blank = b"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 800 600'></svg>"
    placeholder = "data:image/svg+xml,%3Csvg%20xmlns='http://www.w3.org/2000/svg'%20viewBox='0%200%203%202'%3E%3C/svg%3E"
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "blank.svg").write_bytes(blank)
    (tmp_path / "img" / "photo.png").write_bytes(png("photo", (40, 30)))
    (tmp_path / "index.html").write_text(
        f'<img src="{placeholder}" data-src="/img/photo.png"><img src="/img/blank.svg">'
    )
    args = ["-s", f"IMGSCRAPER_SKIP_TRACKING_PIXELS={skip}"]
    with HTTPTestServer(tmp_path) as server:
        result = run_crawl(["-a", f"url={server.url}", *args])
        assert result.returncode == 0, result.tail()
        status = {i["url"]: (i["status"], i["reason"]) for i in result.items}
        expected = ("skipped", "too-small") if skip else ("downloaded", "")
        assert status == {placeholder: expected, server.url_for("img/blank.svg"): expected,
                          server.url_for("img/photo.png"): ("downloaded", "")}
        assert len(result.stored_files()) == (1 if skip else 3)
        # The next crawl remembers the rejection (no second request), and so the stored file.
        server.log.clear()
        again = run_crawl(["-a", f"url={server.url}", *args], store=result.store)
        assert again.returncode == 0, again.tail()
        assert server.log.count(path="/img/blank.svg") == 0


def png_with_broken_data(seed: int) -> bytes:
    """A PNG whose header and trailer are sound (as a check of both finds it) but whose pixel data
    does not inflate: its IDAT bytes garbled, their checksum made right again."""
    import struct
    import zlib

    data = bytearray(png(seed, (64, 64)))
    chunk = data.index(b"IDAT")
    length = struct.unpack(">I", data[chunk - 4:chunk])[0]
    start = chunk + 4
    for index in range(start + 10, start + min(length, 200)):
        data[index] ^= 0x5A
    data[start + length:start + length + 4] = struct.pack(">I", zlib.crc32(bytes(data[chunk:start + length])))
    return bytes(data)


@pytest.mark.parametrize("setting", ['IMAGES_THUMBS={"small": [32, 32]}', "IMGSCRAPER_CONVERT_TO_JPEG=True"])
def test_an_image_whose_pixels_cannot_be_decoded_fails_alone(tmp_path, run_crawl, setting):
    """Thumbnails and JPEG conversion decode the pixels: a PNG whose data is broken fails as
    ``truncated`` (one line, a stat), nothing of it is stored, and the crawl goes on."""
    with HTTPTestServer(tmp_path / "www") as server:
        server.root.mkdir(parents=True, exist_ok=True)
        (server.root / "broken.png").write_bytes(png_with_broken_data(1))
        (server.root / "good.png").write_bytes(png(2, (64, 64)))
        (server.root / "later.png").write_bytes(png(3, (64, 64)))
        (server.root / "index.html").write_text('<img src="broken.png"><img src="good.png"><img src="later.png">')
        result = run_crawl(["-a", f"url={server.url}", "-s", setting, "-s", "CONCURRENT_REQUESTS=1"], servers=[server])
    assert result.returncode == 0, result.tail()
    items = {item["url"].rsplit("/", 1)[1]: item for item in result.items}
    assert (items["broken.png"]["status"], items["broken.png"]["reason"]) == ("failed", "truncated"), items
    assert {items[name]["status"] for name in ("good.png", "later.png")} == {"downloaded"}
    assert result.stats.get("imgscraper/images/failed/truncated") == 1, result.stats
    assert len(list((result.store / "full").iterdir())) == 2
    assert "Traceback" not in result.stderr
