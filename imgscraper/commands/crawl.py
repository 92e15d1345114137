"""``scrapy crawl`` that also fails (exit status 1) when the crawl itself failed.

Stock ``crawl`` exits 0 whenever the spider started, so a scheduler cannot
tell a bad argument or an unreachable start page from a good crawl. Here the
exit status is 1 when the finish reason is not ``finished`` or a start page
could not be fetched.

It also tunes the garbage collector (:mod:`imgscraper.runtime`), and with
``IMGSCRAPER_WORKERS > 1`` sets up the local workers (:mod:`imgscraper.distributed.workers`):
a private ``redis-server`` unless ``IMGSCRAPER_REDIS_URL`` is set, and the
command line of a worker.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import Any

from scrapy import Spider
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.crawler import Crawler

from imgscraper.runtime import skip_records_below, tune_garbage_collector

__all__ = ["Command", "crawl_failed"]

logger = logging.getLogger(__name__)


def crawl_failed(stats: dict[str, Any]) -> bool:
    """Whether a finished crawl's stats say it failed."""
    return stats.get("finish_reason") != "finished" or bool(stats.get("imgscraper/start_pages_failed"))


class Command(ScrapyCrawlCommand):
    crawler: Crawler | None = None

    def _create_crawler(self, spidercls: type[Spider] | str) -> Crawler:
        self.crawler = super()._create_crawler(spidercls)
        return self.crawler

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        tune_garbage_collector(self.settings.getint("IMGSCRAPER_GC_THRESHOLD"))
        skip_records_below(self.settings.get("LOG_LEVEL"))
        if self.settings.get("IMGSCRAPER_LEAD_WORKER"):
            from imgscraper.distributed.workers import end_with_lead  # noqa: PLC0415

            if not end_with_lead(self.settings):
                return  # a local worker whose lead is gone: nothing to do
        with contextlib.ExitStack() as stack:
            if args and not self._set_up_local_workers(args[0], opts, stack):
                self.exitcode = 1
                return
            super().run(args, opts)
        if self.exitcode == 0 and self.crawler and crawl_failed(self.crawler.stats.get_stats()):
            self.exitcode = 1

    def _set_up_local_workers(self, spider: str, opts: argparse.Namespace, stack: contextlib.ExitStack) -> bool:
        """With ``IMGSCRAPER_WORKERS > 1``: a private Redis (stopped with ``stack``) unless
        ``IMGSCRAPER_REDIS_URL`` is set, and the local workers' command line. False: no
        ``redis-server`` (one ERROR line)."""
        assert self.settings is not None
        try:
            workers = self.settings.getint("IMGSCRAPER_WORKERS")
        except ValueError:
            return True  # the crawl's settings check reports it
        if workers <= 1:
            return True
        from imgscraper.distributed.workers import private_redis, worker_command  # noqa: PLC0415
        from imgscraper.exceptions import RedisServerError  # noqa: PLC0415

        if not self.settings.get("IMGSCRAPER_REDIS_URL"):
            try:
                url = stack.enter_context(private_redis(workers))
            except RedisServerError as exc:  # not installed, or would not start
                logger.error("%s", exc)
                return False
            logger.info("Private Redis for %d workers: %s", workers, url)
            self.settings.set("IMGSCRAPER_REDIS_URL", url, priority="cmdline")
        self.settings.set("IMGSCRAPER_LOCAL_WORKER_COMMAND", worker_command(spider, opts.spargs, self.settings),
                          priority="cmdline")
        return True
