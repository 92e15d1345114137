"""How Scrapyd's recent jobs ended: ``python -m imgscraper.scrapyd.jobs`` (``make jobs``).

Scrapyd's ``listjobs.json`` says when a finished job ran, not how it ended: a
job that exited 1 looks like a good one. Its log does: a crawl ends it with
Scrapy's stats, from which :func:`imgscraper.commands.crawl.crawl_failed`
decides the exit status as it did in the job, and a crawl refused for a bad
argument or setting logs its ``ERROR`` lines and no stats. So each finished
job's log is read (its last :data:`LOG_TAIL` bytes, through Scrapyd's
``/logs/``), and the jobs are listed one line each, failed ones first:

    exit 1   shop-20261207T030000Z-1f2e  2026-12-07 03:00:04  Bad setting: unknown setting DOWNLOAD_DELAI: did you mean DOWNLOAD_DELAY?
    running  blog-20261207T080000Z-77c1  started 2026-12-07 08:00:00
    exit 0   blog-20261207T020000Z-9a0b  2026-12-07 02:00:31  finished: pages 12, stored 40, up to date 3, skipped 0, failed 1

Credentials and ``SCRAPYD_URL`` as for :mod:`imgscraper.scrapyd.service`.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from typing import Any

import requests

from imgscraper.commands.crawl import crawl_failed
from imgscraper.extensions.summary import CrawlCounts
from imgscraper.scrapyd.service import scrapyd_auth, scrapyd_problem, scrapyd_url

__all__ = ["JobOutcome", "LOG_TAIL", "job_outcomes", "log_outcome", "log_stats", "main"]

#: How much of the end of a job's log is read: the stats dump and what follows fit in it.
LOG_TAIL = 256 * 1024
_STATS_DUMP = "Dumping Scrapy stats:"
# One entry of the dump (pprint of a dict): 'name': 12 or 'name': 'text'.
_STAT = re.compile(r"^[{ ]'([^']+)': (\d+|'[^'\n]*')", re.MULTILINE)
_ERROR = re.compile(r"\b(?:ERROR|CRITICAL): (.*)")


def log_stats(log: str) -> dict[str, Any] | None:
    """The numbers and texts of the last stats dump in ``log`` (Scrapy's ``Dumping Scrapy stats:``), or None."""
    start = log.rfind(_STATS_DUMP)
    if start < 0:
        return None
    dump = log[start + len(_STATS_DUMP):]
    dump = dump[: dump.find("}\n") + 1 or None]
    return {name: int(value) if value.isdigit() else value.strip("'") for name, value in _STAT.findall(dump)}


def summary_line(stats: dict[str, Any]) -> str:
    """What a finished crawl did, in one line, from its stats (the summary table's labels)."""
    counts = CrawlCounts.from_stats(stats)
    line = f"{stats.get('finish_reason', '?')}: pages {counts.pages}"
    if counts.pages_failed_by_reason:
        reasons = ", ".join(sorted(counts.pages_failed_by_reason))
        line += f", pages failed {sum(counts.pages_failed_by_reason.values())} ({reasons})"
    line += (f", stored {counts.downloaded}, up to date {counts.uptodate}, skipped {counts.skipped},"
             f" failed {counts.failed}")
    if stats.get("imgscraper/start_pages_failed"):
        line += f", start pages not fetched {stats['imgscraper/start_pages_failed']}"
    return line


def log_outcome(log: str) -> tuple[int | None, str]:
    """The exit status a job's ``scrapy crawl`` had, and its summary line, from its log; None: unknown
    (no stats, no error: the job was killed, or its log is missing)."""
    stats = log_stats(log)
    if stats is not None:
        return int(crawl_failed(stats)), summary_line(stats)
    errors = _ERROR.findall(log)
    if errors:  # a bad argument or setting: refused before crawling
        return 1, errors[0] if len(errors) == 1 else f"{errors[0]} (and {len(errors) - 1} more)"
    return None, "no stats in the log: the job was killed, or failed before logging (see Scrapyd's output)"


@dataclass
class JobOutcome:
    """One job as ``make jobs`` lists it."""

    id: str
    state: str  # pending, running or finished
    time: str  # when it ended (finished) or started (running)
    exit_status: int | None = None
    summary: str = ""

    @property
    def failed(self) -> bool:
        return self.state == "finished" and self.exit_status != 0

    def line(self, id_width: int) -> str:
        if self.state != "finished":
            status, when = self.state, f"started {self.time}" if self.time else ""
        else:
            status = "killed?" if self.exit_status is None else f"exit {self.exit_status}"
            when = self.time
        return f"{status:<8} {self.id:<{id_width}}  {when:<19}  {self.summary}".rstrip()


def _read_log(session: requests.Session, url: str, path: str | None) -> str:
    """The last :data:`LOG_TAIL` bytes of a job's log; empty when it has none.

    Its size is asked first: Twisted's static files fail (HTTP 500) on a suffix range
    (``bytes=-N``) longer than the file."""
    if not path:
        return ""
    head = session.head(f"{url}{path}", timeout=30)
    if not head.ok:
        return ""
    size = int(head.headers.get("Content-Length") or 0)
    headers = {"Range": f"bytes={size - LOG_TAIL}-"} if size > LOG_TAIL else {}
    response = session.get(f"{url}{path}", headers=headers, timeout=30)
    return response.content.decode("utf-8", errors="replace") if response.ok else ""


def job_outcomes(url: str, auth: tuple[str, str] | None, project: str, last: int = 20) -> list[JobOutcome]:
    """The ``last`` finished jobs of ``project`` with their outcome, and the running and pending ones:
    the failed ones first, then the running, the pending and the others, newest first within each."""
    with requests.Session() as session:
        session.auth = auth
        response = session.get(f"{url}/listjobs.json", params={"project": project}, timeout=30)
        response.raise_for_status()
        jobs = response.json()
        if jobs.get("status") != "ok":
            raise ValueError(jobs.get("message") or f"listjobs.json answered {jobs}")
        finished = sorted(jobs["finished"], key=lambda job: job["end_time"], reverse=True)[:last]
        outcomes = []
        for job in finished:
            exit_status, summary = log_outcome(_read_log(session, url, job.get("log_url")))
            outcomes.append(JobOutcome(job["id"], "finished", job["end_time"][:19], exit_status, summary))
    running = [JobOutcome(job["id"], "running", job.get("start_time", "")[:19]) for job in jobs["running"]]
    pending = [JobOutcome(job["id"], "pending", "") for job in jobs["pending"]]
    failed = [outcome for outcome in outcomes if outcome.failed]
    return failed + running + pending + [outcome for outcome in outcomes if not outcome.failed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgscraper.scrapyd.jobs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="imgscraper", help="Scrapyd project (default: imgscraper)")
    parser.add_argument("--last", type=int, default=20, help="how many finished jobs (default: 20)")
    opts = parser.parse_args(argv)
    url, auth = scrapyd_url(), scrapyd_auth()
    problem = scrapyd_problem(url, auth)
    if problem is None:
        try:
            outcomes = job_outcomes(url, auth, opts.project, opts.last)
        except (requests.RequestException, ValueError) as exc:
            problem = f"Could not list the jobs of {opts.project} at {url}: {exc}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if not outcomes:
        print(f"No jobs of {opts.project} at {url}: `make schedule URL=...` submits one")
        return 0
    width = max(len(outcome.id) for outcome in outcomes)
    for outcome in outcomes:
        print(outcome.line(width))
    return 0


if __name__ == "__main__":
    sys.exit(main())
