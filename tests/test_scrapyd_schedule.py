"""imgscraper.scrapyd.schedule: the schedule file, checked as a crawl checks its input; and what
the scheduler and the make targets say when Scrapyd is down. (Submitting to a real Scrapyd is
tested in tests/e2e/test_scrapyd.py, which shares that module's Scrapyd.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from imgscraper.exceptions import ScheduleError
from imgscraper.scrapyd.schedule import crontab_trigger, load_schedule
from tests.support.crawl import PROJECT_ROOT

GOOD = """
timezone = "UTC"
[settings]
IMAGES_STORE = "images"
IMGSCRAPER_EXPIRES = "7d"

[[sites]]
name = "shop"
url = ["https://shop.example/", "https://shop.example/new"]
depth = 2
cron = "30 3 * * 1"
settings = { IMGSCRAPER_EXPIRES = "12h", ROBOTSTXT_OBEY = false }

[[sites]]
url = "https://blog.example/"
every = "90m"
"""


def load(tmp_path, text, env=None):
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    return load_schedule(path, env=env or {})


def closed_port() -> int:
    with socket.socket() as s:  # bound and closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_module(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_sites_settings_and_triggers(tmp_path):
    schedule = load(tmp_path, GOOD, env={"SCRAPYD_URL": "http://10.0.0.5:6800/"})
    assert (schedule.scrapyd_url, schedule.project) == ("http://10.0.0.5:6800", "imgscraper")
    shop, blog = schedule.sites
    assert shop.spider_args() == [
        ("url", "https://shop.example/,https://shop.example/new"),
        ("depth", "2"),
        ("setting", "IMAGES_STORE=images"),
        ("setting", "IMGSCRAPER_EXPIRES=12h"),
        ("setting", "ROBOTSTXT_OBEY=false"),
    ]
    assert isinstance(shop.trigger, CronTrigger)
    monday = shop.trigger.get_next_fire_time(None, datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert monday == datetime(2026, 11, 30, 3, 30, tzinfo=timezone.utc)
    assert blog.name == "blog.example" and blog.arguments == {"url": "https://blog.example/"}
    assert isinstance(blog.trigger, IntervalTrigger) and blog.trigger.interval.total_seconds() == 5400
    assert ("setting", "IMGSCRAPER_EXPIRES=7d") in blog.spider_args()


@pytest.mark.parametrize(
    "site, words",
    [
        ('url = "https://a.example/"', "either cron"),
        ('url = "https://a.example/"\ncron = "0 3 * *"\nevery = "1h"', "either cron"),
        ('url = "https://a.example/"\ncron = "99 3 * * *"', "site 'a.example'"),
        ('url = "https://a.example/"\nevery = "soon"', "not a duration"),
        ('url = "ftp://a.example/"\nevery = "1h"', "is not an http(s) URL"),
        ('url = "https://a.example/"\nevery = "1h"\ndepth = -1', "depth '-1' is not a non-negative integer"),
        ('url = "https://a.example/"\nevery = "1h"\ndownload = "maybe"', "download 'maybe' is not yes or no"),
        ('url = "https://a.example/"\nevery = "1h"\nname = "a b"', "name may hold only"),
    ],
)
def test_bad_site_is_one_clear_error(tmp_path, site, words):
    with pytest.raises(ScheduleError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path, f"[[sites]]\n{site}\n")


def test_duplicate_names_and_empty_files_are_refused(tmp_path):
    with pytest.raises(ScheduleError, match="two sites"):
        load(tmp_path, '[[sites]]\nurl = "https://a.example/"\nevery = "1h"\n' * 2)
    with pytest.raises(ScheduleError, match="no \\[\\[sites\\]\\]"):
        load(tmp_path, 'project = "imgscraper"\n')


def test_cli_check_prints_next_runs_and_a_bad_file_is_one_line_exit_1(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    run = run_module("imgscraper.scrapyd.schedule", "--check", str(good))
    assert run.returncode == 0, run.stderr
    assert "shop: next run" in run.stdout and "blog.example: next run" in run.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sites]\n")
    run = run_module("imgscraper.scrapyd.schedule", str(bad))
    assert run.returncode == 1
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert "Bad schedule:" in run.stderr and "not valid TOML" in run.stderr


TYPOS = """
[settings]
IMAGES_STORE = "images"
IMGSCRAPER_EXPIRE = "7d"

[[sites]]
name = "shop"
url = "https://shop.example/"
depht = 2
cron = "0 3 * * *"

[[sites]]
name = "blog"
url = "https://blog.example/"
every = "6h"
settings = { DOWNLOAD_DELAI = "1", IMGSCRAPER_MAX_PAGES = "many" }
"""


def test_check_refuses_what_the_crawl_would_refuse_one_line_each(tmp_path):
    """The schedule's typos (a site key is a spider argument, a setting a -s setting) are the crawl's
    bad arguments and settings, with the crawl's hints; a typo of [settings] is said once."""
    schedule = tmp_path / "typos.toml"
    schedule.write_text(TYPOS)
    run = run_module("imgscraper.scrapyd.schedule", "--check", str(schedule))
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert all("ERROR: Bad schedule: " in line for line in lines), run.stderr
    problems = [line.partition("ERROR: Bad schedule: ")[2] for line in lines]
    assert len(problems) == 4, run.stderr
    assert problems[0] == "[settings]: Bad setting: unknown setting IMGSCRAPER_EXPIRE: did you mean IMGSCRAPER_EXPIRES?"
    assert problems[1].startswith("site 'shop': Bad argument: unknown argument depht (did you mean depth?)")
    assert problems[2] == "site 'blog': Bad setting: unknown setting DOWNLOAD_DELAI: did you mean DOWNLOAD_DELAY?"
    assert problems[3].startswith("site 'blog': Bad setting: IMGSCRAPER_MAX_PAGES='many' is not an integer")


