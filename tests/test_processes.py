"""IMGSCRAPER_PROCESSES: images downloaded by more than one process, seen from the server and the store.

The site: 20 pages of 12 distinct PNGs each (240 images), served with a little
latency so that the crawl lasts long enough for the download process to start
and take its share.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT
from faultsite import make_png
from httpserver import HTTPTestServer

N_PAGES, PER_PAGE = 20, 12
_PROCESSES_STAT = re.compile(r"'imgscraper/processes/images': (\d+)")


class ManyImages:
    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.images = {f"/i/{p}-{k}.png": make_png(70_000 + p * PER_PAGE + k) for p in range(N_PAGES) for k in range(PER_PAGE)}
        links = "".join(f'<a href="/p{p}.html">page {p}</a>' for p in range(1, N_PAGES))
        for page in range(N_PAGES):
            imgs = "".join(f'<img src="/i/{page}-{k}.png">' for k in range(PER_PAGE))
            html = f"<html><body>{imgs}{links if page == 0 else ''}</body></html>"
            server.add_handler(f"/p{page}.html", lambda h, t=html: h.send_body(t, content_type="text/html") or True)
        server.add_handler("/i/*", lambda h: h.send_body(self.images[h.url_path], content_type="image/png") or True)
        self.by_sha = {hashlib.sha256(body).hexdigest(): path for path, body in self.images.items()}

    def stored_paths(self, store: Path) -> list[str]:
        """Site paths of the files in ``store``; fails on anything that is not a whole served image."""
        paths = []
        for file in (store / "full").iterdir():
            sha = hashlib.sha256(file.read_bytes()).hexdigest()
            assert sha in self.by_sha, f"{file.name} is not a served image"
            paths.append(self.by_sha[sha])
        return paths


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www", latency=0.02) as server:
        yield ManyImages(server)


def command(site: ManyImages, store: Path, *settings: str) -> list[str]:
    cmd = [sys.executable, "-m", "scrapy", "crawl", "images", "-a", f"url={site.server.url}p0.html", "-a", "depth=1",
           "-s", f"IMAGES_STORE={store}", "-s", "LOG_LEVEL=INFO"]
    for setting in settings:
        cmd += ["-s", setting]
    return cmd


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


def download_processes_of(pid: int) -> list[int]:
    """PIDs of the download processes the crawl ``pid`` started."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"imgscraper.processes" in cmdline:
            children.append(int(entry.name))
    return children


def settings_copies() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("imgscraper-settings-*"))


def test_two_processes_store_every_image_once(site, tmp_path):
    store = tmp_path / "store"
    copies_before = settings_copies()
    result = subprocess.run(command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS_PER_DOMAIN=8"),
                            cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    site.server.log.wait_idle()
    fetched = [r.url_path for r in site.server.log if r.url_path.startswith("/i/")]
    assert sorted(fetched) == sorted(site.images), "an image was fetched twice, or not at all"
    # Both processes did part of the work.
    handed = int(_PROCESSES_STAT.search(result.stderr)[1])
    assert 0 < handed < len(site.images), handed
    assert "'imgscraper/images/downloaded': 240" in result.stderr
    assert "Traceback" not in result.stderr
    # The settings handed to the download process (they may hold credentials) are not left behind.
    assert settings_copies() <= copies_before


def test_download_process_killed_mid_crawl_the_crawl_still_stores_everything(site, tmp_path):
    store = tmp_path / "store"
    site.server.latency = 0.05
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS_PER_DOMAIN=8"),
                            cwd=PROJECT_ROOT, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    killed = False
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        stored = len(list((store / "full").glob("*.png"))) if (store / "full").exists() else 0
        workers = download_processes_of(proc.pid)
        if workers and stored >= 40:
            os.kill(workers[0], signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert killed, "the crawl ended before its download process could be killed"
    assert proc.returncode == 0, err[-3000:]
    assert len(re.findall(r"WARNING: Download process \d+ ended before the crawl", err)) == 1, err[-3000:]
    assert "'imgscraper/processes/lost': 1" in err
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    assert not [p for p in (store / "full").iterdir() if p.name.startswith(".tmp")]


def test_download_delay_keeps_one_process(site, tmp_path):
    store = tmp_path / "store"
    result = subprocess.run(command(site, store, "IMGSCRAPER_PROCESSES=2", "DOWNLOAD_DELAY=0.001"),
                            cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMGSCRAPER_PROCESSES=2: using one process (DOWNLOAD_DELAY spaces the requests of one process)" in result.stderr
    assert _PROCESSES_STAT.search(result.stderr) is None
    assert sorted(site.stored_paths(store)) == sorted(site.images)


def test_listing_crawl_keeps_one_process_and_its_limits(site, tmp_path):
    """-a download=no: nothing to hand over, so the limits are not divided either."""
    store = tmp_path / "store"
    cmd = command(site, store, "IMGSCRAPER_PROCESSES=2", "CONCURRENT_REQUESTS_PER_DOMAIN=6") + ["-a", "download=no"]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IMGSCRAPER_PROCESSES=2: using one process (no images are downloaded" in result.stderr
    assert "'CONCURRENT_REQUESTS_PER_DOMAIN': 6" in result.stderr or "CONCURRENT_REQUESTS_PER_DOMAIN': '6'" in result.stderr
    assert "'item_scraped_count': 240" in result.stderr
