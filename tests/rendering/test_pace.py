"""Each site's pace: ``DOWNLOAD_SLOTS`` (per-host concurrency, delay, jitter), measured at the server.

The site: a start page linking two pages; each page has two images, a style sheet (with a
background image) and a script that calls an API, so that a rendered page makes requests
of its browser's besides Scrapy's. The slot of 127.0.0.1 is set to one request at a time,
one every 0.5 s; the server records when each request starts and ends. Without rendering,
with ``render=yes`` (imgscraper/rendering/pace.py holds the browser's requests to the
slot), and with two workers sharing the crawl through a private Redis (the slot is the
shared crawl's: imgscraper/distributed/leases.py). Then the schedule file's ``pace``.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from scrapy.settings import Settings

from imgscraper.exceptions import ScheduleError
from imgscraper.scrapyd.schedule import load_schedule
from tests.support.crawl import PROJECT_ROOT, crawl_command, crawl_environment, parse_stats
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png
from tests.support.needs import require_program

DELAY = 0.5
ONE_AT_A_TIME = f'DOWNLOAD_SLOTS={{"127.0.0.1": {{"concurrency": 1, "delay": {DELAY}, "jitter": 0}}}}'
#: The server's clock sees a request a little after the client sent it, more so under load.
CLOCK_NOISE = 0.05


def page(number: int, links: range) -> str:
    images = "".join(f'<img src="/img/{number}-{k}.png">' for k in range(2))
    anchors = "".join(f'<a href="/p{k}.html">page {k}</a>' for k in links)
    return (f'<html><head><link rel="stylesheet" href="/s.css"><script src="/app.js"></script></head>'
            f"<body>{images}{anchors}</body></html>")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with HTTPTestServer(tmp_path_factory.mktemp("www"), latency=0.05) as server:
        files = {
            "/p0.html": (page(0, range(1, 3)), "text/html"),
            "/p1.html": (page(1, range(0)), "text/html"),
            "/p2.html": (page(2, range(0)), "text/html"),
            "/s.css": ("body { background: url(/img/bg.png) }", "text/css"),
            "/app.js": ("fetch('/api/data.json').then(r => r.json())", "text/javascript"),
            "/api/data.json": ("{}", "application/json"),
        }
        server.add_handler(lambda path: path in files,
                           lambda h: h.send_body(files[h.url_path][0], content_type=files[h.url_path][1]) or True)
        server.add_handler("/img/*", lambda h: h.send_body(png(sum(map(ord, h.url_path)), noise=True), content_type="image/png")
                           or True)
        yield server


def measured(server: HTTPTestServer) -> tuple[int, list[float], list[str]]:
    """The most requests in flight at once, the gaps between starts, and the paths asked for."""
    server.log.wait_idle()
    requests = sorted(server.log.snapshot(), key=lambda r: r.start)
    gaps = [b.start - a.start for a, b in zip(requests, requests[1:])]
    return server.log.max_in_flight(), gaps, [r.url_path for r in requests]


def test_one_request_at_a_time_every_half_second(site, run_crawl, tmp_path):
    site.log.clear()
    result = run_crawl(["-a", f"url={site.url}p0.html", "-a", "depth=1", "-s", ONE_AT_A_TIME], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    in_flight, gaps, paths = measured(site)
    assert in_flight == 1 and min(gaps) >= DELAY - CLOCK_NOISE, (in_flight, gaps)
    assert len(paths) == 12, paths  # robots.txt, 3 pages, the style sheet, 7 images
    assert len(result.items) == 7 and {item["status"] for item in result.items} == {"downloaded"}, result.items


def test_rendered_pages_and_their_browsers_requests_keep_the_pace(site, run_crawl, chromium, tmp_path):
    site.log.clear()
    result = run_crawl(["-a", f"url={site.url}p0.html", "-a", "depth=1", "-a", "render=yes", "-s", ONE_AT_A_TIME],
                       out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    in_flight, gaps, paths = measured(site)
    # The browser's requests are among them: each page's script and its API call.
    assert paths.count("/app.js") == 3 and paths.count("/api/data.json") == 3, paths
    assert in_flight == 1 and min(gaps) >= DELAY - CLOCK_NOISE, (in_flight, [round(g, 2) for g in gaps], paths)
    assert len(result.items) == 7 and {item["status"] for item in result.items} == {"downloaded"}, result.items


def test_rendered_crawl_holds_the_concurrency(site, run_crawl, chromium, tmp_path):
    """Two at a time, no delay, 0.3 s per response: two in flight, never three."""
    site.log.clear()
    site.latency = 0.3
    try:
        result = run_crawl(["-a", f"url={site.url}p0.html", "-a", "depth=1", "-a", "render=yes",
                            "-s", 'DOWNLOAD_SLOTS={"127.0.0.1": {"concurrency": 2, "delay": 0}}'], out_dir=tmp_path)
    finally:
        site.latency = 0.05
    assert result.returncode == 0, result.tail()
    in_flight, _, paths = measured(site)
    assert in_flight == 2, (in_flight, paths)
    assert len(result.items) == 7, result.items


@pytest.mark.crawl
@pytest.mark.services
def test_the_pace_holds_across_two_workers(site, tmp_path):
    """Two processes sharing the crawl (a private Redis): still one at a time, one every 0.5 s."""
    require_program("redis-server")
    site.log.clear()
    result = subprocess.run(
        crawl_command(["-a", f"url={site.url}p0.html", "-a", "depth=1", "-s", "IMGSCRAPER_WORKERS=2",
                       # Few requests taken at a time, so that pages wait in the shared queue for the second worker.
                       "-s", "CONCURRENT_REQUESTS=1", "-s", ONE_AT_A_TIME], store=tmp_path / "store"),
        cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    in_flight, gaps, paths = measured(site)
    assert in_flight == 1 and min(gaps) >= DELAY - CLOCK_NOISE, (in_flight, [round(g, 2) for g in gaps], paths)
    # The second worker took part.
    assert parse_stats(result.stderr).get("imgscraper/workers/items", 0) > 0, result.stderr[-3000:]


@pytest.mark.crawl
@pytest.mark.services
def test_the_browsers_requests_keep_the_pace_across_two_workers(site, chromium, tmp_path):
    """Rendered by two workers, two at a time and one every 0.5 s for the crawl: the browsers' requests
    too (each took a request every 0.5 s of its own: the two workers' came closer)."""
    require_program("redis-server")
    site.log.clear()
    result = subprocess.run(
        crawl_command(["-a", f"url={site.url}p0.html", "-a", "depth=1", "-a", "render=yes",
                       "-s", "IMGSCRAPER_WORKERS=2", "-s", "CONCURRENT_REQUESTS=1",
                       "-s", f'DOWNLOAD_SLOTS={{"127.0.0.1": {{"concurrency": 2, "delay": {DELAY}, "jitter": 0}}}}'],
                      store=tmp_path / "store"),
        cwd=PROJECT_ROOT, env=crawl_environment(), capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    in_flight, gaps, paths = measured(site)
    assert paths.count("/app.js") == 3 and paths.count("/api/data.json") == 3, paths
    timeline = " ".join(f"{path} +{gap:.2f}" for path, gap in zip(paths[1:], gaps))
    assert in_flight <= 2 and min(gaps) >= DELAY - CLOCK_NOISE, f"{in_flight} in flight; {timeline}"
    assert parse_stats(result.stderr).get("imgscraper/workers/items", 0) > 0, result.stderr[-3000:]


# -- the schedule file -----------------------------------------------------------


def schedule(tmp_path, site: str, common: str = "") -> str:
    path = tmp_path / "schedule.toml"
    path.write_text(f'{common}\n[[sites]]\nurl = ["https://Example.com/", "https://img.example.com/a"]\n'
                    f'every = "1d"\n{site}\n')
    return str(path)


def test_a_site_pace_is_its_hosts_download_slots(tmp_path):
    common = '[settings]\nDOWNLOAD_SLOTS = \'{"cdn.example.net": {"concurrency": 2}}\''
    (site,) = load_schedule(schedule(tmp_path, "pace = { concurrency = 1, delay = 2.5, jitter = 0 }", common)).sites
    pace = {"concurrency": 1, "delay": 2.5, "jitter": 0}
    value = site.settings["DOWNLOAD_SLOTS"]
    assert ("setting", f"DOWNLOAD_SLOTS={value}") in site.spider_args()
    # What Scrapy makes of the job's setting, as Scrapyd passes it.
    assert Settings({"DOWNLOAD_SLOTS": value}).getdict("DOWNLOAD_SLOTS") == {
        "example.com": pace, "img.example.com": pace, "cdn.example.net": {"concurrency": 2}}


@pytest.mark.parametrize("pace", ['"fast"', "{ concurrency = 0 }", "{ delay = -1 }", "{ concurrency = 1.5 }",
                                  "{ speed = 2 }", "{}", "{ delay = true }"])
def test_a_bad_pace_is_a_bad_schedule(tmp_path, pace):
    with pytest.raises(ScheduleError, match=r"site 'example.com': pace must be a table of concurrency"):
        load_schedule(schedule(tmp_path, f"pace = {pace}"))


def test_pace_needs_download_slots_it_can_add_to(tmp_path):
    with pytest.raises(ScheduleError, match="DOWNLOAD_SLOTS is not JSON"):
        load_schedule(schedule(tmp_path, "pace = { delay = 1 }\nsettings = { DOWNLOAD_SLOTS = \"{'a': 1}\" }"))
    (site,) = load_schedule(schedule(tmp_path, "")).sites
    assert "DOWNLOAD_SLOTS" not in site.settings
    assert json.loads(load_schedule(schedule(tmp_path, "pace = { delay = 1 }")).sites[0].settings["DOWNLOAD_SLOTS"]) == {
        "example.com": {"delay": 1}, "img.example.com": {"delay": 1}}
