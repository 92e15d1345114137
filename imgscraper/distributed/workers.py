"""Local workers: ``IMGSCRAPER_WORKERS = N`` crawls with N processes of this machine.

The ``crawl`` command (:mod:`imgscraper.commands.crawl`) starts a private
``redis-server`` for the crawl when ``IMGSCRAPER_REDIS_URL`` is empty
(:func:`private_redis`), and gives the crawl the command line of one more
worker (:func:`worker_command`). The crawl is then shared through the Redis
engine (:mod:`imgscraper.distributed`) like any shared crawl, and its process
is the *lead*: :class:`LeadScheduler` starts ``N - 1`` local workers as the crawl
starts (for a crawl of one start page at depth 0, once pages wait in its queue),
``scrapy crawl`` processes of the same spider, arguments and settings with ``IMGSCRAPER_LEAD_WORKER`` naming the lead. Those
hand the lead their items, stats and failure lines through Redis
(:meth:`~imgscraper.distributed.crawl.SharedCrawl.hand_over`); the lead writes the
items to its feeds, adds the stats to its own and logs the failure lines as its
own, so its progress display, failure lines, summary and gallery are those of
the whole crawl.

Local workers run in sessions of their own, and the lead passes on every
SIGINT and SIGTERM it gets (as SIGTERM: a worker still starting ends without a
traceback): Ctrl-C once stops every worker gracefully, twice at once. A
local worker that dies (SIGKILL, out of memory) has its pages put back in the
queue and its images claimed again at once (one WARNING line, stat
``imgscraper/workers/lost``); local workers and the private ``redis-server``
end with the lead, even when it is killed. The lead closes after every local worker
has exited. Stat ``imgscraper/workers/items``: the items local workers handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Spider, signals
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future

from imgscraper import signals as imgscraper_signals
from imgscraper.distributed.scheduler import SharedScheduler
from imgscraper.exceptions import RedisServerError, RedisServerMissing

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from twisted.internet.defer import Deferred

__all__ = ["LeadScheduler", "end_with_lead", "private_redis", "worker_command"]

logger = logging.getLogger(__name__)

#: Seconds between two reads of what the local workers handed over.
GATHER_INTERVAL = 0.1
#: prctl(2) option: a signal for this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
#: Settings a local worker gets its own value of (see worker_command).
_WORKER_OWN = ("FEEDS", "LOG_LEVEL", "STATS_DUMP", "IMGSCRAPER_PROGRESS", "IMGSCRAPER_PROGRESS_INTERVAL",
               "IMGSCRAPER_GALLERY", "IMGSCRAPER_WORKERS", "IMGSCRAPER_LOG_FAILURES",
               "IMGSCRAPER_LOCAL_WORKER_COMMAND", "IMGSCRAPER_CRAWL_ID", "IMGSCRAPER_LEAD_WORKER")


@contextlib.contextmanager
def private_redis(workers: int) -> Iterator[str]:
    """Debian's ``redis-server`` for one crawl, on a Unix socket in a temporary
    directory, nothing persisted; yields its URL, stops it and removes the directory."""
    program = shutil.which("redis-server")
    if program is None:
        raise RedisServerMissing(
            f"IMGSCRAPER_WORKERS={workers} needs redis-server: install it (sudo apt-get install redis-server, "
            "or make debs), or set IMGSCRAPER_REDIS_URL to a Redis of your own"
        )
    directory = Path(tempfile.mkdtemp(prefix="imgscraper-redis-"))
    path = directory / "redis.sock"
    proc = subprocess.Popen(
        [program, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700", "--dir", str(directory),
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(directory / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        # Started before the crawl runs any thread: preexec_fn is safe here.
        preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
    )
    try:
        _wait_for_socket(proc, path, directory / "redis.log")
        yield f"unix://{path}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _end_with_parent() -> bool:
    """Have the kernel send this process SIGTERM when its parent dies, however it dies
    (SIGKILL included); False where that cannot be asked for."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) == 0
    except (OSError, AttributeError):
        return False


def end_with_lead(settings: BaseSettings) -> bool:
    """In a local worker (``IMGSCRAPER_LEAD_WORKER`` set): end, gracefully, when the lead process
    ends, even killed (no one would write this worker's items). False: the lead is gone already.
    Called by the crawl command."""
    parts = (settings.get("IMGSCRAPER_LEAD_WORKER") or "").split(":")
    if len(parts) < 3 or not parts[-2].isdigit():
        return True
    _end_with_parent()
    return os.getppid() == int(parts[-2])


