"""Periodic crawls through Scrapyd, which has no periodic scheduling of its own.

``python -m imgscraper.scrapyd.schedule schedule.toml`` (``make scheduler``) reads a
schedule file and, on each site's cron expression or interval, posts a job to
Scrapyd's ``schedule.json``, unless that site's previous job is still pending
or running. It runs in the foreground until stopped (Ctrl-C, SIGTERM), as a
service manager expects. The timing comes from APScheduler 3's cron and
interval triggers.

Schedule file (TOML)::

    scrapyd_url = "http://127.0.0.1:6800"   # default: $SCRAPYD_URL, else this
    project = "imgscraper"                   # default
    timezone = "UTC"                         # of the cron expressions; default: local time

    [settings]                               # Scrapy settings for every site
    IMAGES_STORE = "/data/images"

    [[sites]]
    name = "example"                         # default: the first URL's host
    url = "https://example.com/"             # or a list of URLs
    depth = 1                                # any other key is a spider argument too
    cron = "0 3 * * *"                       # minute hour day month weekday
    settings = { IMGSCRAPER_EXPIRES = "12h" }

    [[sites]]
    url = "https://example.org/"
    every = "6h"                             # instead of cron: 30s, 15m, 6h, 1d
    cookies = "members.txt"                  # -a cookies=FILE (docs/cookies.md), relative to this file
    pace = { concurrency = 1, delay = 2 }    # DOWNLOAD_SLOTS of the URLs' hosts (also jitter)

A site's keys other than ``name``, ``cron``, ``every``, ``pace`` and ``settings`` are the
spider's arguments. Each site's arguments and settings are checked as the crawl
checks them (:func:`imgscraper.commands.crawl.crawl_problems`): a file with a
wrong one is refused, one line per problem, before anything is scheduled.

Scrapyd's credentials come from ``SCRAPYD_USERNAME`` and ``SCRAPYD_PASSWORD``.
Each job's id is ``<site name>-<UTC time>``: the scheduler recognises a site's
jobs by that prefix in ``listjobs.json``, so it also sees jobs it submitted
before a restart.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import secrets
import signal
import sys
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from scrapy.settings import Settings
from scrapyd_client.exceptions import ErrorResponse, MalformedResponse
from scrapyd_client.pyclient import ScrapydClient

from imgscraper.addons.settingscheck import check_settings, spider_arguments
from imgscraper.commands.crawl import crawl_problems
from imgscraper.exceptions import ScheduleError
from imgscraper.scrapyd.service import scrapyd_auth, scrapyd_problem, scrapyd_url, unreachable
from imgscraper.spiders.images import ImagesSpider
from imgscraper.utils import parse_duration

__all__ = [
    "Schedule", "Site", "SiteSubmitter", "build_scheduler", "crontab_trigger", "job_settings", "load_schedule", "main",
]

logger = logging.getLogger("imgscraper.scrapyd.schedule")  # also when run as __main__

SPIDER = "images"
#: A site's keys that are the schedule's; every other key is a spider argument.
SITE_KEYS = ("name", "cron", "every", "settings", "pace")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Site:
    """One site to crawl periodically."""

    name: str
    trigger: BaseTrigger
    #: The spider's arguments (``url``, ``depth``...), as ``-a NAME=VALUE`` would pass them.
    arguments: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    def spider_args(self) -> list[tuple[str, str]]:
        """``schedule.json`` parameters besides project and spider."""
        params = list(self.arguments.items())
        params += [("setting", f"{name}={value}") for name, value in sorted(self.settings.items())]
        return params


@dataclass
class Schedule:
    scrapyd_url: str
    project: str
    sites: list[Site]


def _text(value: Any) -> str:
    """A TOML value as a command line would spell it: ``true``, ``a,b`` for a list."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(_text, value))
    return str(value)


def _text_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ScheduleError(f"{where} must be a table of NAME = value")
    return {str(k): _text(v) for k, v in value.items()}


_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMERIC_WEEKDAYS = re.compile(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?")
def _crontab_weekdays(field: str) -> str:
    """Crontab's day-of-week field with its numbers (0 and 7 Sunday) spelt as
    names: APScheduler 3 counts numbers from Monday."""
    names: list[str] = []
    for part in field.split(","):
        match = _NUMERIC_WEEKDAYS.fullmatch(part)
        if not match or part == "*":
            names.append(part)
            continue
        first, last, step = match.groups()
        if first == "*":
            if last is not None:
                raise ValueError(f"day of week {part!r} is not valid")
            start, end = 0, 6
        else:
            start = int(first)
            end = int(last) if last is not None else (6 if step else start)
        if not 0 <= start <= end <= 7:
            raise ValueError(f"day of week {part!r} is not within 0-7 (0 and 7: Sunday)")
        names += [_WEEKDAYS[day % 7] for day in range(start, end + 1, int(step or 1))]
    return ",".join(dict.fromkeys(names))


def crontab_trigger(expression: str, tz: str | None = None) -> CronTrigger:
    """A trigger for a crontab expression (minute hour day month day-of-week).

    Unlike crontab, a run needs both day fields to match when both are restricted.
    """
    fields_ = expression.split()
    if len(fields_) != 5:
        raise ValueError(f"cron {expression!r} has {len(fields_)} fields, not 5 (minute hour day month day-of-week)")
    minute, hour, day, month, weekday = fields_
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_crontab_weekdays(weekday), timezone=tz
    )


