"""Scrapyd, as the README runs it: ``make scrapyd``, ``make deploy``, ``make schedule``.

One real Scrapyd per module, started by ``make scrapyd`` on a free 127.0.0.1
port with its home in a temporary folder and credentials in the environment.
Jobs crawl the generated test site (:mod:`tests.support.sitegen`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.support.crawl import PROJECT_ROOT, parse_stats
from tests.support.httpserver import HTTPTestServer
from tests.support.images import png
from tests.support.scrapyd import Scrapyd, make
from tests.support.servers import free_port

# A real Scrapyd, whose jobs crawl.
pytestmark = [pytest.mark.crawl, pytest.mark.services]

USERNAME = "tester"


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory):
    base = tmp_path_factory.mktemp("scrapyd")
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
    env.pop("PYTHONPATH", None)
    port = free_port()
    env.update(
        SCRAPYD_HOME=str(home), SCRAPYD_PORT=str(port), SCRAPYD_URL=f"http://127.0.0.1:{port}",
        SCRAPYD_USERNAME=USERNAME, SCRAPYD_PASSWORD=secrets.token_urlsafe(16),
        SCRAPYD_AUTH_FILE=str(base / "no-such-file"), NO_PROXY="127.0.0.1",
    )
    server = Scrapyd(home, port, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def deployed(scrapyd):
    result = make("deploy", scrapyd.env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def job(scrapyd, deployed, site_server_module, tmp_path_factory):
    store = tmp_path_factory.mktemp("scrapyd-store") / "images"
    result = make(
        "schedule", scrapyd.env, f"URL={site_server_module.url}", "DEPTH=1", f"STORE={store}",
        "SETTINGS=IMGSCRAPER_EXPIRES=12h LOG_LEVEL=INFO",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"imgscraper / images => (\w+)", result.stdout)
    assert match, result.stdout
    finished = scrapyd.wait_finished(match[1])
    return finished, store


def test_scrapyd_needs_the_credentials(scrapyd):
    status = f"{scrapyd.url}/daemonstatus.json"
    assert requests.get(status, timeout=5).status_code == 401
    assert requests.get(status, auth=(USERNAME, "wrong"), timeout=5).status_code == 401
    assert requests.get(status, auth=("someone", scrapyd.auth[1]), timeout=5).status_code == 401
    schedule = requests.post(
        f"{scrapyd.url}/schedule.json", data={"project": "imgscraper", "spider": "images"}, timeout=5
    )
    assert schedule.status_code == 401
    assert requests.get(status, auth=scrapyd.auth, timeout=5).json()["status"] == "ok"


def test_scrapyd_listens_on_loopback_only(scrapyd):
    """Bound to 127.0.0.1, not to every address (on Linux all of 127/8 reaches a 0.0.0.0 listener)."""
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.2", scrapyd.port)) != 0


def test_deploy_makes_the_spider_available(scrapyd, deployed):
    assert json.loads(deployed.stdout.strip().splitlines()[-1])["spiders"] == 1
    assert scrapyd.api("listspiders", project="imgscraper")["spiders"] == ["images"]


def test_the_egg_holds_every_file_of_the_package(scrapyd, deployed):
    """Jobs import the project from the egg only (nothing is installed), so every
    file the spider may need at run time must be in it."""
    (egg,) = (scrapyd.home / "eggs" / "imgscraper").glob("*.egg")
    tracked = subprocess.run(
        ["git", "ls-files", "imgscraper"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    with zipfile.ZipFile(egg) as archive:
        names = set(archive.namelist())
    assert tracked and set(tracked) <= names
    assert not [n for n in names if n.startswith("tests/")]
    # The egg is a zip: a module must read its data with pkgutil.get_data, never from a path next to its source.
    readers = [p for p in tracked if p.endswith(".py") and "__file__" in (PROJECT_ROOT / p).read_text()]
    assert not readers, f"modules using __file__ (breaks in the zipped egg): {readers}"
    outside = subprocess.run([sys.executable, "-c", "import imgscraper"], cwd=scrapyd.home, capture_output=True)
    assert outside.returncode != 0, "imgscraper is importable outside the egg: the job would not test the egg"


def test_scheduled_job_stores_images_and_items(scrapyd, job, site_server_module):
    finished, store = job
    site = site_server_module.site
    items_file = scrapyd.home / "items" / "imgscraper" / "images" / f"{finished['id']}.jl"
    log = (scrapyd.home / "logs" / "imgscraper" / "images" / f"{finished['id']}.log").read_text()
    assert parse_stats(log).get("finish_reason") == "finished", log[-3000:]
    assert finished["items_url"].endswith(f"{finished['id']}.jl")
    items = [json.loads(line) for line in items_file.read_text().splitlines()]
    by_url = {i["url"]: i for i in items}
    expected = site.stored_at(1)
    assert set(by_url) == site.discovered_at(1)
    for url, sha in expected.items():
        item = by_url[url]
        assert item["status"] == "downloaded" and item["checksum"] == sha, item
        assert hashlib.sha256((store / item["path"]).read_bytes()).hexdigest() == sha
    stored = {p for p in store.rglob("*") if p.is_file() and ".imgscraper" not in p.parts} - {store / "index.html"}
    assert len(stored) == len(set(expected.values()))
    assert (store / ".imgscraper" / "records.sqlite3").is_file()
    assert (store / "index.html").is_file(), "the gallery is written by Scrapyd jobs too"
    assert "Crawl summary (finished)" in log and "\x1b[" not in log


def test_scheduled_job_with_local_workers(scrapyd, deployed, site_server_module, tmp_path):
    """IMGSCRAPER_WORKERS=2 under Scrapyd: the job running the deployed egg starts a private Redis and
    a local worker, which takes part; the job's one feed holds one item per image."""
    store = tmp_path / "images"
    site_server_module.server.latency = 0.2  # long enough for the local worker to start and take its share
    try:
        result = make(
            "schedule", scrapyd.env, f"URL={site_server_module.url}", "DEPTH=1", f"STORE={store}",
            # Two requests at a time: the lead is busy with the start page's images when the worker joins.
            "SETTINGS=LOG_LEVEL=INFO IMGSCRAPER_WORKERS=2 CONCURRENT_REQUESTS=2",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        finished = scrapyd.wait_finished(re.search(r"imgscraper / images => (\w+)", result.stdout)[1], timeout=120)
    finally:
        site_server_module.server.latency = 0.0
    log = (scrapyd.home / "logs" / "imgscraper" / "images" / f"{finished['id']}.log").read_text()
    stats = parse_stats(log)
    assert stats.get("finish_reason") == "finished" and "Traceback" not in log, log[-3000:]
    assert stats.get("imgscraper/workers/items", 0) > 0, log[-3000:]
    stored = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (store / "full").iterdir()}
    assert stored == set(site_server_module.site.stored_at(1).values())
    items = (scrapyd.home / "items" / "imgscraper" / "images" / f"{finished['id']}.jl").read_text().splitlines()
    urls = [json.loads(line)["url"] for line in items]
    assert sorted(urls) == sorted(set(urls)) and set(urls) == site_server_module.site.discovered_at(1)


