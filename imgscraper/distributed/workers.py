"""Local workers: ``IMGSCRAPER_WORKERS = N`` crawls with N processes of this machine.

The ``crawl`` command (:mod:`imgscraper.commands.crawl`), once it has checked the
crawl's input and before Scrapy starts anything, starts a private ``redis-server``
for the crawl when ``IMGSCRAPER_REDIS_URL`` is empty (:class:`PrivateRedis`) and
forks ``N - 1`` local workers (:func:`fork_local_workers`): each goes on as the same
``scrapy crawl`` command, with the settings of a worker (:func:`worker_settings`) and
``IMGSCRAPER_LEAD_WORKER`` naming the first process, the *lead*. Forked, a worker is
ready to crawl as soon as the lead (a new Python process would take about a second
of CPU to import Scrapy and start a crawl); it joins the crawl once the lead has. A
crawl of one start page at depth 0 gets none. The crawl is then shared through the
Redis engine (:mod:`imgscraper.distributed`) like any shared crawl: the local workers
hand the lead their items, stats and failure lines through Redis
(:meth:`~imgscraper.distributed.crawl.SharedCrawl.hand_over`); the lead
(:class:`LeadScheduler`) writes the items to its feeds, adds the stats to its own and
logs the failure lines as its own, so its progress display, failure lines, summary
and gallery are those of the whole crawl.

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
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scrapy import Spider, signals
from scrapy.settings import BaseSettings
from scrapy.utils.conf import build_component_list
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from scrapy.utils.misc import load_object

from imgscraper import signals as imgscraper_signals
from imgscraper.distributed.scheduler import SharedScheduler
from imgscraper.exceptions import RedisServerError, RedisServerMissing

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from twisted.internet.defer import Deferred

__all__ = ["LeadScheduler", "PrivateRedis", "end_with_lead", "fork_local_workers", "worker_settings"]

logger = logging.getLogger(__name__)

#: Seconds between two reads of what the local workers handed over.
GATHER_INTERVAL = 0.1
#: The settings naming one component class each, imported before forking (import_components).
_COMPONENT_SETTINGS = ("SCHEDULER", "SCHEDULER_PRIORITY_QUEUE", "SCHEDULER_MEMORY_QUEUE", "SCHEDULER_DISK_QUEUE",
                       "DUPEFILTER_CLASS", "DOWNLOADER", "STATS_CLASS", "LOG_FORMATTER", "REQUEST_FINGERPRINTER_CLASS")
#: prctl(2) option: a signal for this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1


class PrivateRedis:
    """Debian's ``redis-server`` for one crawl, on a Unix socket in a temporary directory, nothing
    persisted: ``with PrivateRedis(workers) as url``. Only the process that started it stops it
    and removes the directory (the local workers, forked with it running, leave it alone)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._owner = os.getpid()
        self._proc: subprocess.Popen | None = None
        self._directory: Path | None = None

    def __enter__(self) -> str:
        program = shutil.which("redis-server")
        if program is None:
            raise RedisServerMissing(
                f"IMGSCRAPER_WORKERS={self.workers} needs redis-server: install it (sudo apt-get install "
                "redis-server, or make debs), or set IMGSCRAPER_REDIS_URL to a Redis of your own"
            )
        directory = self._directory = Path(tempfile.mkdtemp(prefix="imgscraper-redis-"))
        path = directory / "redis.sock"
        self._proc = subprocess.Popen(
            [program, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700", "--dir", str(directory),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            # Started before the crawl runs any thread: preexec_fn is safe here.
            preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
        )
        try:
            _wait_for_socket(self._proc, path, directory / "redis.log")
        except BaseException:
            self.__exit__()
            raise
        return f"unix://{path}"

    def __exit__(self, *exc: object) -> None:
        if os.getpid() != self._owner or self._proc is None:
            return
        # Nothing to save: SIGTERM would wait for the server's next tick (up to 0.1 s).
        self._proc.kill()
        self._proc.wait()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)


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