def _trigger(entry: dict[str, Any], where: str, tz: str | None) -> BaseTrigger:
    cron, every = entry.get("cron"), entry.get("every")
    if (cron is None) == (every is None):
        raise ScheduleError(f'{where}: give either cron = "M H DOM MON DOW" or every = "6h"')
    try:
        if cron is not None:
            return crontab_trigger(str(cron), tz)
        seconds = parse_duration(every, default_unit="s")
        if seconds <= 0:
            raise ValueError(f"{every!r} is not a positive duration")
        return IntervalTrigger(seconds=seconds, timezone=tz)
    except (ValueError, LookupError) as exc:  # LookupError: an unknown timezone
        raise ScheduleError(f"{where}: {exc}") from None


def job_settings(settings: dict[str, str]) -> Settings:
    """The settings of a job given ``settings`` (``-s NAME=VALUE``): the project's, then these."""
    job = Settings()
    job.setmodule("imgscraper.settings", priority="project")
    job.update(settings, priority="cmdline")
    return job


def _download_slots(pace: Any, urls: list[str], given: str | None, where: str) -> str:
    """``DOWNLOAD_SLOTS`` (JSON): ``given`` (JSON) with the hosts of ``urls`` paced as ``pace`` says."""
    valid = isinstance(pace, dict) and bool(pace) and set(pace) <= {"concurrency", "delay", "jitter"}
    valid = valid and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in pace.values())
    if not valid or not isinstance(pace.get("concurrency", 1), int) or pace.get("concurrency", 1) < 1:
        raise ScheduleError(f"{where}: pace must be a table of concurrency (requests at once, at least 1), delay and "
                            "jitter (seconds, fraction), e.g. pace = { concurrency = 1, delay = 2 }")
    try:
        slots = json.loads(given) if given else {}
    except json.JSONDecodeError:
        raise ScheduleError(f"{where}: settings DOWNLOAD_SLOTS is not JSON, and pace adds to it") from None
    slots.update({urlsplit(url).hostname: dict(pace) for url in urls})
    return json.dumps(slots, sort_keys=True)


def _site_name(entry: dict[str, Any], n: int) -> str:
    """The site's ``name``, else its first URL's host; ``site N`` when it has neither (reported)."""
    urls = entry.get("url")
    first = urls[0] if isinstance(urls, list) and urls else urls
    name = entry.get("name") or (isinstance(first, str) and urlsplit(first).hostname)
    return str(name or f"site {n}")


def _load_site(
    entry: Any, n: int, tz: str | None, common: dict[str, str], known: Collection[str], base: Path
) -> tuple[Site, list[str]]:
    """The ``n``-th site of the file, and every problem with it (one line each) but the ``known`` ones.
    A relative ``cookies`` file is relative to ``base``, the schedule file's folder."""
    if not isinstance(entry, dict):
        raise ScheduleError(f"site {n} must be a table: [[sites]] followed by url = ... and cron = ...")
    name = _site_name(entry, n)
    where = f"site {name!r}"
    problems = []
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: name may hold only letters, digits, '.', '_' and '-'")
    try:
        trigger = _trigger(entry, where, tz)
    except ScheduleError as exc:
        problems.append(str(exc))
        trigger = IntervalTrigger(days=1)
    try:
        settings = {**common, **_text_map(entry.get("settings", {}), f"{where}: settings")}
        if "pace" in entry:
            urls = entry.get("url")
            urls = [urls] if isinstance(urls, str) else [url for url in urls or () if isinstance(url, str)]
            settings["DOWNLOAD_SLOTS"] = _download_slots(entry["pace"], urls, settings.get("DOWNLOAD_SLOTS"), where)
    except ScheduleError as exc:
        problems.append(str(exc))
        settings = common
    arguments = {str(key): _text(value) for key, value in entry.items() if key not in SITE_KEYS}
    if arguments.get("cookies"):
        arguments["cookies"] = str(base / Path(arguments["cookies"]).expanduser())
    problems += [f"{where}: {problem}" for problem in crawl_problems(ImagesSpider, arguments, job_settings(settings))
                 if problem not in known]
    return Site(name=name, trigger=trigger, arguments=arguments, settings=settings), problems


