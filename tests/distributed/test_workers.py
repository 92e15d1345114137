"""IMGSCRAPER_WORKERS: one crawl shared by local workers through a private Redis,
seen from the server, the store, the feed and the process table.

The site: 20 pages of 12 distinct PNGs each (240 images), served with a little
latency so that the crawl lasts long enough for the local workers to start
and take their share of the pages. Every crawl needs Debian's redis-server
(``make debs``): without it these tests fail in CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment, parse_stats
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png
from tests.support.needs import require_program

# Every test needs redis-server (redis_server_installed), and all but two crawl.
pytestmark = [pytest.mark.crawl, pytest.mark.services]

N_PAGES, PER_PAGE = 20, 12


class ManyImages:
    def __init__(self, server: HTTPTestServer):
        self.server = server
        self.images = {f"/i/{p}-{k}.png": png(70_000 + p * PER_PAGE + k) for p in range(N_PAGES) for k in range(PER_PAGE)}
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


@pytest.fixture(scope="module", autouse=True)
def redis_server_installed():
    require_program("redis-server")


@pytest.fixture
def site(tmp_path):
    with HTTPTestServer(tmp_path / "www", latency=0.02) as server:
        yield ManyImages(server)


def command(site: ManyImages, store: Path, *settings: str) -> list[str]:
    return crawl_command(["-a", f"url={site.server.url}p0.html", "-a", "depth=1",
                          *(arg for setting in settings for arg in ("-s", setting))], store=store)


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes ``pid`` started."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            children.append((int(entry.name), cmdline))
    return children


def local_workers_of(pid: int) -> list[int]:
    return [child for child, cmdline in children_of(pid) if " crawl images " in cmdline]


def private_redis_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("imgscraper-redis-*"))


def answers(unix_socket: Path) -> bool:
    """Whether a server listens on ``unix_socket``."""
    with socket.socket(socket.AF_UNIX) as client:
        try:
            client.connect(str(unix_socket))
        except OSError:
            return False
    return True


def processes_naming(text: str) -> list[int]:
    """The processes whose command line holds ``text``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:  # ended meanwhile
            pass
    return found


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists() and "(Z)" not in _state(pid)]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0].join("()")
    except OSError:
        return "(gone)"


def test_three_workers_one_crawl_one_feed_one_summary(site, tmp_path):
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    site.server.latency = 0.15  # the crawl lasts long enough for the local workers to start (1 to 3 s)
    result = subprocess.run(command(site, store, "IMGSCRAPER_WORKERS=3") + ["-O", str(feed)],
                            cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    # Every image stored once, byte for byte; no page nor image fetched twice.
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    site.server.log.wait_idle()
    fetched = [r.url_path for r in site.server.log if r.url_path.startswith("/i/")]
    assert sorted(fetched) == sorted(site.images), "an image was fetched twice, or not at all"
    pages = [r.url_path for r in site.server.log if r.url_path.endswith(".html")]
    assert sorted(pages) == sorted(f"/p{n}.html" for n in range(N_PAGES)), "a page was fetched twice, or not at all"
    # robots.txt asked once, for the crawl: the local workers read the lead's answer.
    assert [r.url_path for r in site.server.log].count("/robots.txt") == 1
    # One feed: one item per image, whichever worker stored it.
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    assert sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items) == sorted(site.images)
    assert {item["status"] for item in items} == {"downloaded"}
    # The local workers took part, and the one summary counts the whole crawl.
    assert "Crawling with 3 workers: this one and 2 local workers (pid " in result.stderr
    stats = parse_stats(result.stderr)
    handed = stats["imgscraper/workers/items"]
    assert 0 < handed < len(site.images), handed
    assert stats.get("imgscraper/images/downloaded") == 240
    assert stats.get("imgscraper/images/found") == 240
    assert stats.get("item_scraped_count") == 240
    assert stats.get("imgscraper/shared/robotstxt_reused") == 2
    assert result.stderr.count("Crawl summary (finished)") == 1
    assert re.search(r"stored\s+240\n", result.stderr), result.stderr[-2000:]
    assert result.stderr.count("Gallery: ") == 1 and (store / "index.html").is_file()
    assert "Traceback" not in result.stderr and " ERROR: " not in result.stderr
    # The private Redis is gone with its directory.
    socket_path = Path(re.search(r"Private Redis for 3 workers: unix://(\S+)", result.stderr)[1])
    assert socket_path.parent.name.startswith("imgscraper-redis-") and not socket_path.parent.exists()