def schedule_job(scrapyd: Scrapyd, *args: str) -> dict:
    result = make("schedule", scrapyd.env, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return scrapyd.wait_finished(re.search(r"imgscraper / images => (\w+)", result.stdout)[1])


def test_scheduled_job_with_a_path_template(scrapyd, deployed, site_server_module, tmp_path):
    """IMGSCRAPER_FILE_PATH given to a Scrapyd job: the job's files are where the template says."""
    store = tmp_path / "named"
    finished = schedule_job(scrapyd, f"URL={site_server_module.url}", f"STORE={store}",
                            "SETTINGS=IMGSCRAPER_FILE_PATH=named/{name}-{uuid}{ext}")
    log = (scrapyd.home / "logs" / "imgscraper" / "images" / f"{finished['id']}.log").read_text()
    assert parse_stats(log).get("finish_reason") == "finished", log[-3000:]
    items = [json.loads(line) for line in
             (scrapyd.home / "items" / "imgscraper" / "images" / f"{finished['id']}.jl").read_text().splitlines()]
    downloaded = [item for item in items if item["status"] == "downloaded"]
    assert downloaded, items
    for item in downloaded:
        folder, name = item["path"].split("/")
        stem = item["url"].rsplit("/", 1)[-1].rpartition(".")[0]
        assert folder == "named" and name.startswith(f"{stem}-"), item
        assert hashlib.sha256((store / item["path"]).read_bytes()).hexdigest() == item["checksum"]


def test_make_jobs_lists_exit_status_and_summary_failed_first(scrapyd, job, tmp_path):
    """listjobs.json shows a failed job like a good one; make jobs reads how each ended from its log."""
    good, _ = job
    refused = schedule_job(scrapyd, "URL=http://127.0.0.1:9/", f"STORE={tmp_path / 'a'}", "SETTINGS=DOWNLOAD_DELAI=1")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        down = schedule_job(scrapyd, f"URL=http://127.0.0.1:{closed.getsockname()[1]}/", f"STORE={tmp_path / 'b'}")
    result = make("jobs", scrapyd.env)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[2]: line for line in result.stdout.splitlines()}
    order = [line.split()[2] for line in result.stdout.splitlines()]
    assert order.index(refused["id"]) < order.index(good["id"]) and order.index(down["id"]) < order.index(good["id"])
    assert lines[refused["id"]].startswith("exit 1 ")
    assert lines[refused["id"]].endswith("Bad setting: unknown setting DOWNLOAD_DELAI: did you mean DOWNLOAD_DELAY?")
    assert lines[down["id"]].startswith("exit 1 ") and "start pages not fetched 1" in lines[down["id"]]
    assert lines[good["id"]].startswith("exit 0 ") and "finished: pages " in lines[good["id"]]


def test_job_logs_carry_no_deprecation_noise(scrapyd, job):
    """Scrapyd's job runner imports pkg_resources, which warns in every job (Scrapyd logs the job's stderr)."""
    finished, _ = job
    log = (scrapyd.home / "logs" / "imgscraper" / "images" / f"{finished['id']}.log").read_text()
    for text in (log, scrapyd.output()):
        assert "pkg_resources" not in text and "DeprecationWarning" not in text