def load_schedule(path: str | Path, env: dict[str, str] | None = None) -> Schedule:
    """Read and check a schedule file (see the module docstring): each site's arguments and
    settings are checked as the crawl checks them.

    Raises :class:`ScheduleError` holding one line per problem.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScheduleError(f"{path} is not valid TOML: {exc}") from None
    tz = data.get("timezone")
    common = _text_map(data.get("settings", {}), "[settings]")
    entries = data.get("sites")
    if not isinstance(entries, list) or not entries:
        raise ScheduleError(f'{path}: no [[sites]]: add one with url = "https://example.com/" and cron or every')
    # A wrong setting of [settings] is said once, not for every site.
    common_problems = [f"Bad setting: {problem}"
                       for problem in check_settings(job_settings(common), spider_arguments(ImagesSpider))]
    sites: list[Site] = []
    problems = [f"[settings]: {problem}" for problem in common_problems]
    for n, entry in enumerate(entries, 1):
        try:
            site, site_problems = _load_site(entry, n, tz, common, common_problems, Path(path).parent.absolute())
        except ScheduleError as exc:
            problems.append(str(exc))
            continue
        if site.name in {s.name for s in sites}:
            site_problems.append(f"site {site.name!r}: two sites have this name: give each a name = ...")
        problems += site_problems
        sites.append(site)
    if problems:
        raise ScheduleError(*problems)
    url = str(data.get("scrapyd_url") or scrapyd_url(env)).rstrip("/")
    return Schedule(scrapyd_url=url, project=str(data.get("project", "imgscraper")), sites=sites)


class SiteSubmitter:
    """Posts a site's job to Scrapyd unless its previous one is still pending or running."""

    def __init__(self, client: ScrapydClient, project: str):
        self.client = client
        self.project = project

    def busy_jobs(self, site: Site) -> list[str]:
        """Ids of the site's pending and running jobs."""
        jobs = self.client.jobs(self.project)
        prefix = f"{site.name}-"
        return [job["id"] for state in ("pending", "running") for job in jobs.get(state, [])
                if job["id"].startswith(prefix)]

    def submit(self, site: Site) -> str | None:
        """Submit ``site``'s job; its id, or None when skipped or Scrapyd failed (logged)."""
        try:
            busy = self.busy_jobs(site)
            if busy:
                logger.info("Skipped %s: its job %s is still pending or running", site.name, busy[0])
                return None
            job_id = f"{site.name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
            self.client.schedule(self.project, SPIDER, [*site.spider_args(), ("jobid", job_id)])
        except requests.ConnectionError:
            logger.error("Could not submit %s: %s", site.name, unreachable(self.client.url))
            return None
        except (requests.RequestException, ErrorResponse, MalformedResponse, KeyError) as exc:
            logger.error("Could not submit %s to Scrapyd at %s: %s", site.name, self.client.url, exc)
            return None
        logger.info("Submitted %s: job %s", site.name, job_id)
        return job_id


def build_scheduler(schedule: Schedule, submitter: SiteSubmitter) -> BlockingScheduler:
    """A scheduler with one job per site: one run at a time, missed runs coalesced."""
    scheduler = BlockingScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300})
    for site in schedule.sites:
        scheduler.add_job(submitter.submit, site.trigger, args=[site], id=site.name, name=f"crawl {site.name}")
    return scheduler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgscraper.scrapyd.schedule", description=__doc__.split("\n\n")[0])
    parser.add_argument("schedule", help="the schedule file (TOML)")
    parser.add_argument("--check", action="store_true", help="check the file, print the next runs and exit")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        schedule = load_schedule(opts.schedule)
    except ScheduleError as exc:
        for problem in exc.problems:
            logger.error("Bad schedule: %s", problem)
        return 1
    if opts.check:
        now = datetime.now(timezone.utc)
        for site in schedule.sites:
            print(f"{site.name}: next run {site.trigger.get_next_fire_time(None, now)}")
        return 0
    auth = scrapyd_auth()
    problem = scrapyd_problem(schedule.scrapyd_url, auth)
    if problem:
        logger.error("%s", problem)
        return 1
    client = ScrapydClient(schedule.scrapyd_url, *(auth or (None, "")))
    scheduler = build_scheduler(schedule, SiteSubmitter(client, schedule.project))
    signal.signal(signal.SIGTERM, _stop)
    logger.info("Scheduling %d site(s) on %s, project %s", len(schedule.sites), schedule.scrapyd_url, schedule.project)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
    logger.info("Scheduler stopped")
    return 0


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM stops the scheduler like Ctrl-C (once: repeated signals are ignored)."""
    try:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except OSError:
        pass  # "ignored due to race condition": a second SIGTERM came first, and is ignored as wanted
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
