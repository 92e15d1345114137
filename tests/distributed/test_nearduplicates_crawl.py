"""IMGSCRAPER_NEAR_DUPLICATES=skip with one worker and with three sharing a crawl through a real
``redis-server`` (separate ``scrapy crawl`` processes, as on several machines, one local store):
the same images stored, the same copies skipped.

The site: the start page shows :data:`PICTURES` originals and two unrelated pictures, and links to
one page per picture, each showing a resized and a re-encoded copy of a picture. The copies are
served :data:`COPY_DELAY` seconds late, so that the originals are stored first whichever worker
fetches them, and copies reach workers that did not store their original.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import redis
from PIL import Image

from tests.distributed.test_limits import Worker, shared
from tests.support.httpserver import HTTPTestServer
from tests.support.images import encode, picture

pytestmark = [pytest.mark.crawl, pytest.mark.services]

PICTURES, COPY_DELAY = 4, 1.5
SETTINGS = ("IMGSCRAPER_NEAR_DUPLICATES=skip", "CONCURRENT_REQUESTS=2")


class CopiesSite:
    """The site, and which of its files each stored file is."""

    def __init__(self, server: HTTPTestServer, root: Path):
        self.server = server
        files: dict[str, bytes] = {}
        for n in range(1, PICTURES + 1):
            original = picture(f"picture-{n}", (480, 360))
            files[f"o{n}.jpg"] = encode(original, "JPEG", quality=90)
            files[f"r{n}.jpg"] = encode(original.resize((240, 180), Image.Resampling.LANCZOS), "JPEG", quality=80)
            files[f"w{n}.webp"] = encode(original, "WEBP", quality=60)
        for n in (1, 2):
            files[f"u{n}.jpg"] = encode(picture(f"unrelated-{n}", (480, 360)), "JPEG", quality=90)
        originals = [name for name in files if name.startswith(("o", "u"))]
        files["p0.html"] = "".join([*(f'<img src="{name}">' for name in originals),
                                    *(f'<a href="p{n}.html">page</a>' for n in range(1, PICTURES + 1))]).encode()
        for n in range(1, PICTURES + 1):
            # The copies of two pictures, the next one's first.
            files[f"p{n}.html"] = f'<img src="r{n % PICTURES + 1}.jpg"><img src="w{n}.webp">'.encode()
        for name, body in files.items():
            (root / name).write_bytes(body)
        for name in files:
            if name.startswith(("r", "w")):
                server.add_handler(f"/{name}", lambda handler: time.sleep(COPY_DELAY) or False)
        self.originals = sorted(originals)
        self.copies = sorted(name for name in files if name.startswith(("r", "w")))
        self.by_sha = {hashlib.sha256(body).hexdigest(): name for name, body in files.items()}

    def stored(self, store: Path) -> list[str]:
        """The site's names of the files in ``store``; fails on any other file."""
        names = [self.by_sha.get(hashlib.sha256(file.read_bytes()).hexdigest(), file.name)
                 for file in (store / "full").iterdir()]
        assert set(names) <= set(self.by_sha.values()), names
        return sorted(names)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("copies")
    with HTTPTestServer(root, latency=0.1) as server:
        yield CopiesSite(server, root)


def crawl(site: CopiesSite, tmp: Path, workers: int, *settings: str) -> list[Worker]:
    started = [Worker(f"worker-{n}", site.server, tmp, *SETTINGS, *settings) for n in range(workers)]
    codes = [worker.wait() for worker in started]
    assert codes == [0] * workers, "\n".join(worker.output[-3000:] for worker in started)
    return started


def by_name(workers: list[Worker]) -> dict[str, tuple[str, dict]]:
    """Each image's item, by its name on the site, with the worker that passed it on."""
    items = {}
    for worker in workers:
        for item in worker.items:
            name = item["url"].rsplit("/", 1)[1]
            assert name not in items, f"{name} passed on twice"
            items[name] = (worker.feed.stem, item)
    return items


def test_skip_stores_the_same_images_with_one_worker_or_three(site, redis_url, tmp_path):
    alone = crawl(site, tmp_path / "one", 1)
    assert site.stored(tmp_path / "one" / "store") == site.originals
    guard = ['EXTENSIONS={"tests.support.redisguard.RedisCalls": 0}', f"REDISGUARD_DIR={tmp_path / 'calls'}"]
    three = crawl(site, tmp_path / "three", 3, *shared(redis_url, "near-duplicates"), *guard)
    assert site.stored(tmp_path / "three" / "store") == site.originals
    # The claims never wait for Redis with the event loop stopped.
    reports = [json.loads(path.read_text()) for path in (tmp_path / "calls").glob("*.json")]
    assert len(reports) == 3 and all(report["sync_on_reactor"] == 0 for report in reports), reports

    for workers in (alone, three):
        items = by_name(workers)
        assert sorted(items) == sorted(site.originals + site.copies)
        for copy in site.copies:
            _, item = items[copy]
            original = items[f"o{copy[1:].split('.')[0]}.jpg"][1]
            assert (item["status"], item["reason"], item["path"]) == ("skipped", "near-duplicate", original["path"])
    # The workers shared the crawl: some copies were skipped by a worker that did not store their original.
    items = by_name(three)
    across = [copy for copy in site.copies if items[copy][0] != items[f"o{copy[1:].split('.')[0]}.jpg"][0]]
    assert across, {name: worker for name, (worker, _) in items.items()}

    # Each image filed names the worker that filed it and its URL's claim in the crawl's images, done.
    client = redis.Redis.from_url(redis_url)
    filed = client.hgetall("imgscraper:near-duplicates:phashes:by").values()
    images = client.hgetall("imgscraper:near-duplicates:images")
    client.close()
    assert len(filed) == len(site.originals) and all(images[value.split()[1]] == b"" for value in filed), filed

    # Again into the same store: the crawl starts afresh in Redis, the store's record knows the originals.
    again = crawl(site, tmp_path / "three", 3, *shared(redis_url, "near-duplicates"))
    assert site.stored(tmp_path / "three" / "store") == site.originals
    items = by_name(again)
    assert {items[name][1]["status"] for name in site.originals} == {"uptodate"}
    assert {(items[name][1]["status"], items[name][1]["reason"]) for name in site.copies} == {
        ("skipped", "near-duplicate")}
