"""``scrapy crawl`` that also fails (exit status 1) when the crawl itself failed.

Stock ``crawl`` exits 0 whenever the spider started, so a scheduler cannot
tell a bad argument or an unreachable start page from a good crawl. Here the
exit status is 1 when the finish reason is not ``finished`` or a start page
could not be fetched.

It also runs the crawl with the Twisted reactor when the spider arguments
ask for rendering (:func:`imgscraper.commands.use_reactor_for_rendering`)
and tunes the garbage collector (:mod:`imgscraper.runtime`).
"""

from __future__ import annotations

import argparse
from typing import Any

from scrapy import Spider
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.crawler import Crawler

from imgscraper.commands import use_reactor_for_rendering
from imgscraper.runtime import skip_records_below, tune_garbage_collector

__all__ = ["Command", "crawl_failed"]


def crawl_failed(stats: dict[str, Any]) -> bool:
    """Whether a finished crawl's stats say it failed."""
    return stats.get("finish_reason") != "finished" or bool(stats.get("imgscraper/start_pages_failed"))


class Command(ScrapyCrawlCommand):
    crawler: Crawler | None = None

    def _create_crawler(self, spidercls: type[Spider] | str) -> Crawler:
        self.crawler = super()._create_crawler(spidercls)
        return self.crawler

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        use_reactor_for_rendering(self.settings, opts.spargs)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        tune_garbage_collector(self.settings.getint("IMGSCRAPER_GC_THRESHOLD"))
        skip_records_below(self.settings.get("LOG_LEVEL"))
        super().run(args, opts)
        if self.exitcode == 0 and self.crawler and crawl_failed(self.crawler.stats.get_stats()):
            self.exitcode = 1
