"""``-a originals=yes`` crawled whole: thumbnails give way to their originals, one original reached
from several thumbnails (on several pages) is fetched and stored once, an original that is not found
gives way to the thumbnail the page named (a stat, no failure line), listing lists the originals, and
the user's rules come first."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.images import jpeg

UPLOADS = "wp-content/uploads/2023/05"
INDEX = f"""<!DOCTYPE html><html><head><title>Harbour</title></head><body>
<img src="/{UPLOADS}/harbour-300x200.jpg" alt="Harbour">
<img src="/{UPLOADS}/harbour-1024x683.jpg">
<img src="/{UPLOADS}/gone-300x200.jpg">
<img src="/thumbs/bridge.jpg">
<a href="second.html">more</a>
</body></html>
"""
SECOND = f'<!DOCTYPE html><html><body><img src="/{UPLOADS}/harbour-150x150.jpg"></body></html>'
RULES = json.dumps({"/thumbs/": "/full/"})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("originals-site")
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    (root / "second.html").write_text(SECOND, encoding="utf-8")
    (root / UPLOADS).mkdir(parents=True)
    (root / UPLOADS / "harbour.jpg").write_bytes(jpeg("harbour", (120, 80)))
    for size in ("300x200", "1024x683", "150x150"):
        (root / UPLOADS / f"harbour-{size}.jpg").write_bytes(jpeg(f"harbour {size}", (30, 20)))
    (root / UPLOADS / "gone-300x200.jpg").write_bytes(jpeg("gone thumbnail", (30, 20)))
    for folder, size in (("thumbs", (30, 20)), ("full", (120, 80))):
        (root / folder).mkdir()
        (root / folder / "bridge.jpg").write_bytes(jpeg(f"bridge {folder}", size))
    with HTTPTestServer(root) as served:
        yield served


def crawl_args(server: HTTPTestServer, *more: str) -> list[str]:
    return ["-a", f"url={server.url}", "-a", "depth=1", "-a", "originals=yes",
            "-s", f"IMGSCRAPER_ORIGINALS_RULES={RULES}", *more]


def test_originals_are_stored_once_and_a_missing_one_gives_way_to_its_thumbnail(server, run_crawl, tmp_path):
    result = run_crawl(crawl_args(server), out_dir=tmp_path, servers=[server])
    assert result.returncode == 0, result.tail()
    base = server.url.rstrip("/")
    assert {item["url"]: (item["original_of"], item["status"], item["width"]) for item in result.items} == {
        f"{base}/{UPLOADS}/harbour.jpg": (f"{base}/{UPLOADS}/harbour-300x200.jpg", "downloaded", 120),
        f"{base}/{UPLOADS}/gone-300x200.jpg": ("", "downloaded", 30),
        f"{base}/full/bridge.jpg": (f"{base}/thumbs/bridge.jpg", "downloaded", 120),
    }
    images = sorted(request.url_path for request in result.requests if not request.url_path.endswith((".html", "/", ".txt")))
    assert images == sorted([f"/{UPLOADS}/harbour.jpg", f"/{UPLOADS}/gone.jpg", f"/{UPLOADS}/gone-300x200.jpg",
                             "/full/bridge.jpg"])
    assert len(result.stored_files()) == 3
    assert "gone" not in "\n".join(line for line in result.log.splitlines() if "WARNING" in line or "ERROR" in line)
    assert result.stats["imgscraper/originals/stored"] == 2
    assert re.search(r"originals stored +2\n +thumbnails instead +1\n", result.log)
    assert result.stats["imgscraper/originals/fallback/http-404"] == 1
    assert "imgscraper/images/failed" not in result.stats


def test_listing_lists_the_originals(server, run_crawl, tmp_path):
    result = run_crawl(crawl_args(server, "-a", "download=no"), out_dir=tmp_path, servers=[server])
    assert result.returncode == 0, result.tail()
    base = server.url.rstrip("/")
    assert {item["url"]: item["original_of"] for item in result.items} == {
        f"{base}/{UPLOADS}/harbour.jpg": f"{base}/{UPLOADS}/harbour-300x200.jpg",
        f"{base}/{UPLOADS}/gone.jpg": f"{base}/{UPLOADS}/gone-300x200.jpg",
        f"{base}/full/bridge.jpg": f"{base}/thumbs/bridge.jpg",
    }
    assert {item["status"] for item in result.items} == {"listed"}
    assert all(request.url_path.endswith((".html", "/", ".txt")) for request in result.requests)


def test_without_originals_the_thumbnails_are_stored(server, run_crawl, tmp_path):
    result = run_crawl(["-a", f"url={server.url}", "-a", "depth=1"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert len(result.items) == 5 and all(item["original_of"] == "" for item in result.items)


@pytest.mark.parametrize(("args", "error"), [
    (["-s", 'IMGSCRAPER_ORIGINALS_RULES={"(thumbs": "full"}'],
     "Bad setting: IMGSCRAPER_ORIGINALS_RULES='{\"(thumbs\": \"full\"}' has a bad rule '(thumbs' -> 'full'"),
    (["-a", "originals=maybe"], "Bad argument: originals 'maybe' is not yes or no: pass e.g. -a originals=no"),
])
def test_a_bad_rule_or_argument_is_one_error_line_and_nothing_is_fetched(server, run_crawl, tmp_path, args, error):
    result = run_crawl(["-a", f"url={server.url}", "-a", "originals=yes", *args], out_dir=tmp_path, servers=[server])
    assert result.returncode == 1
    (line,) = result.error_lines()
    assert error in line
    assert result.requests == []
