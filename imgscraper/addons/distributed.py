"""Scrapy add-ons: one setting that turns on a group of components."""

from __future__ import annotations

import logging

from scrapy.settings import Settings

__all__ = ["DistributedCrawl"]

logger = logging.getLogger(__name__)


class DistributedCrawl:
    """``IMGSCRAPER_REDIS_URL`` set: share the crawl with every worker using the
    same Redis (:mod:`imgscraper.distributed`: scrapy-redis's scheduler and
    duplicate filter, kept queue, shared image claims, download slots shared
    by every worker (:mod:`imgscraper.distributed.leases`), ``CLOSESPIDER_*`` limits and
    ``max_images`` for the whole crawl (:mod:`imgscraper.distributed.closespider`,
    :mod:`imgscraper.distributed.imagelimit`), near-duplicates compared across the workers
    (:mod:`imgscraper.distributed.nearduplicates`), robots.txt fetched once for the crawl
    (:mod:`imgscraper.distributed.robotstxt`); with
    ``IMGSCRAPER_WORKERS > 1`` under the crawl command, :mod:`imgscraper.distributed.workers`
    starts the local workers). Unset: nothing changes, and neither redis nor
    scrapy-redis is imported.
    """

    def update_settings(self, settings: Settings) -> None:
        if not self._valid_settings(settings):
            return  # with a bad value imgscraper.addons.settingscheck refuses the crawl, in one line
        workers = settings.getint("IMGSCRAPER_WORKERS")
        if workers > 1 and not settings.get("IMGSCRAPER_WORKER_ID"):
            logger.warning("IMGSCRAPER_WORKERS=%d: local workers are started by scrapy crawl (the project's crawl "
                           "command), not here: crawling with one worker", workers)
        url = settings.get("IMGSCRAPER_REDIS_URL")
        if not url:
            return
        from scrapy.extensions.closespider import CloseSpider  # noqa: PLC0415

        from imgscraper.distributed.closespider import SharedCloseSpider  # noqa: PLC0415
        from imgscraper.distributed.imagelimit import SharedImageLimit  # noqa: PLC0415
        from imgscraper.distributed.middleware import SharedImagesMiddleware  # noqa: PLC0415
        from imgscraper.distributed.robotstxt import SharedRobotsTxtMiddleware  # noqa: PLC0415
        from imgscraper.extensions.imagelimit import ImageLimit  # noqa: PLC0415

        settings.set("REDIS_URL", url, priority="addon")
        # The crawl command's local workers (IMGSCRAPER_WORKERS): this worker starts them and leads them.
        lead = workers > 1 and settings.get("IMGSCRAPER_WORKER_ID")
        scheduler = ("imgscraper.distributed.workers.LeadScheduler" if lead
                     else "imgscraper.distributed.scheduler.SharedScheduler")
        settings.set("SCHEDULER", scheduler, priority="addon")
        # Per-domain concurrency and delay hold across the workers (imgscraper.distributed.leases).
        if settings.get("DOWNLOADER") == "imgscraper.downloader.LimitedDownloader":
            # At the priority of the project's value, which ranks above add-ons.
            settings.set("DOWNLOADER", "imgscraper.distributed.leases.SharedSlotsDownloader",
                         priority=settings.getpriority("DOWNLOADER") or "addon")
        # Several workers: the first to finish must not clear the shared queue.
        settings.set("SCHEDULER_PERSIST", True, priority="addon")
        # Close to the engine: it sees what the other spider middlewares let through.
        settings.set_in_component_priority_dict("SPIDER_MIDDLEWARES", SharedImagesMiddleware, 50)
        # SharedImagesMiddleware deduplicates images across the workers: the spider yields every reference.
        # The page budget is the crawl's, counted by the shared scheduler in Redis: the spider's own
        # counts the links one process found, and would stop following them early.
        for name in ("IMGSCRAPER_UNIQUE_IMAGES", "IMGSCRAPER_SPIDER_PAGE_BUDGET"):
            settings.set(name, False, priority=settings.getpriority(name) or "addon")
        # A host's robots.txt fetched once for the crawl; before RobotsTxtMiddleware (100), which it serves.
        settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", SharedRobotsTxtMiddleware, 90)
        # CLOSESPIDER_* limits for the whole crawl (imgscraper.distributed.closespider).
        settings.set_in_component_priority_dict("EXTENSIONS", CloseSpider, None)
        settings.set_in_component_priority_dict("EXTENSIONS", SharedCloseSpider, 0)
        # max_images for the whole crawl (imgscraper.distributed.imagelimit).
        settings.set_in_component_priority_dict("EXTENSIONS", ImageLimit, None)
        settings.set_in_component_priority_dict("EXTENSIONS", SharedImageLimit, 0)
        # IMGSCRAPER_NEAR_DUPLICATES=skip compares with what every worker stored (at the project's priority, as above).
        settings.set("IMGSCRAPER_NEAR_DUPLICATE_CLAIMS", "imgscraper.distributed.nearduplicates.SharedNearDuplicateClaims",
                     priority=settings.getpriority("IMGSCRAPER_NEAR_DUPLICATE_CLAIMS") or "addon")

    @staticmethod
    def _valid_settings(settings: Settings) -> bool:
        try:
            return settings.getfloat("IMGSCRAPER_REDIS_WORKER_TIMEOUT") >= 1 and settings.getint("IMGSCRAPER_WORKERS") >= 1
        except (TypeError, ValueError):
            return False
