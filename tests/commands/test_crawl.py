"""Bad input changes nothing (issue #27): a bad argument or setting is one ERROR line, first,
exit status 1, and the crawl leaves everything as it was: an existing feed keeps its bytes, and
no store folder, record, gallery or JOBDIR is created, nothing is requested.

Each case runs ``python -m scrapy crawl images`` against the generated site on 127.0.0.1.
Last, what the command sets up for local workers besides Redis: their share of the bandwidth limit.
"""

from __future__ import annotations

import argparse

import pytest
from scrapy.settings import Settings

from imgscraper import settings as project_settings
from imgscraper.commands.crawl import Command
from imgscraper.spiders.images import ImagesSpider

FEED = b'{"url": "http://example.com/kept.jpg", "status": "downloaded"}\n' * 3


@pytest.fixture(scope="module")
def srv(site_server_module):
    return site_server_module


def crawl_with_feed(srv, run_crawl, tmp_path, args: list[str]):
    """A crawl given ``args``, an existing feed (``-O``), a store and a JOBDIR that do not exist yet."""
    feed = tmp_path / "kept.jsonl"
    feed.write_bytes(FEED)
    srv.clear_logs()
    result = run_crawl(
        ["-a", f"url={srv.url}", *args, "-O", str(feed), "-s", f"JOBDIR={tmp_path / 'job'}"],
        store=tmp_path / "store", out_dir=tmp_path,
    )
    srv.server.log.wait_idle()
    return result, feed


def assert_nothing_changed(srv, result, feed, tmp_path):
    assert feed.read_bytes() == FEED, "the existing feed was changed"
    assert not result.items_path.exists(), "a feed was created"
    for name in ("store", "job", "index.html"):
        assert not (tmp_path / name).exists(), f"{name} was created"
    assert not srv.server.log.snapshot(), "requests made despite bad input"


def assert_one_error_first(result, *words: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert 1 <= len(lines) <= 3, result.stderr
    assert "ERROR: Bad " in lines[0], lines[0]
    assert "started (bot:" not in result.stderr, "Scrapy's banner came first"
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["-a", "dept=1"], ("Bad argument: unknown argument dept (did you mean depth?)",)),
        (["-a", "depth=x"], ("Bad argument: depth 'x' is not a non-negative integer", "-a depth=1")),
        (["-a", "allow=(gallery"], ("Bad argument: allow '(gallery' is not a regular expression",)),
        (["-s", "JOB_DIR=elsewhere"], ("Bad setting: unknown setting JOB_DIR: did you mean JOBDIR?",)),
        (["-s", "CONCURENT_REQUESTS_PER_DOMAIN=2"], ("did you mean CONCURRENT_REQUESTS_PER_DOMAIN?",)),
        (["-s", "DOWNLOAD_DELAI=1"], ("did you mean DOWNLOAD_DELAY?",)),
        (["-s", "IMGSCRAPER_FILE_NAMES=bogus"], ("Bad setting: IMGSCRAPER_FILE_NAMES='bogus' is not one of stable, random",)),
        (["-s", "IMGSCRAPER_MAX_PAGES=many"], ("IMGSCRAPER_MAX_PAGES='many' is not an integer",)),
        (["-s", "IMGSCRAPER_DEPHT=2"], ("unknown setting IMGSCRAPER_DEPHT", "-a depth=")),
        (["-s", "DEPTH_LIMIT=2"], ("DEPTH_LIMIT='2'", "pass -a depth=2")),
        (["-s", "TWISTED_REACTOR_ENABLED=False"], ("TWISTED_REACTOR_ENABLED=False",)),
        (["-a", "render=yes", "-s", "IMGSCRAPER_RENDER_BROWSER=/no/chromium"], ("'/no/chromium' is not an executable",)),
        (["-a", "cookies=/no/cookies.txt"], ("Bad argument: cookies /no/cookies.txt: cannot be read",)),
        (["-s", "IMGSCRAPER_COOKIES=/no/cookies.txt"], ("Bad argument: cookies /no/cookies.txt: cannot be read",)),
        (["-s", "IMGSCRAPER_CONTACT=nobody"], ("IMGSCRAPER_CONTACT='nobody' is neither an e-mail address nor",)),
        (["-s", "IMGSCRAPER_MAX_RATE=fast"], ("Bad setting: IMGSCRAPER_MAX_RATE='fast' is not a size",)),
        # Chromium's downloads cannot be paced: refused, whether or not Chromium is installed.
        (["-a", "render=yes", "-s", "IMGSCRAPER_MAX_RATE=1M", "-s", "IMGSCRAPER_RENDER_BROWSER=/no/chromium"],
         ("Bad argument: render=yes loads pages in Chromium, which IMGSCRAPER_MAX_RATE cannot pace",)),
    ],
    ids=["misspelt-argument", "bad-depth", "bad-filter-argument", "misspelt-jobdir", "misspelt-concurrency",
         "misspelt-delay", "bad-choice", "bad-number", "depth-typo", "depth-limit", "reactorless", "no-browser",
         "no-cookies-file", "no-cookies-file-setting", "bad-contact", "bad-max-rate", "render-with-max-rate"],
)
def test_bad_input_is_one_line_and_changes_nothing(srv, run_crawl, tmp_path, args, words):
    result, feed = crawl_with_feed(srv, run_crawl, tmp_path, args)
    line = assert_one_error_first(result, *words)
    assert "DENY" not in line
    assert_nothing_changed(srv, result, feed, tmp_path)


