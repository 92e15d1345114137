"""The store's record of what it holds: image URL -> stored file.

The record lives with the store (``<IMAGES_STORE>/.imgscraper/records.sqlite3``)
so every crawl writing there, scheduled or concurrent, shares it. It lets a
re-crawl answer "already stored?" before downloading, and remembers the
validators (``ETag``, ``Last-Modified``) for conditional re-fetches.

The pipeline only needs the small :class:`StoreRecord` interface and gets its
record from :func:`open_store_record`, so another kind of store (S3, ...) can
bring another kind of record.

Rebuilding: each job that closes the record leaves a consistent snapshot of it
next to it (``records.sqlite3.bak``). A record that is damaged is moved aside
(``records.sqlite3.damaged-<time>``) and, like a missing one, rebuilt from that
snapshot, so the images stored up to the last finished job are not downloaded
again. Without a snapshot the record starts empty: since stored file names
derive from the image bytes, the images already in the store are then
downloaded once more but not stored twice, and the record fills up again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

from scrapy.pipelines.files import FSFilesStore, S3FilesStore

from imgscraper.items import CONTEXT_FIELDS, ImageContext

__all__ = ["ImageRecord", "S3Record", "SQLiteRecord", "StoreRecord", "open_store_record"]

logger = logging.getLogger(__name__)


@dataclass
class ImageRecord(ImageContext):
    """What the store knows about one image URL, with how ``page`` showed it (:class:`ImageContext`)."""

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
    #: Why the bytes at ``url`` were not stored (``too-small``, ``not-an-image``, ...);
    #: empty for a stored image. ``path`` is empty when this is set.
    rejected: str = ""
    #: The 64-bit perceptual hash of the image, 16 hex digits (``IMGSCRAPER_NEAR_DUPLICATES``); empty if not computed.
    phash: str = ""


class StoreRecord(Protocol):
    """What the pipeline needs from a store's record. Methods may block
    (the pipeline calls them from worker threads, except :meth:`SQLiteRecord.get`,
    quick enough for the reactor thread) and must be safe to call from
    several threads and from several processes sharing the store."""

    def get(self, url: str) -> ImageRecord | None:
        """The record of ``url``, or None."""

    def put(self, record: ImageRecord) -> None:
        """Insert or replace the record of ``record.url``."""

    def touch(self, url: str, stored_at: float) -> None:
        """Mark ``url`` as checked at ``stored_at`` (a 304 revalidation)."""

    def path_of(self, checksum: str) -> str | None:
        """Where a file of the bytes whose SHA-256 is ``checksum`` is stored, if the record knows."""

    def close(self) -> None:
        """Flush and release; called once when the crawl ends."""


def open_store_record(store: Any) -> StoreRecord | None:
    """The record of the files store ``store`` (a ``FilesPipeline`` store),
    or None when this kind of store has none (every image is then fetched)."""
    if isinstance(store, FSFilesStore):
        return SQLiteRecord.in_store(store.basedir)
    if isinstance(store, S3FilesStore):
        return S3Record(store.s3_client, store.bucket, store.prefix)
    return None


_COLUMNS = [f.name for f in fields(ImageRecord)]
# dataclasses.astuple deep-copies every field: 1% of a crawl's CPU, for flat records.
_ROW = attrgetter(*_COLUMNS)
_INSERT = f"INSERT OR REPLACE INTO images ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS images ("
    "url TEXT PRIMARY KEY, path TEXT, checksum TEXT, format TEXT, width INTEGER,"
    " height INTEGER, size INTEGER, page TEXT, etag TEXT, last_modified TEXT,"
    " stored_at REAL, rejected TEXT NOT NULL DEFAULT '', alt TEXT NOT NULL DEFAULT '',"
    " title TEXT NOT NULL DEFAULT '', caption TEXT NOT NULL DEFAULT '', page_title TEXT NOT NULL DEFAULT '',"
    " srcset_descriptor TEXT NOT NULL DEFAULT '', phash TEXT NOT NULL DEFAULT '')"
)
# Columns added since the first release, for records made before them.
_ADDED_COLUMNS = {
    name: "TEXT NOT NULL DEFAULT ''"
    for name in ("rejected", *CONTEXT_FIELDS, "phash")
}


def _is_busy(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` means another connection holds a lock (not that the file is damaged)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _enable_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Put ``db`` in WAL mode, waiting up to ``timeout`` seconds for other openers.

    Switching the journal mode fails at once with "database is locked" while
    another connection opens the same new file: SQLite's busy timeout does
    not apply to it.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring a record written by an earlier version up to the current columns."""
    present = {row[1] for row in db.execute("PRAGMA table_info(images)")}
    for name, declaration in _ADDED_COLUMNS.items():
        if name not in present:
            try:
                db.execute(f"ALTER TABLE images ADD COLUMN {name} {declaration}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # a concurrent crawl added it first
                    raise


class SQLiteRecord:
    """An :class:`ImageRecord` table in one SQLite file, safe across threads and processes.

    :attr:`rebuilt` is ``"backup"`` or ``"empty"`` when the file was damaged
    or missing and has been rebuilt from the snapshot or from nothing, else ``""``.
    """

    FILENAME = ".imgscraper/records.sqlite3"
    BACKUP_SUFFIX = ".bak"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + self.BACKUP_SUFFIX)
        self._lock = threading.Lock()
        self.rebuilt = ""
        self._db = self._open()
        # Lookups get their own connection: in WAL mode a reader never waits for
        # a writer (nor for its checkpoint), so get() is quick enough for the reactor thread.
        self._read_lock = threading.Lock()
        self._reader = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._checksums_indexed = False

    @classmethod
    def in_store(cls, store_dir: str | Path) -> SQLiteRecord:
        return cls(Path(store_dir, cls.FILENAME))

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = "missing" if not self.path.exists() else ""
        if not problem:
            try:
                return self._connect(self.path)
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc):
                    raise
                problem = f"damaged ({exc})"
                damaged = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
                self.path.replace(damaged)
                problem += f"; moved to {damaged.name}"
        # A write-ahead log left by a damaged or deleted file must not be replayed into the
        # new one (unless a concurrent crawl created the new one meanwhile).
        if not self.path.exists():
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        if self._restore_backup():
            self.rebuilt = "backup"
            logger.warning(
                "Store record %s is %s; rebuilt from the snapshot of the last finished crawl", self.path, problem
            )
        # A missing record in a store that holds images was lost (a new store has no images yet).
        elif problem != "missing" or any(self.path.parent.parent.glob("full/*")):
            self.rebuilt = "empty"
            logger.warning(
                "Store record %s is %s and has no snapshot; started afresh: stored images are downloaded "
                "once more (not stored twice) to rebuild it", self.path, problem,
            )
        return self._connect(self.path)

    def _restore_backup(self) -> bool:
        if not self.backup_path.is_file():
            return False
        try:
            with closing(sqlite3.connect(f"file:{self.backup_path}?mode=ro", uri=True)) as snapshot:
                snapshot.execute("SELECT count(*) FROM images").fetchone()
                self._write_copy(snapshot, self.path)
        except sqlite3.DatabaseError as exc:
            logger.warning("Store record snapshot %s is unusable (%s)", self.backup_path, exc)
            return False
        return True

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            _enable_wal(db, timeout=30)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            _add_missing_columns(db)
            db.execute("SELECT count(*) FROM images LIMIT 1").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    @staticmethod
    def _write_copy(source: sqlite3.Connection, target: Path) -> None:
        """Copy the database ``source`` to ``target`` atomically (temporary file, then rename)."""
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".sqlite3")
        os.close(fd)
        try:
            copy = sqlite3.connect(tmp_name)
            try:
                source.backup(copy)
            finally:
                copy.close()
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def get(self, url: str) -> ImageRecord | None:
        """The record of ``url``, or None. Never waits for :meth:`put` or :meth:`touch`."""
        with self._read_lock:
            row = self._reader.execute(f"SELECT {', '.join(_COLUMNS)} FROM images WHERE url = ?", (url,)).fetchone()
        return ImageRecord(**dict(zip(_COLUMNS, row))) if row else None

    def put(self, record: ImageRecord) -> None:
        """Insert or replace the record of ``record.url``."""
        with self._lock:
            self._db.execute(_INSERT, _ROW(record))

    def touch(self, url: str, stored_at: float) -> None:
        """Mark ``url`` as checked at ``stored_at`` (a 304 revalidation)."""
        with self._lock:
            self._db.execute("UPDATE images SET stored_at = ? WHERE url = ?", (stored_at, url))

    def path_of(self, checksum: str) -> str | None:
        """Where a file of the bytes whose SHA-256 is ``checksum`` is stored, if any. The first
        call indexes the checksums (once per record: crawls that never ask do without)."""
        if not self._checksums_indexed:
            with self._lock:
                self._db.execute("CREATE INDEX IF NOT EXISTS images_checksum ON images (checksum)")
            self._checksums_indexed = True
        with self._read_lock:
            row = self._reader.execute(
                "SELECT path FROM images WHERE checksum = ? AND path != '' LIMIT 1", (checksum,)
            ).fetchone()
        return row[0] if row else None

    def all(self) -> list[ImageRecord]:
        """Every record, in no particular order."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM images").fetchall()
        return [ImageRecord(**dict(zip(_COLUMNS, row))) for row in rows]

    def snapshot(self) -> None:
        """Write the snapshot a damaged or missing record is rebuilt from."""
        with self._lock:
            self._write_copy(self._db, self.backup_path)

    def close(self) -> None:
        """Snapshot the record, then close it. A failed snapshot is logged, never fatal."""
        try:
            self.snapshot()
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Could not snapshot the store record to %s: %s", self.backup_path, exc)
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()


class S3Record:
    """The record of an S3 store, kept in the bucket next to the images.

    One small JSON object per URL, ``<prefix>.imgscraper/records/<sha256 of
    the URL>.json``, so any number of crawls on any number of machines share
    it without locks (the last write of a URL wins). Once :meth:`path_of` has
    been asked, each stored file's path is also kept under the SHA-256 of its
    bytes, ``<prefix>.imgscraper/checksums/<sha256>``. The methods block: call
    them from a thread. A failing S3 call raises ``OSError``; an unreadable
    entry counts as absent.
    """

    FOLDER = ".imgscraper/records/"
    CHECKSUMS = ".imgscraper/checksums/"

    def __init__(self, client: Any, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.folder = f"{prefix}{self.FOLDER}"
        self.checksums = f"{prefix}{self.CHECKSUMS}"
        self._index_checksums = False

    def _key(self, url: str) -> str:
        return f"{self.folder}{hashlib.sha256(url.encode('utf-8')).hexdigest()}.json"

    def _object(self, key: str) -> bytes | None:
        """The body of object ``key``, None when there is none."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise OSError(f"S3 record {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise OSError(f"S3 record {key}: {exc}") from exc

    def _read(self, key: str) -> ImageRecord | None:
        body = self._object(key)
        if body is None:
            return None
        try:
            return ImageRecord(**json.loads(body))
        except (ValueError, TypeError) as exc:
            logger.warning("Ignoring damaged store record entry %s: %s", key, exc)
            return None

    def get(self, url: str) -> ImageRecord | None:
        """The record of ``url``, or None."""
        record = self._read(self._key(url))
        return record if record is not None and record.url == url else None

    def put(self, record: ImageRecord) -> None:
        """Insert or replace the record of ``record.url``."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(record.url),
                Body=json.dumps(asdict(record)).encode("utf-8"),
                ContentType="application/json",
            )
            if self._index_checksums and record.path and record.checksum:
                self.client.put_object(Bucket=self.bucket, Key=f"{self.checksums}{record.checksum}",
                                       Body=record.path.encode("utf-8"), ContentType="text/plain; charset=utf-8")
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"S3 record {record.url}: {exc}") from exc

    def path_of(self, checksum: str) -> str | None:
        """Where a file of the bytes whose SHA-256 is ``checksum`` is stored, as :meth:`put` noted
        it since the first call (S3 has no index: files stored before are not found)."""
        self._index_checksums = True
        body = self._object(f"{self.checksums}{checksum}")
        return body.decode("utf-8") if body else None

    def touch(self, url: str, stored_at: float) -> None:
        """Mark ``url`` as checked at ``stored_at`` (a 304 revalidation)."""
        record = self.get(url)
        if record is not None:
            record.stored_at = stored_at
            self.put(record)

    def all(self) -> list[ImageRecord]:
        """Every record, in no particular order."""
        records = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.folder):
            for entry in page.get("Contents", []):
                record = self._read(entry["Key"])
                if record is not None:
                    records.append(record)
        return records

    def close(self) -> None:
        """Nothing to release: the S3 client belongs to the store."""
