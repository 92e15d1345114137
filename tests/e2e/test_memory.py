"""Memory flat as a crawl grows: what a crawl holds after 200 pages is what it held after 50.

A crawl of a URL list of generated article pages (tens of KB of HTML each, images referenced in
every way discovery reads), listed without downloading, with a probe in the crawl process
(:mod:`tests.support.memory_probe`) that looks at what is alive after the 50th and the 200th page,
as the crawl runs: garbage not yet freed counts, as it holds memory all the same.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.support.httpserver import HTTPTestServer

PAGES = 200
FIRST, LAST = 50, PAGES
#: Allowed growth per page between the two looks: a third of a page's HTML. A page kept alive
#: holds its body and its text (and its parsed tree, which tracemalloc does not see); the spider
#: keeps about a hundred bytes per new image URL.
MAX_BYTES_PER_PAGE = 10_000
#: Pages (and their selectors) in flight at one time: CONCURRENT_REQUESTS.
MAX_PAGES_ALIVE = 16

_WORDS = "the of and to in a is that for it as was with be by on not city market report season".split()


def _article(rng: random.Random, n: int) -> str:
    """An article page of about 30 KB that references 12 images in the ways pages do."""
    image = [f"/media/{n}/{k}.jpg" for k in range(12)]
    body = []
    for k, url in enumerate(image[4:]):
        text = " ".join(rng.choice(_WORDS) for _ in range(300))
        markup = (f'<img src="{url}" alt="photo {k}">', f'<img srcset="{url} 1200w, /small/{n}/{k}.jpg 300w">',
                  f'<img class="lazy" data-src="{url}">', f'<div style="background-image: url({url})"></div>')[k % 4]
        body.append(f"<p>{text}</p>{markup}")
    script = "".join(f"function f{k}(a){{return a+{rng.randrange(10**6)}}};" for k in range(250))
    return (
        f'<!DOCTYPE html><html><head><title>Article {n}</title><meta property="og:image" content="{image[0]}">'
        f'<style>.hero{{background:url({image[1]})}}</style><script>{script}</script>'
        f'<script type="application/ld+json">{{"@type": "NewsArticle", "image": ["{image[2]}", "{image[3]}"]}}</script>'
        f'</head><body><div class="hero"></div>{"".join(body)}'
        f'{"".join(f"<a href=/news/{(n + k) % PAGES}.html>more</a>" for k in range(1, 30))}</body></html>'
    )


@pytest.fixture(scope="module")
def articles(tmp_path_factory):
    root = tmp_path_factory.mktemp("articles")
    (root / "news").mkdir()
    rng = random.Random(26)
    for n in range(PAGES):
        (root / "news" / f"{n}.html").write_text(_article(rng, n), encoding="utf-8")
    with HTTPTestServer(root) as server:
        urls = root / "urls.txt"
        urls.write_text("".join(f"{server.url}news/{n}.html\n" for n in range(PAGES)))
        yield urls


def test_a_crawl_holds_nothing_per_page(articles, run_crawl, tmp_path):
    probe = tmp_path / "memory.json"
    result = run_crawl(
        ["-a", f"urls_file={articles}", "-a", "download=no",
         "-s", 'EXTENSIONS={"tests.support.memory_probe.MemoryProbe": 0}'],
        env={"MEMORY_PROBE_FILE": str(probe), "MEMORY_PROBE_PAGES": f"{FIRST},{LAST}"},
    )
    assert result.returncode == 0, result.tail()
    assert result.stats["imgscraper/pages"] == PAGES
    first, last = json.loads(probe.read_text())
    pages = last["pages"] - first["pages"]
    assert (last["traced"] - first["traced"]) / pages < MAX_BYTES_PER_PAGE, (first, last)
    for kind in ("HtmlResponse", "Selector"):
        assert last["live"].get(kind, 0) <= MAX_PAGES_ALIVE, (kind, first, last)
