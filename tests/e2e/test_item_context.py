"""Each item carries how its page showed the image (alt, title, figure caption, page title, chosen
srcset descriptor), in listing mode and when stored, and the store's record keeps it."""

from __future__ import annotations

import pytest

from imgscraper.pipelines.records import SQLiteRecord
from tests.support.httpserver import HTTPTestServer
from tests.support.images import jpeg, png

PAGE = """<!DOCTYPE html><html><head><title>  Harbour
  photos </title></head><body>
<figure><img src="a.jpg" alt="Harbour" title="Dawn"><figcaption>The harbour at <b>dawn</b></figcaption></figure>
<img src="small.png" srcset="small.png 400w, large.png 800w" alt="Sizes">
<img src="b.png"><img src="b.png" alt="Second reference">
<div style="background-image: url(bg.png)">a CSS background</div>
</body></html>
"""

#: (alt, title, caption, page_title, srcset_descriptor) by image file name.
EXPECTED = {
    "a.jpg": ("Harbour", "Dawn", "The harbour at dawn", "Harbour photos", ""),
    "small.png": ("Sizes", "", "", "Harbour photos", ""),
    "large.png": ("Sizes", "", "", "Harbour photos", "800w"),
    "b.png": ("Second reference", "", "", "Harbour photos", ""),
    "bg.png": ("", "", "", "Harbour photos", ""),
}
FIELDS = ("alt", "title", "caption", "page_title", "srcset_descriptor")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("context-site")
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    (root / "a.jpg").write_bytes(jpeg("a", (64, 48)))
    for name, size in (("small", (40, 30)), ("large", (80, 60)), ("b", (20, 20)), ("bg", (30, 10))):
        (root / f"{name}.png").write_bytes(png(name, size))
    with HTTPTestServer(root) as served:
        yield served


def context_by_file(items: list[dict]) -> dict[str, tuple[str, ...]]:
    return {item["url"].rsplit("/", 1)[1]: tuple(item[name] for name in FIELDS) for item in items}


@pytest.mark.parametrize("download", ["no", "yes"])
def test_items_carry_the_page_context(server, run_crawl, tmp_path, download):
    result = run_crawl(["-a", f"url={server.url}", "-a", f"download={download}"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert context_by_file(result.items) == EXPECTED
    assert {item["status"] for item in result.items} == ({"listed"} if download == "no" else {"downloaded"})
    if download == "yes":
        record = SQLiteRecord.in_store(result.store)
        try:
            stored = {item["url"].rsplit("/", 1)[1]: record.get(item["url"]) for item in result.items}
        finally:
            record.close()
        assert {name: tuple(getattr(entry, field) for field in FIELDS) for name, entry in stored.items()} == EXPECTED
        gallery = (result.store / "index.html").read_text(encoding="utf-8")
        assert ">Harbour photos</a></h2>" in gallery
        assert '<div class="alt">Harbour</div><div class="caption">The harbour at dawn</div>' in gallery
