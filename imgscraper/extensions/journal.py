"""The crawl's page journal: which pages a ``JOBDIR`` crawl has to do, and which are done.

Scrapy's ``JOBDIR`` keeps the scheduler's queue and the seen-requests filter,
but only a graceful stop writes them out completely: after ``kill -9`` (or a
crash, or a power cut) pages are lost, and pages whose images were still
being stored are remembered as seen, so their images would never be fetched.

The journal (``<JOBDIR>/imgscraper/pages.sqlite3``, committed as it goes)
records every page the crawl decides to fetch, with its depth, and marks it
done only once the page is parsed and every image it yielded has left the
item pipelines (stored, up to date, skipped or failed) and its style sheets
are read. A resumed crawl fetches again exactly the pages that are not done;
images already stored cost nothing (the store's record answers for them).

:class:`PageTracker` counts, per page, the work still open (the page's own
parse, its items, its style sheet requests) and marks the page done when
that reaches zero.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections import Counter
from pathlib import Path

__all__ = ["PageJournal", "PageTracker", "discard_request_queue"]


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


class PageJournal:
    """Pages of one job: URL, depth, done. Safe across threads; durable once a call returns."""

    FILENAME = "imgscraper/pages.sqlite3"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pages (url TEXT PRIMARY KEY, depth INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0)"
        )

    @classmethod
    def in_job_dir(cls, job_dir: str | Path) -> PageJournal:
        return cls(Path(job_dir, cls.FILENAME))

    def add(self, url: str, depth: int) -> bool:
        """Record ``url`` as a page to fetch; False if the journal already has it."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO pages (url, depth) VALUES (?, ?)", (url, depth))
        return cursor.rowcount == 1

    def done(self, url: str) -> None:
        with self._lock:
            self._db.execute("UPDATE pages SET done = 1 WHERE url = ?", (url,))

    def is_done(self, url: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT done FROM pages WHERE url = ?", (url,)).fetchone()
        return bool(row and row[0])

    def pending(self) -> list[tuple[str, int]]:
        """``(url, depth)`` of every page not done, shallowest first."""
        with self._lock:
            return self._db.execute("SELECT url, depth FROM pages WHERE done = 0 ORDER BY depth, rowid").fetchall()

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