@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_stops_every_worker_and_leaves_whole_files(site, tmp_path, presses):
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    site.server.latency = 0.1
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_WORKERS=3") + ["-O", str(feed)], cwd=PROJECT_ROOT,
                            env=crawl_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    workers: list[int] = []
    children: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        if len(workers) < 2:
            workers = local_workers_of(proc.pid)
            children = [pid for pid, _ in children_of(proc.pid)]
        if len(workers) == 2 and (store / "full").exists() and len(list((store / "full").glob("*.png"))) >= 40:
            break
        time.sleep(0.02)
    assert proc.poll() is None and len(workers) == 2, "the crawl ended before it could be interrupted"
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)  # the lead only, as Scrapyd's cancel does; a terminal's Ctrl-C is the same
        time.sleep(0.05)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, err[-3000:]  # not finished: a scheduler must not take it for done
    assert ("forcing unclean shutdown" in err) == (presses == 2), err[-3000:]
    ended = time.monotonic() + 10
    while alive(children) and time.monotonic() < ended:
        time.sleep(0.05)
    assert not alive(children), "a local worker or the private Redis outlived the crawl"
    assert not [p for p in (store / "full").iterdir() if p.name.startswith(".tmp")]
    stored = site.stored_paths(store)  # fails on a partial file
    assert 0 < len(stored) < len(site.images)
    if presses == 1:
        assert "Traceback" not in err, err[-3000:]
        items = [json.loads(line) for line in feed.read_text().splitlines()]
        assert {item["path"] for item in items} <= {f"full/{p.name}" for p in (store / "full").iterdir()}
        assert len(items) == len({item["url"] for item in items})


def pages_held(redis_dir: Path, pid: int) -> int:
    """How many pages the worker of process ``pid`` holds, as the private Redis in ``redis_dir`` says."""
    import redis

    client = redis.Redis(unix_socket_path=str(redis_dir / "redis.sock"))
    try:
        return sum(len([f for f in client.hkeys(key) if f != b"starting"])
                   for key in client.scan_iter(f"imgscraper:*:taken:*:{pid}:*"))
    except (redis.ConnectionError, OSError):
        return 0
    finally:
        client.close()


def test_worker_killed_mid_crawl_loses_nothing(site, tmp_path):
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    dirs_before = private_redis_dirs()
    site.server.latency = 0.1
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_WORKERS=3") + ["-O", str(feed)],
                            cwd=PROJECT_ROOT, env=crawl_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 90
    killed = False
    while not killed and time.monotonic() < deadline and proc.poll() is None:
        redis_dirs = private_redis_dirs() - dirs_before  # this crawl's, and maybe another's
        for pid in local_workers_of(proc.pid):
            if any(pages_held(d, pid) for d in redis_dirs):  # a worker in the middle of its pages
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.02)
    _, err = proc.communicate(timeout=120)
    assert killed, "the crawl ended before a local worker could be killed"
    assert proc.returncode == 0, err[-3000:]
    assert len(re.findall(r"WARNING: Local worker \d \(pid \d+\) ended before the crawl", err)) == 1, err[-3000:]
    assert parse_stats(err).get("imgscraper/workers/lost") == 1
    # Its pages and images were taken over: everything stored, one item per image in the one feed.
    assert sorted(site.stored_paths(store)) == sorted(site.images)
    assert not [p for p in (store / "full").iterdir() if p.name.startswith(".tmp")]
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    assert sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items) == sorted(site.images)


