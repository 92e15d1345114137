"""Where the pipeline keeps image files: Scrapy's files stores, made atomic and quiet about missing files.

Every store answers Scrapy's ``FilesStoreProtocol`` (``persist_file``, ``stat_file``). A store
that also answers :class:`WritableInPlace` is written synchronously, so that the pipeline can
validate, write and record an image in one call on one thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from scrapy.pipelines.files import FSFilesStore, S3FilesStore
from scrapy.utils.asyncio import run_in_thread
from scrapy.utils.defer import deferred_from_coro, ensure_awaitable

from imgscraper.utils import new_file_mode

if TYPE_CHECKING:
    from collections.abc import Callable
    from io import BytesIO

    from scrapy.pipelines.media import MediaPipeline
    from twisted.internet.defer import Deferred

__all__ = ["AtomicFSFilesStore", "S3ImageStore", "WritableInPlace"]

logger = logging.getLogger(__name__)


@runtime_checkable
class WritableInPlace(Protocol):
    """A store whose files can be checked and written synchronously, from any thread."""

    def has_file(self, path: str) -> bool:
        """Whether ``path`` is stored."""

    def write_file(self, path: str, data: memoryview | bytes, mtime: float | None = None) -> None:
        """Store ``data`` at ``path``: complete or not at all; modified at ``mtime`` (a POSIX
        time) when given, where the store keeps one."""


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AtomicFSFilesStore(FSFilesStore):
    """A local store that writes each file under a temporary name, then renames it.

    A crawl killed mid-write never leaves a truncated image behind, only a
    temporary file named ``.tmp-<host>-<pid>-*``; opening the store removes
    those whose process is gone (same host) or that are over an hour old, so
    crawls sharing a store never delete each other's files in progress.
    ``write_file`` is synchronous (the pipeline picks the thread),
    ``persist_file`` writes in a worker thread. ``stat_file`` only stats
    (stock also reads the whole file to compute an MD5 nobody uses).
    ``write_file`` dates a file ``mtime`` (the server's ``Last-Modified``) before it
    takes its name, so it never shows another date.
    """

    #: Temporary files older than this (seconds) are junk whoever wrote them.
    STALE_AFTER = 3600.0

    def __init__(self, basedir: str | os.PathLike[str]):
        super().__init__(basedir)
        self.temp_prefix = f".tmp-{socket.gethostname()}-{os.getpid()}-"
        self.file_mode = new_file_mode()
        removed = self.remove_stale_temp_files()
        if removed:
            logger.info("Removed %d temporary files left in %s by an interrupted crawl", removed, self.basedir)

    def _mkdir(self, dirname: Path, domain: Any = None) -> None:
        # The processes of one crawl (its local workers) open the store at the same moment: Scrapy's
        # check-then-create lost that race in one of them (FileExistsError, the worker gone).
        dirname.mkdir(parents=True, exist_ok=True)

    def remove_stale_temp_files(self) -> int:
        """Delete temporary files that interrupted crawls left; returns how many."""
        removed, now, mine = 0, time.time(), f".tmp-{socket.gethostname()}-"
        # Anywhere in the store: IMGSCRAPER_FILE_PATH may put images in any folder.
        for tmp in Path(self.basedir).rglob(".tmp-*"):
            pid = tmp.name[len(mine):].partition("-")[0] if tmp.name.startswith(mine) else ""
            try:
                writer_gone = pid.isdigit() and not _process_alive(int(pid))
                if writer_gone or now - tmp.stat().st_mtime > self.STALE_AFTER:
                    tmp.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def persist_file(  # type: ignore[override]
        self, path: str, buf: BytesIO, info: MediaPipeline.SpiderInfo, meta: Any = None, headers: Any = None
    ) -> Deferred[None]:
        target = self._get_filesystem_path(path)
        return deferred_from_coro(run_in_thread(self._write_atomically, target, buf.getbuffer()))

    def has_file(self, path: str) -> bool:
        """Whether ``path`` is stored."""
        return self._get_filesystem_path(path).exists()

    def write_file(self, path: str, data: memoryview | bytes, mtime: float | None = None) -> None:
        """Store ``data`` at ``path`` atomically, modified at ``mtime`` when given."""
        self._write_atomically(self._get_filesystem_path(path), data, mtime)

    def _write_atomically(self, target: Path, data: memoryview | bytes, mtime: float | None = None) -> None:
        try:
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=self.temp_prefix, suffix=target.suffix)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=self.temp_prefix, suffix=target.suffix)
        try:
            os.fchmod(fd, self.file_mode)
            with open(fd, "wb", buffering=0) as tmp:
                view = memoryview(data)
                while view:
                    view = view[tmp.write(view) :]
            if mtime is not None:
                os.utime(tmp_name, (mtime, mtime))
            os.replace(tmp_name, target)
        except BaseException:
            # On a store turned read-only even this fails: the next crawl removes it.
            with contextlib.suppress(OSError):
                Path(tmp_name).unlink()
            raise

    def stat_file(self, path: str, info: MediaPipeline.SpiderInfo) -> dict[str, float]:  # type: ignore[override]
        try:
            return {"last_modified": self._get_filesystem_path(path).stat().st_mtime}
        except OSError:
            return {}


class S3ImageStore(S3FilesStore):
    """An S3 or S3-compatible store (``AWS_ENDPOINT_URL``): ``s3://bucket[/prefix]``.

    The prefix is a folder whether or not the URI ends with ``/``. Like the
    local store, ``stat_file`` answers ``{}`` for a missing file, and a
    failing S3 call raises ``OSError`` (the pipeline's "store error").
    """

    def __init__(self, uri: str):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        super().__init__(f"s3://{bucket}/{prefix}/" if prefix else f"s3://{bucket}/")

    def persist_file(self, *args: Any, **kwargs: Any) -> Deferred[Any]:  # type: ignore[override]
        return deferred_from_coro(self._call(partial(super().persist_file, *args, **kwargs)))

    def stat_file(self, path: str, info: MediaPipeline.SpiderInfo) -> Deferred[dict[str, Any]]:  # type: ignore[override]
        return deferred_from_coro(self._call(partial(super().stat_file, path, info), missing={}))

    @staticmethod
    async def _call(call: Callable[[], Any], missing: Any = None) -> Any:
        """The answer of ``call`` (one of the stock store's methods), with S3's errors as ``OSError``
        and, when ``missing`` is given, a missing object as ``missing``."""
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return await ensure_awaitable(call())
        except ClientError as exc:
            if missing is not None and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return missing
            raise OSError(f"S3: {exc}") from exc
        except BotoCoreError as exc:
            raise OSError(f"S3: {exc}") from exc