def worker_settings(settings: BaseSettings, lead: str) -> dict[str, Any]:
    """What a local worker of ``lead`` sets differently from the lead: no feeds, no progress display,
    no gallery, no failure lines (the lead writes and logs them for the crawl), warnings only."""
    level = logging.getLevelName(str(settings.get("LOG_LEVEL")).upper())
    level = max(logging.WARNING, level if isinstance(level, int) else logging.INFO)
    return {
        "FEEDS": {}, "STATS_DUMP": False, "IMGSCRAPER_PROGRESS": False, "IMGSCRAPER_PROGRESS_INTERVAL": 0,
        # The lead builds the gallery, from the store's record, once every worker is done.
        "IMGSCRAPER_GALLERY": False,
        # The lead logs the failures, with its own (it applies IMGSCRAPER_FAILURE_LINES to the crawl).
        "IMGSCRAPER_LOG_FAILURES": False,
        "IMGSCRAPER_WORKERS": 1, "LOG_LEVEL": logging.getLevelName(level),
        "IMGSCRAPER_WORKER_ID": "", "IMGSCRAPER_LOCAL_WORKERS": [], "IMGSCRAPER_LEAD_WORKER": lead,
    }


def fork_local_workers(count: int, settings: BaseSettings) -> list[int] | None:
    """Fork ``count`` local workers of the crawl ``settings`` describe. Called by the crawl command
    before Scrapy starts anything (no thread, no reactor): each worker goes on as the same
    ``scrapy crawl`` command, with :func:`worker_settings`, in a session of its own (Ctrl-C reaches
    the lead, which passes it on). The lead gets the workers' process ids (and has its worker id
    in ``IMGSCRAPER_WORKER_ID``); a worker gets None. The components are imported first
    (:func:`import_components`)."""
    import_components(settings)
    lead = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    settings.set("IMGSCRAPER_WORKER_ID", lead, priority="cmdline")
    pids: list[int] = []
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # what is buffered would be written once per process
            stream.flush()
    for _ in range(count):
        try:
            pid = os.fork()
        except OSError as exc:
            logger.warning("Cannot start a local worker (%s): crawling with %d", exc, len(pids) + 1)
            break
        if pid == 0:
            os.setsid()
            with open(os.devnull, "rb") as devnull:
                os.dup2(devnull.fileno(), 0)  # the terminal's input is the lead's
            for name, value in worker_settings(settings, lead).items():
                settings.set(name, value, priority="cmdline")
            return None
        pids.append(pid)
    settings.set("IMGSCRAPER_LOCAL_WORKERS", pids, priority="cmdline")
    return pids


def import_components(settings: BaseSettings) -> None:
    """Import the engine and every component class ``settings`` name, so that processes forked
    afterwards share the modules instead of each importing them (about 0.15 s of CPU each).
    A path that does not import is left for the crawl to report."""
    paths = [settings.get(name) for name in _COMPONENT_SETTINGS]
    for name in ("EXTENSIONS", "DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "ITEM_PIPELINES"):
        paths += build_component_list(settings.getwithbase(name))
    paths += settings.getwithbase("DOWNLOAD_HANDLERS").values()
    for path in ("scrapy.core.engine.ExecutionEngine", *paths):
        if path:
            with contextlib.suppress(Exception):
                load_object(path)


class ForkedProcess:
    """A forked local worker, seen from the lead: the part of :class:`subprocess.Popen` it uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(0.01)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class LocalWorker:
    """A local worker process, seen from the lead."""

    number: int
    proc: ForkedProcess
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
        self.timeout = max(60.0, settings.getfloat("DOWNLOAD_TIMEOUT") + 10)
        #: The local workers the crawl command forked (fork_local_workers).
        self.workers = [LocalWorker(number, ForkedProcess(int(pid)))
                        for number, pid in enumerate(settings.getlist("IMGSCRAPER_LOCAL_WORKERS"), 1)]
        self._signalled = False
        self._pending: set[Deferred[Any]] = set()

    async def _open(self, spider: Spider) -> None:
        await super()._open(spider)
        if self.workers:
            logger.info("Crawling with %d workers: this one and %d local worker%s (pid %s)", len(self.workers) + 1,
                        len(self.workers), "s" if len(self.workers) > 1 else "",
                        ", ".join(str(w.proc.pid) for w in self.workers))
            self._forward_signals()
        if self.shared.joined:
            self._loops.append(self.shared.spawn(self._gather_loop()))

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
        """Gather what the local workers hand over, every GATHER_INTERVAL seconds."""
        while True:
            await asyncio.sleep(GATHER_INTERVAL)
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
