"""Images named only in a page's inline scripts (a gallery's data), crawled for real."""

from __future__ import annotations

import pytest

from tests.support.httpserver import HTTPTestServer
from tests.support.images import png
from tests.support.sitegen import sha256


@pytest.fixture
def script_site(tmp_path):
    files = {
        "index.html": b"""<html><body><div id="gallery"></div>
<script>
  var gallery = {"photos": [{"full": "\\/photos\\/one.png"}, {"full": "/photos/two.png?v=3"}],
                 "bundle": "/static/app.js"};
</script>
<script type="application/json" id="state">{"hero": "/photos/hero.png"}</script>
</body></html>""",
        "photos/one.png": png("one", (40, 30)),
        "photos/two.png": png("two", (40, 30)),
        "photos/hero.png": png("hero", (40, 30)),
        "static/app.js": b"console.log('not an image');",
        "robots.txt": b"User-agent: *\nDisallow:\n",
    }
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with HTTPTestServer(tmp_path) as server:
        expected = {
            server.url_for(path): sha256(files[path.partition("?")[0]])
            for path in ("photos/one.png", "photos/two.png?v=3", "photos/hero.png")
        }
        yield server, expected


def test_images_quoted_in_inline_scripts_are_stored(script_site, run_crawl):
    server, expected = script_site
    result = run_crawl(["-a", f"url={server.url}"])
    assert result.returncode == 0, result.tail()
    stored = {i["url"]: i["checksum"] for i in result.items if i["status"] == "downloaded"}
    assert stored == expected
    assert len(result.items) == 3
    assert server.log.count(path="/static/app.js") == 0


def test_script_images_are_not_taken_when_the_setting_is_off(script_site, run_crawl):
    server, _ = script_site
    result = run_crawl(["-a", f"url={server.url}", "-s", "IMGSCRAPER_SCRIPT_IMAGES=False"])
    assert result.returncode == 0 and result.items == []
    assert server.log.count(path_prefix="/photos/") == 0