def test_without_redis_server_workers_stop_with_one_line(site, tmp_path):
    """No redis-server on the PATH: one ERROR line saying how to install it, exit status 1, nothing fetched."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    result = subprocess.run(command(site, tmp_path / "store", "IMGSCRAPER_WORKERS=2"), cwd=PROJECT_ROOT,
                            env=crawl_environment({"PATH": str(bin_dir)}), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR: " in line]
    assert len(errors) == 1 and "apt-get install redis-server" in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert site.server.log.snapshot() == []


def test_one_worker_is_the_default_and_needs_no_redis(site, tmp_path):
    result = subprocess.run(command(site, tmp_path / "store"), cwd=PROJECT_ROOT,
                            env=crawl_environment({"PYTHONPROFILEIMPORTTIME": "1"}), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "imgscraper.downloader" in imported  # the log is there
    assert {"redis", "scrapy_redis", "imgscraper.distributed.workers", "imgscraper.distributed.crawl"} & imported == set()
    assert sorted(site.stored_paths(tmp_path / "store")) == sorted(site.images)


def test_per_domain_limit_holds_across_three_workers(site, tmp_path):
    """CONCURRENT_REQUESTS_PER_DOMAIN=4 is the shared crawl's: three workers, 100 ms per response,
    never more than 4 requests in flight on the site as the server counts them."""
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    site.server.latency = 0.1
    result = subprocess.run(command(site, store, "IMGSCRAPER_WORKERS=3", "CONCURRENT_REQUESTS_PER_DOMAIN=4")
                            + ["-O", str(feed)], cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True,
                            timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    site.server.log.wait_idle()
    assert site.server.log.max_in_flight() == 4  # the limit, reached and held
    handed = parse_stats(result.stderr)["imgscraper/workers/items"]
    assert 0 < handed < len(site.images), handed  # the local workers took part
    assert sorted(site.stored_paths(store)) == sorted(site.images)


def test_download_delay_holds_across_workers(tmp_path):
    """DOWNLOAD_DELAY spaces the requests of the whole crawl, not those of each worker."""
    with HTTPTestServer(tmp_path / "www", latency=0.0) as server:
        for page in range(8):
            imgs = "".join(f'<img src="/i/{page}-{k}.png">' for k in range(3))
            links = "".join(f'<a href="/p{p}.html">p</a>' for p in range(1, 8)) if page == 0 else ""
            server.add_handler(f"/p{page}.html", lambda h, t=f"<html>{imgs}{links}</html>": h.send_body(
                t, content_type="text/html") or True)
        server.add_handler("/i/*", lambda h: h.send_body(png(hash(h.url_path) % 100_000),
                                                         content_type="image/png") or True)
        result = subprocess.run(
            crawl_command(["-a", f"url={server.url}p0.html", "-a", "depth=1", "-s", "IMGSCRAPER_WORKERS=2",
                           "-s", "DOWNLOAD_DELAY=0.15", "-s", "DOWNLOAD_DELAY_JITTER=0", "-s", "CONCURRENT_REQUESTS=2"],
                          store=tmp_path / "store"),
            cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        server.log.wait_idle()
        requests = sorted((r for r in server.log.snapshot() if r.url_path != "/robots.txt"), key=lambda r: r.start)
    assert len(requests) == 8 + 24
    gaps = [b.start - a.start for a, b in zip(requests, requests[1:])]
    timeline = " ".join(f"{r.url_path} +{gap:.3f}" for r, gap in zip(requests[1:], gaps))
    # Two workers pacing themselves alone would start a request every 0.075 s on average, and most
    # requests within 0.25 s of the one two before. Under load one process may stall for a moment
    # (a worker between its turn and its request, or the test server before it notes a start):
    # that brings one start near the next, once, without moving the others.
    spans = [c.start - a.start for a, c in zip(requests, requests[2:])]
    assert len([span for span in spans if span < 0.25]) <= 1 and sum(gaps) / len(gaps) >= 0.145, timeline
    assert parse_stats(result.stderr)["imgscraper/workers/items"] > 0  # both workers fetched


def test_two_workers_one_report(tmp_path):
    """Failure lines follow the crawl's rule, not each worker's: three lines for a reason and host, then
    one line for the crawl with how many more; one summary."""
    with HTTPTestServer(tmp_path / "www", latency=0.15) as server:
        for page in range(N_PAGES):
            imgs = "".join(f'<img src="/gone/{page}-{k}.png">' for k in range(6))
            links = "".join(f'<a href="/p{p}.html">p</a>' for p in range(1, N_PAGES)) if page == 0 else ""
            server.add_handler(f"/p{page}.html", lambda h, t=f"<html>{imgs}{links}</html>": h.send_body(
                t, content_type="text/html") or True)
        server.add_handler("/gone/*", lambda h: h.send_body("gone", status=404) or True)
        result = subprocess.run(
            crawl_command(["-a", f"url={server.url}p0.html", "-a", "depth=1", "-s", "IMGSCRAPER_WORKERS=2"],
                          store=tmp_path / "store"),
            cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    assert parse_stats(result.stderr)["imgscraper/workers/items"] > 0  # both workers fetched
    assert len(re.findall(r"WARNING: Image failed \(http-404\)", result.stderr)) == 3, result.stderr[-3000:]
    more = re.findall(r"WARNING: \.\.\. and (\d+) more http-404 from (\S+)", result.stderr)
    assert more == [(str(N_PAGES * 6 - 3), server.netloc)], result.stderr[-3000:]
    assert result.stderr.count("Crawl summary (finished)") == 1
    assert "Crawling with 2 workers: this one and 1 local worker (pid " in result.stderr


def test_make_crawl_with_workers(site, tmp_path):
    """``make crawl URL=... WORKERS=2`` (``-o``: the test leaves the installed environment as it is)."""
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    site.server.latency = 0.15
    result = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/bin/.installed", "crawl", f"URL={site.server.url}p0.html",
         "DEPTH=1", "WORKERS=2", f"STORE={store}", f"OUT={feed}", "SCRAPY_ARGS=-s IMGSCRAPER_PROGRESS=false"],
        cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Crawling with 2 workers: this one and 1 local worker (pid " in result.stderr
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    assert sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items) == sorted(site.images)
    assert sorted(site.stored_paths(store)) == sorted(site.images)


def test_lead_killed_its_workers_and_redis_end_too(site, tmp_path):
    """SIGKILL of the lead (the process the user started): the local workers and the private
    redis-server it started end too, instead of crawling on for no one."""
    store = tmp_path / "store"
    dirs_before = private_redis_dirs()
    site.server.latency = 0.1
    proc = subprocess.Popen(command(site, store, "IMGSCRAPER_WORKERS=3"), cwd=PROJECT_ROOT, env=crawl_environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    children: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        children = [pid for pid, _ in children_of(proc.pid)]
        if len(local_workers_of(proc.pid)) == 2 and (store / "full").exists() and len(list((store / "full").iterdir())) >= 40:
            break
        time.sleep(0.02)
    assert proc.poll() is None and len(children) == 3, "the crawl ended before its lead could be killed"
    proc.kill()
    proc.wait()
    ended = time.monotonic() + 30
    while alive(children) and time.monotonic() < ended:
        time.sleep(0.1)
    assert not alive(children), [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in alive(children)]
    # The killed lead could not remove its private Redis's directory (a socket and a log): the test does,
    # leaving those of crawls other tests may be running at the same time (their Redis answers).
    for directory in private_redis_dirs() - dirs_before:
        if not answers(directory / "redis.sock"):
            shutil.rmtree(directory, ignore_errors=True)


def test_runspider_crawls_with_one_worker_and_says_so(site, tmp_path):
    """Local workers are the crawl command's: ``scrapy runspider`` keeps one, with one WARNING line."""
    store = tmp_path / "store"
    result = subprocess.run(
        [sys.executable, "-m", "scrapy", "runspider", "imgscraper/spiders/images.py", "-a", f"url={site.server.url}p0.html",
         "-a", "depth=1", "-s", f"IMAGES_STORE={store}", "-s", "IMGSCRAPER_WORKERS=2"],
        cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "IMGSCRAPER_WORKERS=2" in line]
    assert len(warnings) == 1 and " WARNING: " in warnings[0] and "one worker" in warnings[0], result.stderr[-3000:]
    assert "local worker" not in result.stderr.replace(warnings[0], "")
    assert sorted(site.stored_paths(store)) == sorted(site.images)


