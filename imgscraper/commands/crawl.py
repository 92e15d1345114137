"""``scrapy crawl`` that checks its input first, and fails (exit status 1) when the crawl failed.

The spider's arguments and the settings are checked before anything is set
up (:func:`crawl_problems`): a bad one is one ``ERROR`` line each and exit
status 1, before Scrapy's banner, and nothing is opened or created: an
existing ``-O`` feed is left as it was, and no store folder, record, gallery
or ``JOBDIR`` appears.

Stock ``crawl`` exits 0 whenever the spider started, so a scheduler cannot
tell a bad argument or an unreachable start page from a good crawl. Here the
exit status is 1 when the finish reason is not ``finished`` (or ``max_images``,
a crawl that stored as many images as asked) or a start page could not be fetched.

It also tunes the garbage collector (:mod:`imgscraper.runtime`), and with
``IMGSCRAPER_WORKERS > 1`` sets up the local workers (:mod:`imgscraper.distributed.workers`):
a private ``redis-server`` unless ``IMGSCRAPER_REDIS_URL`` is set, each process's share of
``IMGSCRAPER_MAX_RATE``, and the workers, forked once the input is checked.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from scrapy import Spider
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.crawler import Crawler
from scrapy.settings import BaseSettings
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.log import configure_logging

from imgscraper.addons.settingscheck import check_settings, spider_arguments
from imgscraper.bandwidth import max_rate
from imgscraper.downloadermiddlewares.cookiesfile import cookies_file_path, read_cookies
from imgscraper.extensions.imagelimit import ImageLimit
from imgscraper.rendering.renderer import Renderer, RenderingError
from imgscraper.runtime import skip_records_below, tune_garbage_collector
from imgscraper.spiders.images import ImagesSpider

__all__ = ["Command", "crawl_failed", "crawl_problems"]

logger = logging.getLogger(__name__)


def crawl_problems(spidercls: type[Spider], arguments: dict[str, Any], settings: BaseSettings) -> list[str]:
    """Every problem with the spider's ``arguments`` and with ``settings``, one line each
    (``Bad argument: ...``, ``Bad setting: ...``), found without opening or creating anything.

    The images spider checks its arguments when it is built, as in the crawl. What they set is
    set in a copy of ``settings``, as the spider sets it in the crawl's, and checked with the
    others: the filters' settings (``-a allow=`` sets ``IMGSCRAPER_ALLOW``) and the other arguments' that
    are settings (``-a originals=yes``: ``IMGSCRAPER_ORIGINALS``), no item pipeline
    with ``-a download=no``. The browser ``-a render=yes`` needs is looked for last.
    """
    settings = settings.copy()
    spider = spidercls(**arguments)
    problems = []
    if isinstance(spider, ImagesSpider):
        spider.apply_setting_arguments(settings)
        if not spider.download:
            settings.set("ITEM_PIPELINES", {}, priority="spider")
        if spider.argument_error:
            problems.append(f"Bad argument: {spider.argument_error}")
        elif path := cookies_file_path(spider.arguments, settings):
            _, problem = read_cookies(path, settings)
            if problem:
                problems.append(f"Bad argument: {problem}")
    problems += [f"Bad setting: {problem}" for problem in check_settings(settings, spider_arguments(spidercls))]
    if not problems and isinstance(spider, ImagesSpider) and spider.render:
        try:
            Renderer(settings, click=spider.click).browser_path()
        except RenderingError as exc:
            problems.append(f"Bad argument: {exc}")
    return problems


def crawl_failed(stats: dict[str, Any]) -> bool:
    """Whether a finished crawl's stats say it failed."""
    finished = stats.get("finish_reason") in ("finished", ImageLimit.REASON)
    return not finished or bool(stats.get("imgscraper/start_pages_failed"))


class Command(ScrapyCrawlCommand):
    crawler: Crawler | None = None
    #: What :func:`crawl_problems` found: :meth:`run` reports it instead of crawling.
    problems: Sequence[str] = ()
    #: The URL of the crawl's private Redis (IMGSCRAPER_WORKERS), if it has one.
    _private_redis: str = ""

    def __init__(self) -> None:
        super().__init__()
        #: What the crawl set up for itself (a private Redis), undone at the end of run().
        self._stack = contextlib.ExitStack()

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        try:
            spidercls = get_spider_loader(self.settings).load(args[0]) if len(args) == 1 else None
        except KeyError:
            spidercls = None  # run() raises Scrapy's own error
        self.problems = crawl_problems(spidercls, opts.spargs, self.settings) if spidercls else ()
        if spidercls and not self.problems:
            self._set_up_local_workers(spidercls, opts)
        # The crawler process, built once the options are processed, would log Scrapy's banner first.
        self.requires_crawler_process = not self.problems

    def _create_crawler(self, spidercls: type[Spider] | str) -> Crawler:
        self.crawler = super()._create_crawler(spidercls)
        return self.crawler

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        with self._stack:
            if self.problems:
                configure_logging(self.settings)
                for problem in self.problems:
                    logger.error("%s", problem)
                self.exitcode = 1
                return
            tune_garbage_collector(self.settings.getint("IMGSCRAPER_GC_THRESHOLD"))
            skip_records_below(self.settings.get("LOG_LEVEL"))
            if self.settings.get("IMGSCRAPER_LEAD_WORKER"):
                from imgscraper.distributed.workers import end_with_lead  # noqa: PLC0415

                if not end_with_lead(self.settings):
                    return  # a local worker whose lead is gone: nothing to do
            elif self._private_redis:
                logger.info("Private Redis for %d workers: %s", self.settings.getint("IMGSCRAPER_WORKERS"),
                            self._private_redis)
            super().run(args, opts)
        if self.exitcode == 0 and self.crawler and crawl_failed(self.crawler.stats.get_stats()):
            self.exitcode = 1

    def _set_up_local_workers(self, spidercls: type[Spider], opts: argparse.Namespace) -> None:
        """With ``IMGSCRAPER_WORKERS > 1``: a private Redis (stopped at the end of :meth:`run`) unless
        ``IMGSCRAPER_REDIS_URL`` is set, ``IMGSCRAPER_MAX_RATE`` divided evenly between the processes,
        and the local workers, forked now (none for a crawl of one start page at depth 0). No
        ``redis-server``: a problem of the crawl (one ERROR line)."""
        assert self.settings is not None
        try:
            workers = self.settings.getint("IMGSCRAPER_WORKERS")
        except ValueError:
            return  # the crawl's settings check reports it
        if workers <= 1:
            return
        from imgscraper.distributed.workers import PrivateRedis, fork_local_workers  # noqa: PLC0415
        from imgscraper.exceptions import RedisServerError  # noqa: PLC0415

        if not self.settings.get("IMGSCRAPER_REDIS_URL"):
            try:
                self._private_redis = self._stack.enter_context(PrivateRedis(workers))
            except RedisServerError as exc:  # not installed, or would not start
                self.problems = [str(exc)]
                return
            self.settings.set("IMGSCRAPER_REDIS_URL", self._private_redis, priority="cmdline")
        if rate := max_rate(self.settings):
            # Each process paces its own reading (imgscraper.bandwidth): each gets an even share.
            self.settings.set("IMGSCRAPER_MAX_RATE", max(1, rate // workers), priority="cmdline")
        spider = spidercls(**opts.spargs)
        one_page = isinstance(spider, ImagesSpider) and not (
            spider.depth or len(spider.start_urls) > 1 or spider.sitemap_urls)
        fork_local_workers(0 if one_page else workers - 1, self.settings)