def _wait_for_socket(proc: subprocess.Popen, path: Path, log: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RedisServerError(f"redis-server exited: {log.read_text(errors='replace')[-500:] if log.exists() else ''}")
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(str(path))
                return
            except OSError:
                time.sleep(0.01)
    raise RedisServerError(f"redis-server did not listen on {path} within {timeout:.0f} s")


def worker_command(spider: str, arguments: Mapping[str, str], settings: BaseSettings) -> list[str]:
    """The command line of a local worker: ``scrapy crawl`` of ``spider`` with the same
    arguments and command-line settings, no feeds, no progress display, no gallery, warnings only."""
    command = [sys.executable, "-m", "scrapy", "crawl", spider]
    for name, value in arguments.items():
        command += ["-a", f"{name}={value}"]
    for name in settings:
        if (settings.getpriority(name) or 0) < SETTINGS_PRIORITIES["cmdline"] or name in _WORKER_OWN:
            continue
        value = settings[name]
        if isinstance(value, BaseSettings):
            value = value.copy_to_dict()
        try:
            command += ["-s", f"{name}={value if isinstance(value, str) else json.dumps(value)}"]
        except (TypeError, ValueError):
            logger.debug("Local workers do not get %s (not a string nor JSON)", name)
    level = logging.getLevelName(str(settings.get("LOG_LEVEL")).upper())
    level = max(logging.WARNING, level if isinstance(level, int) else logging.INFO)
    return [*command, "-s", "FEEDS={}", "-s", "STATS_DUMP=false", "-s", "IMGSCRAPER_PROGRESS=false",
            "-s", "IMGSCRAPER_PROGRESS_INTERVAL=0",
            # The lead builds the gallery, from the store's record, once every worker is done.
            "-s", "IMGSCRAPER_GALLERY=false",
            # The lead logs the failures, with its own (it applies IMGSCRAPER_FAILURE_LINES to the crawl).
            "-s", "IMGSCRAPER_LOG_FAILURES=false",
            "-s", "IMGSCRAPER_WORKERS=1", "-s", f"LOG_LEVEL={logging.getLevelName(level)}"]


@dataclass
class LocalWorker:
    """A local worker process, seen from the lead."""

    number: int
    proc: subprocess.Popen
    #: Its worker id in the shared crawl, once it joined.
    worker: str = ""
    #: Its stats as last handed over.
    stats: dict[str, Any] = field(default_factory=dict)
    left: bool = False
    ended: bool = False


class LeadScheduler(SharedScheduler):
    """The scheduler of a crawl's lead worker: a :class:`~imgscraper.distributed.scheduler.SharedScheduler`
    that starts the crawl's local workers and gathers their items and stats
    (see the module docstring)."""

    def __init__(self, *args: Any, crawler: Crawler, **kwargs: Any):
        super().__init__(*args, crawler=crawler, **kwargs)
        settings = crawler.settings
        self.count = settings.getint("IMGSCRAPER_WORKERS") - 1
        self.command: list[str] = settings.getlist("IMGSCRAPER_LOCAL_WORKER_COMMAND")
        self.timeout = max(60.0, settings.getfloat("DOWNLOAD_TIMEOUT") + 10)
        self.workers: list[LocalWorker] = []
        self._signalled = False
        self._started = False
        self._pending: set[Deferred[Any]] = set()

    async def _open(self, spider: Spider) -> None:
        await super()._open(spider)
        if not self.shared.joined:
            return
        # A crawl beyond one page: the local workers start with it (a process takes about a second to
        # start a crawl). One start page at depth 0 may need none (see _gather_loop).
        if getattr(spider, "depth", 0) > 0 or len(getattr(spider, "start_urls", ())) > 1:
            self._started = True
            self._start_workers()
        self._loops.append(self.shared.spawn(self._gather_loop()))

    def _start_workers(self) -> None:
        command = [*self.command, "-s", f"IMGSCRAPER_CRAWL_ID={self.shared.crawl_id}",
                   "-s", f"IMGSCRAPER_LEAD_WORKER={self.shared.worker}"]
        # Scrapyd runs crawls from an egg: a worker needs the same import path.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        for number in range(1, self.count + 1):
            try:
                # A session of its own: Ctrl-C reaches the lead, which passes it on (_forward).
                proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as exc:
                logger.warning("Cannot start local worker %d (%s): crawling with %d", number, exc, number)
                break
            self.workers.append(LocalWorker(number, proc))
        logger.info("Crawling with %d workers: this one and %d local worker%s (pid %s)", len(self.workers) + 1,
                    len(self.workers), "s" if len(self.workers) > 1 else "", ", ".join(str(w.proc.pid) for w in self.workers))
        self._forward_signals()

    # -- signals -----------------------------------------------------------

    def _forward_signals(self) -> None:
        """Wrap the SIGINT and SIGTERM handlers Scrapy installed so the local workers get each signal too."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if not callable(handler) or getattr(handler, "forwards_to_workers", False):
                continue

            def forward(number: int, frame: Any, previous: Any = handler) -> None:
                # SIGTERM, which Scrapy handles as SIGINT: a worker still starting ends without a traceback.
                self.signal_workers(signal.SIGTERM)
                previous(number, frame)
                # Scrapy installs its next handler (a second Ctrl-C forces the stop): wrap it too.
                self._forward_signals()

            forward.forwards_to_workers = True  # type: ignore[attr-defined]
            try:
                signal.signal(signum, forward)
            except ValueError:  # not the main thread: Scrapy installed no handler either
                return

    def signal_workers(self, signum: int) -> None:
        """Send ``signum`` to every local worker still running."""
        self._signalled = True
        for worker in self.workers:
            if worker.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signum)

    # -- what the local workers hand over --------------------------------------

    async def _gather_loop(self) -> None:
        """Start the local workers once pages wait in the queue, unless started already (a crawl of
        its start page alone needs none); then gather what they hand over."""
        while True:
            await asyncio.sleep(GATHER_INTERVAL)
            if not self._started:
                if not await self.shared.server.zcard(self.shared.key("requests")):
                    continue
                self._started = True
                self._start_workers()
            await self.gather()

    async def gather(self) -> None:
        """Take what the local workers handed over; notice the ones that ended."""
        if not self.workers:
            return
        exited = [w for w in self.workers if not w.ended and w.proc.poll() is not None]
        await self._drain()
        for worker in exited:
            worker.ended = True
            if not worker.left and worker.worker:
                await self._lost(worker)
            elif worker.proc.returncode:
                logger.warning("Local worker %d (pid %d) exited with status %d",
                               worker.number, worker.proc.pid, worker.proc.returncode)
        self._forward_signals()

    async def _drain(self) -> None:
        key = self.shared.output_key(self.shared.worker)
        while entries := await self.shared.server.lpop(key, 1000):
            for data in entries:
                self._take(pickle.loads(data))

    def _take(self, message: tuple) -> None:
        kind, worker_id = message[0], message[1]
        if kind == "joined":
            for worker in self.workers:
                if worker.proc.pid == message[2]:
                    worker.worker = worker_id
            return
        worker = next((w for w in self.workers if w.worker == worker_id), None)
        if worker is None:
            return
        if kind == "item":
            self.crawler.stats.inc_value("imgscraper/workers/items")
            # handed_over_by: counted already, by the local worker (imgscraper.distributed.closespider).
            done = deferred_from_coro(self.crawler.signals.send_catch_log_async(
                signal=signals.item_scraped, item=message[2], response=None, spider=self.spider,
                handed_over_by=worker_id,
            ))
            self._pending.add(done)
            done.addBoth(lambda result, d=done: self._pending.discard(d) or result)
        elif kind == "stats":
            self._add_stats(worker, message[2])
        elif kind == "signal":  # a failed image or page (SharedCrawl._failure_to_lead)
            self.crawler.signals.send_catch_log(getattr(imgscraper_signals, message[2]), **message[3])
        elif kind == "left":
            worker.left = True

    def _add_stats(self, worker: LocalWorker, stats: dict[str, Any]) -> None:
        """Add what ``worker`` counted since its last hand-over to the crawl's stats."""
        for name, value in stats.items():
            if name.endswith("_max"):
                self.crawler.stats.max_value(name, value)
            elif name.endswith("_min"):
                self.crawler.stats.min_value(name, value)
            elif value != worker.stats.get(name, 0):
                self.crawler.stats.inc_value(name, value - worker.stats.get(name, 0))
        worker.stats = stats

    async def _lost(self, worker: LocalWorker) -> None:
        moved = await self.shared.release(worker.worker)
        self.crawler.stats.inc_value("imgscraper/workers/lost")
        logger.warning(
            "Local worker %d (pid %d) ended before the crawl (status %s): its %d pages go back in the queue, "
            "its images may be claimed again", worker.number, worker.proc.pid, worker.proc.returncode, moved,
        )

    # -- the end -------------------------------------------------------------

    async def _close(self, reason: str) -> None:
        await self.shared.stop(*self._loops)
        for worker in self.workers:
            if worker.proc.poll() is None and (not worker.worker or not self._finished and not self._signalled):
                # Not joined yet (nothing to do), or this worker stopped alone: neither the crawl's end, nor a
                # limit of the crawl (the workers close themselves, and a signal now would cut their closing
                # short), nor a signal (passed on already).
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.timeout
        while any(w.proc.poll() is None for w in self.workers):
            if time.monotonic() > deadline:
                for worker in self.workers:
                    if worker.proc.poll() is None:
                        logger.warning("Local worker %d did not finish in %.0f s: killed", worker.number, self.timeout)
                        worker.proc.kill()
                        worker.proc.wait()
                break
            await self.gather()
            await asyncio.sleep(0.02)
        await self.gather()
        for done in list(self._pending):
            await maybe_deferred_to_future(done)
        await super()._close(reason)