@pytest.mark.parametrize(("args", "why"), [
    (["-a", "depth=0"], "a start page only"),
    (["-a", "depth=-1"], "a bad argument"),
])
def test_no_local_worker_without_pages_to_share(site, tmp_path, args, why):
    """The lead starts its local workers once pages wait in the queue: not for a crawl of its start
    page alone, nor for one that never starts (a bad argument: its one ERROR line, not one per worker)."""
    cmd = command(site, tmp_path / "store", "IMGSCRAPER_WORKERS=3")
    cmd[cmd.index("depth=1")] = args[1]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=120)
    assert "local worker" not in result.stderr, why
    assert len([line for line in result.stderr.splitlines() if " ERROR: " in line]) == (args[1] == "depth=-1"), why
    assert result.returncode == (args[1] == "depth=-1"), result.stderr[-3000:]


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory):
    import redis

    from tests.support.servers import redis_server

    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        client = redis.Redis.from_url(url)
        yield client
        client.close()


def test_leases_of_a_dead_worker_come_back(redis_client):
    """The lease script (imgscraper.distributed.leases) on a real Redis: a slot's concurrency across workers,
    several leases in one call, the leases of a worker whose heartbeat is gone freed, the slot's delay shared,
    and a worker waiting for a full slot woken when a lease is given back."""
    from imgscraper.distributed.leases import _ACQUIRE, _GIVE_BACK

    acquire, give_back = redis_client.register_script(_ACQUIRE), redis_client.register_script(_GIVE_BACK)
    prefix = "imgscraper:lease-test:"
    for worker in ("a", "b"):
        redis_client.set(f"{prefix}alive:{worker}", "1")

    def lease(worker, limit=3, delay_ms=0, wanted=1, slot="example.com"):
        return acquire(args=[prefix, slot, worker, limit, delay_ms, 60_000, wanted])

    status, *granted = lease("a", wanted=2)  # two leases, one round trip
    assert status == 0 and len(granted) == 2 and granted[0] != granted[1]
    status, *more = lease("a", wanted=4)  # as many as the slot has left
    assert status == 0 and len(more) == 1
    events = redis_client.pubsub(ignore_subscribe_messages=True)
    events.subscribe(f"{prefix}events")

    def next_event():
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if message := events.get_message(timeout=0.5):
                return message["data"]
        return None

    assert lease("b") == [-1]  # every lease of the slot is a's: b waits, and says so
    assert next_event() == b"wanted example.com"
    give_back(args=[prefix, "example.com", granted[0]])  # a's transfer ended: the waiting worker is woken
    assert next_event() == b"freed example.com"
    status, *mine = lease("b")
    assert status == 0 and len(mine) == 1
    assert lease("b") == [-1]
    redis_client.delete(f"{prefix}alive:a")  # a died: its heartbeat is gone
    status, *mine = lease("b", wanted=3)
    assert status == 0 and len(mine) == 2
    events.close()
    # The delay: one lease per call, and the next transfer of the slot waits, whichever worker asks.
    redis_client.set(f"{prefix}alive:a", "1")
    status, *one = lease("a", limit=8, delay_ms=500, wanted=4, slot="slow.example")
    assert status == 0 and len(one) == 1
    (wait,) = lease("b", limit=8, delay_ms=500, slot="slow.example")
    assert 400 <= wait <= 500


