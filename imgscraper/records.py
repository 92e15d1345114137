"""The store's record of what it holds: image URL -> stored file.

The record lives with the store (``<IMAGES_STORE>/.imgscraper/records.sqlite3``)
so every crawl writing there, scheduled or concurrent, shares it. It lets a
re-crawl answer "already stored?" before downloading, and remembers the
validators (``ETag``, ``Last-Modified``) for conditional re-fetches.

A damaged record is moved aside and started afresh: since stored file names
derive from the image bytes, the only cost is one more download per URL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path

__all__ = ["ImageRecord", "SQLiteRecord"]

logger = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    """What the store knows about one image URL."""

    url: str
    path: str
    checksum: str
    format: str
    width: int | None
    height: int | None
    size: int
    page: str = ""
    etag: str = ""
    last_modified: str = ""
    stored_at: float = 0.0


_COLUMNS = [f.name for f in fields(ImageRecord)]
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS images ("
    "url TEXT PRIMARY KEY, path TEXT, checksum TEXT, format TEXT, width INTEGER,"
    " height INTEGER, size INTEGER, page TEXT, etag TEXT, last_modified TEXT,"
    " stored_at REAL)"
)


class SQLiteRecord:
    """An :class:`ImageRecord` table in one SQLite file, safe across threads and processes."""

    FILENAME = ".imgscraper/records.sqlite3"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.rebuilt = False
        self._db = self._open()

    @classmethod
    def in_store(cls, store_dir: str | Path) -> SQLiteRecord:
        return cls(Path(store_dir, cls.FILENAME))

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            damaged = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            logger.warning("Store record %s is damaged (%s); moved to %s and rebuilt", self.path, exc, damaged)
            self.path.replace(damaged)
            self.rebuilt = True
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM images LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def get(self, url: str) -> ImageRecord | None:
        """The record of ``url``, or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM images WHERE url = ?", (url,)).fetchone()
        return ImageRecord(*row) if row else None

    def put(self, record: ImageRecord) -> None:
        """Insert or replace the record of ``record.url``."""
        placeholders = ", ".join("?" * len(_COLUMNS))
        with self._lock:
            self._db.execute(f"INSERT OR REPLACE INTO images VALUES ({placeholders})", astuple(record))

    def touch(self, url: str, stored_at: float) -> None:
        """Mark ``url`` as checked at ``stored_at`` (a 304 revalidation)."""
        with self._lock:
            self._db.execute("UPDATE images SET stored_at = ? WHERE url = ?", (stored_at, url))

    def all(self) -> list[ImageRecord]:
        """Every record, in no particular order."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM images").fetchall()
        return [ImageRecord(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
