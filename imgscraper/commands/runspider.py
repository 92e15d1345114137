"""``scrapy runspider`` that runs a rendering crawl (``-a render=yes``) with the Twisted reactor."""

from __future__ import annotations

import argparse

from scrapy.commands.runspider import Command as ScrapyRunSpiderCommand

from imgscraper.commands import use_reactor_for_rendering

__all__ = ["Command"]


class Command(ScrapyRunSpiderCommand):
    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        use_reactor_for_rendering(self.settings, opts.spargs)