def test_an_unwritable_store_is_refused_and_nothing_is_created(srv, run_crawl, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    srv.clear_logs()
    result = run_crawl(["-a", f"url={srv.url}", "-a", "depth=x"], store=tmp_path / "file" / "store", out_dir=tmp_path)
    assert_one_error_first(result, "Bad argument: depth")
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "IMAGES_STORE" in lines[1] and "cannot be written" in lines[1], result.stderr
    assert not result.items_path.exists()


def test_a_setting_close_to_no_known_one_is_one_warning_and_the_crawl_goes_on(srv, run_crawl, tmp_path):
    srv.clear_logs()
    result = run_crawl(["-a", f"url={srv.url}", "-s", "MY_MIDDLEWARE_RETRIES=5"], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    warnings = [line for line in result.stderr.splitlines() if "MY_MIDDLEWARE_RETRIES" in line]
    assert len(warnings) == 1 and "WARNING: Unknown setting MY_MIDDLEWARE_RETRIES" in warnings[0], warnings
    assert result.error_lines() == []
    assert any(item["status"] == "downloaded" for item in result.items)


@pytest.mark.parametrize("setting", ["SCHEDULER_PERSIST=False", "PLAYWRIGHT_MAX_CONTEXTS=2", "FILES_EXPIRES=3"])
def test_the_settings_of_the_components_in_use_pass(srv, run_crawl, tmp_path, setting):
    result = run_crawl(["-a", f"url={srv.url}", "-a", "download=no", "-s", setting], out_dir=tmp_path)
    assert result.returncode == 0, result.tail()
    assert "Unknown setting" not in result.stderr and not result.error_lines(), result.tail()


def test_the_processes_of_a_crawl_with_local_workers_share_its_bandwidth_limit():
    """Each process paces its own reading: the lead and each local worker (forked with the lead's
    settings) read a third of the limit. One start page at depth 0: no worker is forked here."""
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.setdict({"IMGSCRAPER_WORKERS": 3, "IMGSCRAPER_MAX_RATE": "1M",
                      # A Redis of its own: no private redis-server is started.
                      "IMGSCRAPER_REDIS_URL": "redis://127.0.0.1:1/0"}, priority="cmdline")
    command = Command()
    command.settings = settings
    command._set_up_local_workers(ImagesSpider, argparse.Namespace(spargs={"url": "https://example.com/"}))
    assert settings.get("IMGSCRAPER_MAX_RATE") == 1024 * 1024 // 3
    assert settings.getlist("IMGSCRAPER_LOCAL_WORKERS") == [] and settings.get("IMGSCRAPER_WORKER_ID")
