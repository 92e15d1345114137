"""imgscraper.scrapyd_schedule: the schedule file. (Submitting to a real Scrapyd is
tested in tests/e2e/test_scrapyd.py, which shares that module's Scrapyd.)"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from imgscraper.scrapyd_schedule import ScheduleError, crontab_trigger, load_schedule
from tests.support.crawl import PROJECT_ROOT

GOOD = """
timezone = "UTC"
[settings]
IMAGES_STORE = "/data/images"
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


def test_sites_settings_and_triggers(tmp_path):
    schedule = load(tmp_path, GOOD, env={"SCRAPYD_URL": "http://10.0.0.5:6800/"})
    assert (schedule.scrapyd_url, schedule.project) == ("http://10.0.0.5:6800", "imgscraper")
    shop, blog = schedule.sites
    assert shop.spider_args() == [
        ("url", "https://shop.example/,https://shop.example/new"),
        ("depth", "2"),
        ("setting", "IMAGES_STORE=/data/images"),
        ("setting", "IMGSCRAPER_EXPIRES=12h"),
        ("setting", "ROBOTSTXT_OBEY=false"),
    ]
    assert isinstance(shop.trigger, CronTrigger)
    monday = shop.trigger.get_next_fire_time(None, datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert monday == datetime(2026, 11, 30, 3, 30, tzinfo=timezone.utc)
    assert blog.name == "blog.example" and blog.depth == 0
    assert isinstance(blog.trigger, IntervalTrigger) and blog.trigger.interval.total_seconds() == 5400
    assert ("setting", "IMGSCRAPER_EXPIRES=7d") in blog.spider_args()


@pytest.mark.parametrize(
    "site, words",
    [
        ('url = "https://a.example/"', "either cron"),
        ('url = "https://a.example/"\ncron = "0 3 * *"\nevery = "1h"', "either cron"),
        ('url = "https://a.example/"\ncron = "99 3 * * *"', "site 'a.example'"),
        ('url = "https://a.example/"\nevery = "soon"', "not a duration"),
        ('url = "ftp://a.example/"\nevery = "1h"', "http(s) URL"),
        ('url = "https://a.example/"\nevery = "1h"\ndepth = -1', "depth"),
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


def test_cli_check_prints_next_runs_and_bad_file_exits_2(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    run = subprocess.run([sys.executable, "-m", "imgscraper.scrapyd_schedule", "--check", str(good)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert "shop: next run" in run.stdout and "blog.example: next run" in run.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[[sites]\n")
    run = subprocess.run([sys.executable, "-m", "imgscraper.scrapyd_schedule", str(bad)],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "Bad schedule:" in run.stderr and "not valid TOML" in run.stderr and "Traceback" not in run.stderr


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
    import socket

    from scrapyd_client.pyclient import ScrapydClient

    from imgscraper.scrapyd_schedule import SiteSubmitter

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    site = load(tmp_path, '[[sites]]\nurl = "https://a.example/"\nevery = "1h"\n').sites[0]
    submitter = SiteSubmitter(ScrapydClient(f"http://127.0.0.1:{port}", "u", "p"), "imgscraper")
    with caplog.at_level("ERROR", logger="imgscraper.scrapyd_schedule"):
        assert submitter.submit(site) is None
    assert [r.getMessage() for r in caplog.records if "Could not submit a.example" in r.getMessage()]
