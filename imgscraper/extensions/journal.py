"""The crawl's page journal: which pages a ``JOBDIR`` crawl has to do, and which are done.

Scrapy's ``JOBDIR`` keeps the scheduler's queue and the seen-requests filter,
but only a graceful stop writes them out completely: after ``kill -9`` (or a
crash, or a power cut) pages are lost, and pages whose images were still
being stored are remembered as seen, so their images would never be fetched.

The journal (``<JOBDIR>/imgscraper/pages.sqlite3``, committed as it goes)
records every page the crawl decides to fetch, with what its request is made
from (its depth, the sites its links may lead to, the images a sitemap listed
with it: :class:`JournalPage`), and marks it
done only once the page is parsed and every image it yielded has left the
item pipelines (stored, up to date, skipped or failed) and its style sheets
are read. A resumed crawl fetches again exactly the pages that are not done;
images already stored cost nothing (the store's record answers for them).

:class:`PageTracker` counts, per page, the work still open (the page's own
parse, its items, its style sheet requests) and marks the page done when
that reaches zero.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

__all__ = ["JournalPage", "PageJournal", "PageTracker", "discard_request_queue"]


def discard_request_queue(job_dir: str | Path) -> bool:
    """Delete Scrapy's request queue from ``job_dir``; True if there was one.

    A resumed crawl gets its pages from the journal. Scrapy's queue only
    holds the same pages after a graceful stop, and after an unclean one it
    is unreadable: queuelib writes a queue file's header when the file is
    closed, so a file left open is empty and breaks the scheduler.
    """
    queue = Path(job_dir, "requests.queue")
    if not queue.exists():
        return False
    shutil.rmtree(queue, ignore_errors=True)
    return True


class JournalPage(NamedTuple):
    """A page of the journal: what its request is made from again."""

    url: str
    depth: int
    #: Sites besides the crawled ones whose pages it leads to (a start page's redirect).
    sites: tuple[str, ...] = ()
    #: For a page a sitemap lists, the images listed with it (possibly none); None for another page.
    sitemap_images: tuple[str, ...] | None = None


class PageJournal:
    """Pages of one job (:class:`JournalPage`), and which are done. Safe across threads; durable once a call
    returns."""

    FILENAME = "imgscraper/pages.sqlite3"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pages (url TEXT PRIMARY KEY, depth INTEGER NOT NULL,"
            " done INTEGER NOT NULL DEFAULT 0, sites TEXT NOT NULL DEFAULT '[]', sitemap_images TEXT)"
        )
        # A journal written before pages kept their sites and sitemap images (JSON lists).
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pages)")}
        if "sites" not in columns:
            self._db.execute("ALTER TABLE pages ADD COLUMN sites TEXT NOT NULL DEFAULT '[]'")
            self._db.execute("ALTER TABLE pages ADD COLUMN sitemap_images TEXT")

    @classmethod
    def in_job_dir(cls, job_dir: str | Path) -> PageJournal:
        return cls(Path(job_dir, cls.FILENAME))

    def add(self, url: str, depth: int, sites: Iterable[str] = (), sitemap_images: Iterable[str] | None = None) -> bool:
        """Record the page ``url`` to fetch, with the other fields of its :class:`JournalPage`; False if the
        journal already has it."""
        listed = None if sitemap_images is None else json.dumps(list(sitemap_images))
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO pages (url, depth, sites, sitemap_images) VALUES (?, ?, ?, ?)",
                (url, depth, json.dumps(list(sites)), listed),
            )
        return cursor.rowcount == 1

    def done(self, url: str) -> None:
        with self._lock:
            self._db.execute("UPDATE pages SET done = 1 WHERE url = ?", (url,))

    def is_done(self, url: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT done FROM pages WHERE url = ?", (url,)).fetchone()
        return bool(row and row[0])

    def pending(self) -> list[JournalPage]:
        """Every page not done, shallowest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT url, depth, sites, sitemap_images FROM pages WHERE done = 0 ORDER BY depth, rowid"
            ).fetchall()
        return [
            JournalPage(url, depth, tuple(json.loads(sites)), None if listed is None else tuple(json.loads(listed)))
            for url, depth, sites, listed in rows
        ]

    def urls(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT url FROM pages")]

    def counts(self) -> tuple[int, int]:
        """``(pages, done)``."""
        with self._lock:
            total, done = self._db.execute("SELECT count(*), coalesce(sum(done), 0) FROM pages").fetchone()
        return total, done

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PageTracker:
    """Open work per page; calls ``journal.done(page)`` when a page's count drops to zero."""

    def __init__(self, journal: PageJournal):
        self.journal = journal
        self.open: Counter[str] = Counter()

    def acquire(self, page: str) -> None:
        self.open[page] += 1

    def release(self, page: str) -> None:
        self.open[page] -= 1
        if self.open[page] <= 0:
            del self.open[page]
            self.journal.done(page)
