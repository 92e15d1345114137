"""Image downloads spread over more than one process (``IMGSCRAPER_PROCESSES``).

On a fast network a crawl is CPU-bound: Scrapy's own work per request keeps
one core busy. With ``IMGSCRAPER_PROCESSES = N`` the crawl starts ``N - 1``
download processes next to it. The main process crawls the pages and runs
every item through its pipelines as usual; :class:`ImageStorePipeline
<imgscraper.pipelines.ImageStorePipeline>` hands images to a download process
that has room and does the others itself. A download process is a Scrapy
crawler with the crawl's settings and the same pipeline, so image bytes still
go through Scrapy's downloader, its middlewares, the store and its record.

:class:`DownloadProcesses` (the add-on) divides ``CONCURRENT_REQUESTS`` and
``CONCURRENT_REQUESTS_PER_DOMAIN``/``_PER_IP`` by ``N`` so that all the
processes together stay within them, and keeps one process for crawls that
space their requests (``DOWNLOAD_DELAY``, AutoThrottle) or share a crawl
through Redis.

The processes talk in JSON lines over a socket pair. The main process sends
``{"n": 1, "url": ..., "page": ...}``; a download process answers
``{"ready": true}`` once, ``{"n": 1, "item": {...}}`` per image, and
``{"stats": {...}}`` when it closes. A download process ignores Ctrl-C: it
ends when the main process closes its socket, or dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itemadapter import ItemAdapter
from scrapy import Spider, signals
from scrapy.settings import SETTINGS_PRIORITIES, Settings
from scrapy.utils.misc import load_object

from imgscraper.items import ImageItem
from imgscraper.runtime import tune_garbage_collector

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from scrapy.crawler import Crawler

__all__ = ["DownloadProcess", "DownloadProcessGone", "DownloadProcessSpider", "DownloadProcesses", "start_processes"]

logger = logging.getLogger(__name__)

#: Limits divided between the processes.
SPLIT_LIMITS = ("CONCURRENT_REQUESTS", "CONCURRENT_REQUESTS_PER_DOMAIN", "CONCURRENT_REQUESTS_PER_IP")
#: Stats of a download process that the main process does not add to its own:
#: it counts images itself, and times, memory and logs are per process.
_OWN_STATS = ("item_", "items_", "responses_per_minute", "elapsed_time", "memusage/", "log_count/",
              "imgscraper/images", "start_time", "finish_", "scheduler/")


class DownloadProcesses:
    """Add-on: with ``IMGSCRAPER_PROCESSES > 1``, divide the concurrency limits
    between the processes, or fall back to one process (one INFO line) when
    spreading would break the crawl's politeness settings."""

    def update_settings(self, settings: Settings) -> None:
        processes = settings.getint("IMGSCRAPER_PROCESSES")
        if processes <= 1:
            return
        why_not = self.why_one_process(settings, processes)
        if why_not:
            logger.info("IMGSCRAPER_PROCESSES=%d: using one process (%s)", processes, why_not)
            self._override(settings, "IMGSCRAPER_PROCESSES", 1)
            return
        for name in SPLIT_LIMITS:
            value = settings.getint(name)
            if value > 0:
                self._override(settings, name, max(1, value // processes))

    @staticmethod
    def _override(settings: Settings, name: str, value: int) -> None:
        # At the priority the value was given with: -s values rank above add-ons.
        settings.set(name, value, priority=max(SETTINGS_PRIORITIES["addon"], settings.getpriority(name) or 0))

    @staticmethod
    def why_one_process(settings: Settings, processes: int) -> str:
        """Why the crawl must stay in one process, or ``""``."""
        if not _stores_images(settings):
            return "no images are downloaded (download=no, or no ImageStorePipeline)"
        if settings.getfloat("DOWNLOAD_DELAY") > 0:
            return "DOWNLOAD_DELAY spaces the requests of one process"
        if settings.getbool("AUTOTHROTTLE_ENABLED"):
            return "AutoThrottle adapts the pace of one process"
        if settings.get("IMGSCRAPER_REDIS_URL"):
            return "a shared crawl spreads over its workers"
        if settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN") < processes:
            return f"CONCURRENT_REQUESTS_PER_DOMAIN is under {processes}"
        return ""


def _stores_images(settings: Settings) -> bool:
    """Whether ``ITEM_PIPELINES`` holds :class:`~imgscraper.pipelines.ImageStorePipeline` or a subclass."""
    from imgscraper.pipelines import ImageStorePipeline  # noqa: PLC0415 (it imports this module)

    for path, order in settings.getdict("ITEM_PIPELINES").items():
        try:
            pipeline = load_object(path)
        except (ImportError, NameError, ValueError):
            continue  # Scrapy reports it when it builds the pipelines
        if order is not None and isinstance(pipeline, type) and issubclass(pipeline, ImageStorePipeline):
            return True
    return False


class DownloadProcessGone(Exception):
    """The download process ended before answering; the image is to be downloaded here."""


class DownloadProcess:
    """One download process, seen from the main process."""

    def __init__(self, proc: subprocess.Popen, sock: socket.socket, capacity: int):
        self.proc = proc
        self.capacity = capacity
        self.ready = False
        self.alive = True
        self.stats: dict[str, Any] = {}
        #: Set by the main process when the download process ended before it was told to finish.
        self.lost = False
        self._closing = False
        self._sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader = asyncio.ensure_future(self._read())

    @property
    def pending(self) -> int:
        """Images sent and not answered yet."""
        return len(self._pending)

    @property
    def has_room(self) -> bool:
        return self.alive and self.ready and self.pending < self.capacity

    async def download(self, url: str, page: str) -> dict[str, Any]:
        """Download and store ``url`` there; the item fields it ended with.

        Raises :exc:`DownloadProcessGone` if the process ended first.
        """
        if not self.alive or self._writer is None:
            raise DownloadProcessGone
        self._next += 1
        n = self._next
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[n] = future
        self._writer.write(json.dumps({"n": n, "url": url, "page": page}).encode() + b"\n")
        return await future

    async def _read(self) -> None:
        try:
            reader, self._writer = await asyncio.open_connection(sock=self._sock)
            while line := await reader.readline():
                message = json.loads(line)
                if "n" in message:
                    future = self._pending.pop(message["n"], None)
                    if future is not None and not future.done():
                        future.set_result(message["item"])
                elif "stats" in message:
                    self.stats = message["stats"]
                elif message.get("ready"):
                    self.ready = True
        except (OSError, ValueError) as exc:
            logger.warning("Lost the download process %d: %s", self.proc.pid, exc)
        finally:
            self.alive = False
            if not self._closing:
                self.lost = True
                logger.warning("Download process %d ended before the crawl: this process downloads its %d "
                               "image(s) in flight and the rest", self.proc.pid, len(self._pending))
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DownloadProcessGone())
            self._pending.clear()

    async def close(self, timeout: float) -> None:
        """Tell the process to finish, wait up to ``timeout`` seconds, then kill it."""
        self._closing = True
        if self._writer is not None and self.alive:
            try:
                self._writer.write_eof()
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            logger.warning("Download process %d did not finish in %.0f s: killed", self.proc.pid, timeout)
            self.proc.kill()
            self.proc.wait()
        try:
            await asyncio.wait_for(self._reader, 5)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        if self._writer is not None:
            self._writer.close()
        if self.proc.returncode and not self.stats and not self.lost:
            logger.warning("Download process %d exited with status %d", self.proc.pid, self.proc.returncode)

    def merge_stats(self, crawler: Crawler) -> None:
        """Add the process's downloader, retry and byte counts to the crawl's stats."""
        for name, value in self.stats.items():
            if isinstance(value, (int, float)) and not name.startswith(_OWN_STATS):
                crawler.stats.inc_value(name, value)


def start_processes(crawler: Crawler, count: int) -> list[DownloadProcess]:
    """Start ``count`` download processes with ``crawler``'s settings (call it with the event loop running).

    Returns those that started; a failure to start one is one WARNING line.
    """
    settings = crawler.settings
    # Only what differs from Scrapy's defaults: setting a deprecated default would warn.
    values = {name: settings[name] for name in settings if (settings.getpriority(name) or 0) > SETTINGS_PRIORITIES["default"]}
    values.update({
        "IMGSCRAPER_PROCESSES": 1,
        "FEEDS": {},
        "JOBDIR": None,
        "STATS_DUMP": False,
        "IMGSCRAPER_PROGRESS": False,
        "IMGSCRAPER_GALLERY": False,
        "LOGSTATS_INTERVAL": 0,
        # Its warnings (a failed image, a full disk) are worth seeing, its INFO lines repeat ours.
        "LOG_LEVEL": max(logging.WARNING, _level_number(crawler.settings.get("LOG_LEVEL"))),
    })
    # Scrapyd runs crawls from an egg: the download process needs the same import path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    capacity = 2 * max(1, crawler.settings.getint("CONCURRENT_REQUESTS"))
    started = []
    for _ in range(count):
        settings_path: Path | None = None
        try:
            # Readable by this user only (mkstemp): the settings may hold credentials.
            fd, name = tempfile.mkstemp(prefix="imgscraper-settings-", suffix=".pickle")
            settings_path = Path(name)
            with os.fdopen(fd, "wb") as file:
                pickle.dump(values, file)
            ours, theirs = socket.socketpair()
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "imgscraper.processes", str(theirs.fileno()), name],
                    pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
                )
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
            logger.warning("Cannot start a download process (%s): downloading in this process", exc)
            if settings_path is not None:
                settings_path.unlink(missing_ok=True)
            break
        started.append(DownloadProcess(proc, ours, capacity))
    return started


