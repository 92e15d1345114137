"""IMAGES_STORE faults mid-crawl: the store fills up (a tiny tmpfs) or turns
read-only (a bind mount remounted read-only while the crawl runs).

Each time: one clear ERROR line, the crawl stops with a finish reason that
says why (exit status 1), no partial or temporary file, and every file stored
before — by an earlier crawl or earlier in this one — is intact.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

import pytest

from tests.support.httpserver import HTTPTestServer, RequestHandler
from tests.support.images import png
from tests.support.mounts import read_only_switch, small_tmpfs

N_BIG = 30
STORE_NAME = re.compile(r"^full/[0-9a-f-]{36}\.png$")


class StoreFaultSite:
    """``/small.html``: 3 small images; ``/big.html``: 30 images of ~100 KB."""

    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.small = {f"/small/{n}.png": png(30_000 + n) for n in range(3)}
        self.big = {f"/big/{n}.png": png(20_000 + n, (190, 180), noise=True) for n in range(N_BIG)}
        self.on_big_request = lambda n: None
        self.big_requests = 0
        self._lock = threading.Lock()
        for path, body in self.small.items():
            server.add_handler(path, lambda h, b=body: h.send_body(b, content_type="image/png") or True)
        server.add_handler("/big/*", self._serve_big)
        for page, paths in (("/small.html", self.small), ("/big.html", self.big)):
            html = "<html><body>" + "".join(f'<img src="{p}">' for p in paths) + "</body></html>"
            server.add_handler(page, lambda h, t=html: h.send_body(t, content_type="text/html") or True)

    def _serve_big(self, h: RequestHandler) -> bool:
        with self._lock:
            self.big_requests += 1
            n = self.big_requests
        self.on_big_request(n)
        h.send_body(self.big[h.url_path], content_type="image/png")
        return True

    @property
    def served(self) -> set[str]:
        return {hashlib.sha256(b).hexdigest() for b in [*self.small.values(), *self.big.values()]}


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www") as server:
        yield StoreFaultSite(server)


def check_store_intact(store, site, before: dict[str, str]) -> list[str]:
    """Problems: junk files, files that are not exactly a served image, earlier files changed."""
    problems = []
    files = {p.relative_to(store).as_posix(): p for p in store.rglob("*") if p.is_file()}
    for rel, path in files.items():
        if rel.startswith(".imgscraper/") or rel == "index.html":  # the record, the gallery
            continue
        if not STORE_NAME.match(rel):
            problems.append(f"junk file {rel}")
        elif hashlib.sha256(path.read_bytes()).hexdigest() not in site.served:
            problems.append(f"{rel} is not byte-exact")
    for rel, sha in before.items():
        if rel not in files or hashlib.sha256(files[rel].read_bytes()).hexdigest() != sha:
            problems.append(f"{rel} stored before was changed or lost")
    return problems


def snapshot(store) -> dict[str, str]:
    return {p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (store / "full").iterdir()}


def assert_stopped_for(result, reason: str, item_reason: str):
    assert result.returncode == 1, result.tail()
    assert result.stats.get("finish_reason") == reason, result.tail()
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line and "log_count" not in line]
    assert len(errors) == 1 and "Cannot write to IMAGES_STORE" in errors[0], errors
    assert "Traceback" not in result.stderr
    statuses = {(i["status"], i["reason"]) for i in result.items}
    assert ("failed", item_reason) in statuses, statuses
    for item in result.items:
        if item["status"] == "downloaded":
            assert (result.store / item["path"]).is_file(), item
    assert f"imgscraper/images/failed/{item_reason}" in result.stats


def test_store_full_mid_crawl(site, tmp_path, run_crawl):
    with small_tmpfs(tmp_path / "store", "1m") as store:
        first = run_crawl(["-a", f"url={site.server.url}small.html", "-s", "CONCURRENT_REQUESTS=2"],
                          store=store, out_dir=tmp_path / "out1")
        assert first.returncode == 0, first.tail()
        before = snapshot(store)
        assert len(before) == 3
        result = run_crawl(["-a", f"url={site.server.url}big.html", "-s", "CONCURRENT_REQUESTS=2"],
                           store=store, out_dir=tmp_path / "out2")
        assert_stopped_for(result, "store_full", "store-full")
        assert check_store_intact(store, site, before) == []
        stored_big = len(list((store / "full").iterdir())) - 3
        assert 0 < stored_big < N_BIG


def test_store_turns_read_only_mid_crawl(site, tmp_path, run_crawl):
    store = tmp_path / "store"
    first = run_crawl(["-a", f"url={site.server.url}small.html", "-s", "CONCURRENT_REQUESTS=2"],
                      store=store, out_dir=tmp_path / "out1")
    assert first.returncode == 0, first.tail()
    before = snapshot(store)
    with read_only_switch(store / "full") as switch:
        def switch_once_a_big_image_is_stored(n: int) -> None:
            if n >= 10 and not switch.read_only:
                deadline = time.monotonic() + 10
                while len(list((store / "full").glob("[!.]*.png"))) < 4 and time.monotonic() < deadline:
                    time.sleep(0.01)
                switch.make_read_only()

        site.on_big_request = switch_once_a_big_image_is_stored
        result = run_crawl(["-a", f"url={site.server.url}big.html", "-s", "CONCURRENT_REQUESTS=2"],
                           store=store, out_dir=tmp_path / "out2")
        assert switch.read_only
        assert_stopped_for(result, "store_unwritable", "store-unwritable")
        stored = {p.name: p.read_bytes() for p in (store / "full").glob("[!.]*.png")}
    # Writable again. A write cut short by the switch may have left a
    # temporary file it could not delete on a read-only store: the next
    # crawl removes it.
    after = run_crawl(["-a", f"url={site.server.url}small.html", "-s", "CONCURRENT_REQUESTS=2"],
                      store=store, out_dir=tmp_path / "out3")
    assert after.returncode == 0, after.tail()
    assert check_store_intact(store, site, before) == []
    assert {p.name: p.read_bytes() for p in (store / "full").glob("[!.]*.png")} == stored
    assert 0 < len(stored) - 3 < N_BIG