def test_finished_job_survives_a_restart(scrapyd, job):
    finished, _ = job
    scrapyd.stop()
    scrapyd.start()
    jobs = scrapyd.api("listjobs", project="imgscraper")
    assert finished["id"] in [j["id"] for j in jobs["finished"]]
    assert scrapyd.api("listprojects")["projects"] == ["imgscraper"]


def test_make_targets_need_credentials_that_scrapyd_auth_creates(scrapyd, tmp_path):
    env = {k: v for k, v in scrapyd.env.items() if k not in ("SCRAPYD_USERNAME", "SCRAPYD_PASSWORD")}
    env.update(SCRAPYD_AUTH_FILE=str(tmp_path / "auth.env"), SCRAPYD_HOME=str(tmp_path / "home"))
    result = make("schedule", env, "URL=http://127.0.0.1:9/")
    assert result.returncode != 0 and "no Scrapyd credentials" in result.stderr
    # make scrapyd-auth writes a random password to a private file outside the repository.
    result = make("scrapyd-auth", env)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "auth.env").read_text()
    assert re.fullmatch(r"SCRAPYD_USERNAME=imgscraper\nSCRAPYD_PASSWORD=[\w-]{20,}\n", text)
    assert (tmp_path / "auth.env").stat().st_mode & 0o077 == 0
    again = make("scrapyd-auth", env)
    assert (tmp_path / "auth.env").read_text() == text, "an existing credentials file was overwritten"
    assert again.returncode == 0


# ---------------------------------------------------------------------------
# The scheduler (make scheduler) against this Scrapyd
# ---------------------------------------------------------------------------


def tiny_site(root: Path, latency: float = 0.0) -> HTTPTestServer:
    """A page with two images."""
    (root / "a.png").write_bytes(png("a", (20, 20)))
    (root / "b.png").write_bytes(png("b", (30, 20)))
    (root / "index.html").write_text('<img src="a.png"><img src="b.png">')
    return HTTPTestServer(root, latency=latency)


@pytest.fixture(scope="module")
def quick_site(tmp_path_factory):
    with tiny_site(tmp_path_factory.mktemp("quick-site")) as server:
        yield server


@pytest.fixture(scope="module")
def slow_site(tmp_path_factory):
    """A site whose crawl outlasts the scheduler's interval: 1 s per response."""
    with tiny_site(tmp_path_factory.mktemp("slow-site"), latency=1.0) as server:
        yield server


def finished_jobs(scrapyd: Scrapyd, prefix: str) -> list[dict]:
    jobs = scrapyd.api("listjobs", project="imgscraper")["finished"]
    return sorted((j for j in jobs if j["id"].startswith(prefix)), key=lambda j: j["start_time"])


def wait_idle(scrapyd: Scrapyd, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = scrapyd.api("listjobs", project="imgscraper")
        if not jobs["pending"] and not jobs["running"]:
            return
        time.sleep(0.25)
    raise AssertionError(f"jobs still pending or running after {timeout} s: {jobs}")


def test_scheduler_submits_each_run_and_skips_a_site_still_running(
    scrapyd, deployed, quick_site, slow_site, tmp_path
):
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(f"""
[settings]
IMAGES_STORE = "{tmp_path / 'quick-store'}"
LOG_LEVEL = "INFO"
IMGSCRAPER_GALLERY = false

[[sites]]
name = "quick"
url = "{quick_site.url}"
every = "2s"

[[sites]]
name = "slow"
url = "{slow_site.url}"
every = "1s"
settings = {{ IMAGES_STORE = "{tmp_path / 'slow-store'}" }}
""")
    out = tmp_path / "scheduler.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "scheduler", f"SCHEDULE={schedule}"], cwd=PROJECT_ROOT,
            env=scrapyd.env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 45
        while len(finished_jobs(scrapyd, "quick-")) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    wait_idle(scrapyd)
    log = out.read_text()
    assert "Scheduler stopped" in log and "Traceback" not in log, log

    quick = finished_jobs(scrapyd, "quick-")
    assert len(quick) >= 2, log
    assert len(re.findall(r"Submitted quick: job quick-", log)) == len(quick)
    # The second run re-crawls into the same store: what the first stored is up to date.
    runs = []
    for job in quick[:2]:
        items_file = scrapyd.home / "items" / "imgscraper" / "images" / f"{job['id']}.jl"
        runs.append({i["url"]: i for i in map(json.loads, items_file.read_text().splitlines())})
    stored = {u for u, i in runs[0].items() if i["status"] == "downloaded"}
    assert stored and {runs[1][u]["status"] for u in stored} == {"uptodate"}

    slow = finished_jobs(scrapyd, "slow-")
    assert slow and "Skipped slow: its job slow-" in log, log
    for before, after in zip(slow, slow[1:]):
        assert after["start_time"] >= before["end_time"], f"slow jobs overlap: {before} {after}"
