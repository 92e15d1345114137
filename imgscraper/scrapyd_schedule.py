"""Periodic crawls through Scrapyd, which has no periodic scheduling of its own.

``python -m imgscraper.scrapyd_schedule schedule.toml`` (``make scheduler``) reads a
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
    depth = 1                                # default 0
    cron = "0 3 * * *"                       # minute hour day month weekday
    settings = { IMGSCRAPER_EXPIRES = "12h" }

    [[sites]]
    url = "https://example.org/"
    every = "6h"                             # instead of cron: 30s, 15m, 6h, 1d
    cookies = "members.txt"                  # -a cookies=FILE (docs/cookies.md), relative to this file
    pace = { concurrency = 1, delay = 2 }    # DOWNLOAD_SLOTS of the URLs' hosts (also jitter)

Scrapyd's credentials come from ``SCRAPYD_USERNAME`` and ``SCRAPYD_PASSWORD``.
Each job's id is ``<site name>-<UTC time>``: the scheduler recognises a site's
jobs by that prefix in ``listjobs.json``, so it also sees jobs it submitted
before a restart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import signal
import sys
import tomllib
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
from scrapyd_client.exceptions import ErrorResponse, MalformedResponse
from scrapyd_client.pyclient import ScrapydClient

from imgscraper.utils import parse_duration
from imgscraper.exceptions import ScheduleError

__all__ = ["Schedule", "ScheduleError", "Site", "SiteSubmitter", "crontab_trigger", "load_schedule", "main"]

logger = logging.getLogger("imgscraper.scrapyd_schedule")

DEFAULT_SCRAPYD_URL = "http://127.0.0.1:6800"
SPIDER = "images"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Site:
    """One site to crawl periodically."""

    name: str
    urls: list[str]
    depth: int
    trigger: BaseTrigger
    settings: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)

    def spider_args(self) -> list[tuple[str, str]]:
        """``schedule.json`` parameters besides project and spider."""
        params = [("url", ",".join(self.urls)), ("depth", str(self.depth))]
        params += sorted(self.args.items())
        params += [("setting", f"{name}={value}") for name, value in sorted(self.settings.items())]
        return params


@dataclass
class Schedule:
    scrapyd_url: str
    project: str
    sites: list[Site]


def _text_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ScheduleError(f"{where} must be a table of NAME = value")
    return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}


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
    except ValueError as exc:
        raise ScheduleError(f"{where}: {exc}") from None


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


def load_schedule(path: str | Path, env: dict[str, str] | None = None) -> Schedule:
    """Read and check a schedule file (see the module docstring).

    Raises :class:`ScheduleError` naming the first problem.
    """
    env = os.environ if env is None else env
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
    sites: list[Site] = []
    for n, entry in enumerate(entries, 1):
        where = f"site {n}"
        urls = entry.get("url")
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not all(isinstance(u, str) and urlsplit(u).scheme in ("http", "https") for u in urls):
            raise ScheduleError(f'{where}: url must be an http(s) URL or a list of them, e.g. url = "https://example.com/"')
        name = str(entry.get("name") or urlsplit(urls[0]).hostname or "")
        where = f"site {name!r}"
        if not _NAME.fullmatch(name):
            raise ScheduleError(f"{where}: name may hold only letters, digits, '.', '_' and '-'")
        if name in {s.name for s in sites}:
            raise ScheduleError(f"{where}: two sites have this name: give each a name = ...")
        depth = entry.get("depth", 0)
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ScheduleError(f"{where}: depth must be a non-negative integer")
        args = _text_map(entry.get("args", {}), f"{where}: args")
        if "cookies" in entry:
            if not isinstance(entry["cookies"], str) or not entry["cookies"]:
                raise ScheduleError(f'{where}: cookies must be the path of a cookies file, e.g. cookies = "members.txt"')
            args["cookies"] = str(Path(path).parent.absolute() / Path(entry["cookies"]).expanduser())
        settings = {**common, **_text_map(entry.get("settings", {}), f"{where}: settings")}
        if "pace" in entry:
            settings["DOWNLOAD_SLOTS"] = _download_slots(entry["pace"], urls, settings.get("DOWNLOAD_SLOTS"), where)
        sites.append(Site(
            name=name,
            urls=list(urls),
            depth=depth,
            trigger=_trigger(entry, where, tz),
            settings=settings,
            args=args,
        ))
    scrapyd_url = str(data.get("scrapyd_url") or env.get("SCRAPYD_URL") or DEFAULT_SCRAPYD_URL).rstrip("/")
    return Schedule(scrapyd_url=scrapyd_url, project=str(data.get("project", "imgscraper")), sites=sites)


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
    parser = argparse.ArgumentParser(prog="python -m imgscraper.scrapyd_schedule", description=__doc__.split("\n\n")[0])
    parser.add_argument("schedule", help="the schedule file (TOML)")
    parser.add_argument("--check", action="store_true", help="check the file, print the next runs and exit")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        schedule = load_schedule(opts.schedule)
    except ScheduleError as exc:
        logger.error("Bad schedule: %s", exc)
        return 2
    client = ScrapydClient(schedule.scrapyd_url, os.environ.get("SCRAPYD_USERNAME"), os.environ.get("SCRAPYD_PASSWORD", ""))
    scheduler = build_scheduler(schedule, SiteSubmitter(client, schedule.project))
    if opts.check:
        now = datetime.now(timezone.utc)
        for site in schedule.sites:
            print(f"{site.name}: next run {site.trigger.get_next_fire_time(None, now)}")
        return 0
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