def test_a_local_worker_keeps_the_crawl_and_leaves_its_outputs_to_the_lead():
    from scrapy.settings import Settings

    from imgscraper.distributed.workers import worker_settings

    settings = Settings({"LOG_LEVEL": "INFO"})
    settings.set("LOG_LEVEL", "DEBUG", priority="cmdline")
    own = worker_settings(settings, "host:42:abcdef")
    assert own["FEEDS"] == {} and own["STATS_DUMP"] is False
    assert own["LOG_LEVEL"] == "WARNING"
    assert own["IMGSCRAPER_WORKERS"] == 1 and own["IMGSCRAPER_LEAD_WORKER"] == "host:42:abcdef"
    assert own["IMGSCRAPER_WORKER_ID"] == "" and own["IMGSCRAPER_LOCAL_WORKERS"] == []
    assert (own["IMGSCRAPER_PROGRESS"], own["IMGSCRAPER_GALLERY"], own["IMGSCRAPER_LOG_FAILURES"]) == (False,) * 3
    # Everything else (the store, thumbnails, limits...) the worker has as the lead: it is forked with them.
    assert not {"IMAGES_STORE", "IMAGES_THUMBS", "CONCURRENT_REQUESTS", "IMGSCRAPER_REDIS_URL"} & set(own)
    assert worker_settings(Settings({"LOG_LEVEL": "ERROR"}), "lead")["LOG_LEVEL"] == "ERROR"