def test_a_site_key_is_a_spider_argument(tmp_path):
    site = load(tmp_path, '[[sites]]\nurl = "https://a.example/"\nevery = "1h"\ndownload = false\n'
                          'formats = ["jpeg", "png"]\n').sites[0]
    assert site.spider_args() == [("url", "https://a.example/"), ("download", "false"), ("formats", "jpeg,png")]


def test_the_scheduler_with_scrapyd_down_says_so_in_one_line(tmp_path):
    schedule = tmp_path / "good.toml"
    schedule.write_text(GOOD)
    url = f"http://127.0.0.1:{closed_port()}"
    run = run_module("imgscraper.scrapyd.schedule", str(schedule), env={"SCRAPYD_URL": url})
    assert run.returncode == 1
    (line,) = run.stderr.splitlines()
    assert f"Scrapyd does not answer at {url}: start it with `make scrapyd`" in line
    assert "Scheduling" not in run.stderr


@pytest.mark.parametrize("target", ["deploy", "schedule URL=http://127.0.0.1:9/", "jobs"])
def test_make_targets_with_scrapyd_down_say_so_in_one_line(target):
    url = f"http://127.0.0.1:{closed_port()}"
    # As a user runs it, not as a sub-make of `make test` (which would say make[1]: ***).
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env.update(SCRAPYD_URL=url, SCRAPYD_USERNAME="u", SCRAPYD_PASSWORD="p")
    run = subprocess.run(["make", "--no-print-directory", *target.split()], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if not line.startswith("make: ***")]
    assert ours == [f"Scrapyd does not answer at {url}: start it with `make scrapyd` (or set SCRAPYD_URL to where it runs)"]
    assert "Connection refused" not in run.stdout + run.stderr


@pytest.mark.parametrize(
    "weekdays, expected",
    [("0", {6}), ("7", {6}), ("1", {0}), ("1-5", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), ("*/2", {6, 1, 3, 5}),
     ("5-7", {4, 5, 6}), ("mon-fri", {0, 1, 2, 3, 4}), ("*", set(range(7)))],
)
def test_crontab_weekdays_count_from_sunday(weekdays, expected):
    """Crontab's 0 is Sunday (APScheduler 3 on its own reads 0 as Monday)."""
    trigger = crontab_trigger(f"0 12 * * {weekdays}", "UTC")
    start = datetime(2026, 11, 23, tzinfo=timezone.utc)  # a Monday
    fires, previous = set(), None
    for _ in range(len(expected)):
        previous = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1) if previous else start)
        fires.add(previous.weekday())
    assert fires == expected


@pytest.mark.parametrize("expression", ["0 3 * *", "0 3 * * 8", "0 3 * * 3-1", "0 3 * * */x"])
def test_bad_crontab(expression):
    with pytest.raises(ValueError):
        crontab_trigger(expression)


def test_submitter_logs_and_skips_when_scrapyd_is_unreachable(tmp_path, caplog):
    from scrapyd_client.pyclient import ScrapydClient

    from imgscraper.scrapyd.schedule import SiteSubmitter

    port = closed_port()
    site = load(tmp_path, '[[sites]]\nurl = "https://a.example/"\nevery = "1h"\n').sites[0]
    submitter = SiteSubmitter(ScrapydClient(f"http://127.0.0.1:{port}", "u", "p"), "imgscraper")
    with caplog.at_level("ERROR", logger="imgscraper.scrapyd.schedule"):
        assert submitter.submit(site) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"Could not submit a.example: Scrapyd does not answer at http://127.0.0.1:{port}: start it with `make scrapyd`"
        " (or set SCRAPYD_URL to where it runs)"
    ]


@pytest.mark.parametrize(
    "log, outcome",
    [
        ("2026-12-07 03:00:01 [scrapy.core.engine] INFO: Spider opened\n", (None, "no stats in the log")),
        ("2026-12-07 03:00:01 [imgscraper.commands.crawl] ERROR: Bad argument: depth 'x' is not a non-negative"
         " integer\n", (1, "Bad argument: depth 'x' is not a non-negative integer")),
    ],
    ids=["killed", "bad-argument"],
)
def test_the_outcome_of_a_job_without_stats(log, outcome):
    """A job's log without Scrapy's stats: refused (its ERROR line), or killed (no exit status).
    (Logs with stats: test_scrapyd.py, on real jobs.)"""
    from imgscraper.scrapyd.jobs import log_outcome

    exit_status, summary = log_outcome(log)
    assert (exit_status, summary[: len(outcome[1])]) == outcome