def _level_number(level: str | int) -> int:
    number = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    return number if isinstance(number, int) else logging.INFO


class DownloadProcessSpider(Spider):
    """The spider of a download process: its items are the images the main process sends."""

    name = "imgscraper-download-process"

    def __init__(self, fd: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.fd = fd
        self.jobs: dict[int, int] = {}
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> DownloadProcessSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        for signal_ in (signals.item_scraped, signals.item_dropped, signals.item_error):
            crawler.signals.connect(spider.item_finished, signal=signal_)
        crawler.signals.connect(spider.send_stats, signal=signals.spider_closed)
        return spider

    async def start(self) -> AsyncIterator[ImageItem]:
        reader, self._writer = await asyncio.open_connection(sock=socket.socket(fileno=self.fd))
        self._send({"ready": True})
        while line := await reader.readline():
            job = json.loads(line)
            item = ImageItem(url=job["url"], page=job["page"])
            self.jobs[id(item)] = job["n"]
            yield item

    def item_finished(self, item: Any) -> None:
        n = self.jobs.pop(id(item), None)
        if n is not None:
            self._send({"n": n, "item": ItemAdapter(item).asdict()})

    def send_stats(self) -> None:
        assert self.crawler.stats is not None
        stats = {k: v for k, v in self.crawler.stats.get_stats().items() if isinstance(v, (int, float))}
        self._send({"stats": stats})
        if self._writer is not None:
            self._writer.close()

    def _send(self, message: dict[str, Any]) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(json.dumps(message).encode() + b"\n")


def main(argv: list[str]) -> None:
    """``python -m imgscraper.processes FD SETTINGS``: run a download process."""
    from scrapy.crawler import AsyncCrawlerProcess  # noqa: PLC0415

    fd, settings_path = int(argv[1]), argv[2]
    # Ctrl-C reaches the whole process group: the main process decides when this one ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(settings_path, "rb") as file:
        values = pickle.load(file)
    os.unlink(settings_path)
    settings = Settings(values)
    tune_garbage_collector(settings.getint("IMGSCRAPER_GC_THRESHOLD"))
    process = AsyncCrawlerProcess(settings)
    process.crawl(DownloadProcessSpider, fd=fd)
    process.start(install_signal_handlers=False)


if __name__ == "__main__":
    main(sys.argv)