def test_the_private_redis_ends_with_its_crawl():
    """The private redis-server answers on its socket while the crawl runs; once it is over the
    server is no more (killed: it has nothing to save) and its directory is gone."""
    from imgscraper.distributed.workers import PrivateRedis

    require_program("redis-server")
    with PrivateRedis(2) as url:
        path = Path(url.removeprefix("unix://"))
        assert answers(path)
        servers = processes_naming(str(path))
        assert len(servers) == 1 and alive(servers)
    assert not alive(servers) and not path.parent.exists()


def test_the_crawls_components_are_imported_before_the_workers_are_forked():
    """Forked workers share what the lead imported; importing installs no reactor (Scrapy installs
    its own later) and starts no thread (unsafe to fork), and a bad path is left for the crawl."""
    code = (
        "import json, sys, threading\n"
        "from scrapy.utils.project import get_project_settings\n"
        "from imgscraper.distributed.workers import import_components\n"
        "settings = get_project_settings()\n"
        "settings.set('ITEM_PIPELINES', {**settings.getdict('ITEM_PIPELINES'), 'no.such.Pipeline': 1})\n"
        "import_components(settings)\n"
        "print(json.dumps({name: name in sys.modules for name in ('scrapy.core.engine', 'imgscraper.downloader',"
        " 'imgscraper.pipelines.images', 'imgscraper.extensions.summary', 'scrapy.downloadermiddlewares.robotstxt',"
        " 'twisted.internet.reactor')} | {'threads': threading.active_count()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "scrapy.core.engine": True, "imgscraper.downloader": True, "imgscraper.pipelines.images": True,
        "imgscraper.extensions.summary": True, "scrapy.downloadermiddlewares.robotstxt": True,
        "twisted.internet.reactor": False, "threads": 1,
    }


def test_workers_use_the_redis_they_are_given(site, tmp_path, redis_client):
    """With IMGSCRAPER_REDIS_URL set, the local workers share the crawl through it: no private Redis."""
    url = "redis://{host}:{port}/0".format(**redis_client.connection_pool.connection_kwargs)
    store, feed = tmp_path / "store", tmp_path / "items.jsonl"
    site.server.latency = 0.15
    result = subprocess.run(command(site, store, "IMGSCRAPER_WORKERS=2", f"IMGSCRAPER_REDIS_URL={url}",
                                    "IMGSCRAPER_CRAWL_ID=given-redis") + ["-O", str(feed)],
                            cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Private Redis" not in result.stderr and "this one and 1 local worker" in result.stderr
    assert redis_client.exists("imgscraper:given-redis:finished")
    assert parse_stats(result.stderr)["imgscraper/workers/items"] > 0
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    assert sorted(item["url"].removeprefix(site.server.url.rstrip("/")) for item in items) == sorted(site.images)
