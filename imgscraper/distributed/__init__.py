"""One crawl shared by any number of workers through Redis.

Turned on by ``IMGSCRAPER_REDIS_URL``, or by ``IMGSCRAPER_WORKERS > 1`` (local workers
through a private Redis, :mod:`imgscraper.distributed.workers`); the add-on
:class:`imgscraper.addons.distributed.DistributedCrawl` installs these components, and
nothing here is imported otherwise. Pages go
through one shared queue and duplicate filter (scrapy-redis); images, which
Scrapy's media pipeline fetches without its scheduler, are claimed in Redis
so that each is fetched and stored by one worker only.

Workers agree on a crawl by its id, ``IMGSCRAPER_CRAWL_ID`` or, when empty,
one derived from the spider and its arguments (the same command on every
machine is the same crawl). A worker *joins* the crawl if it is running or
was interrupted (it resumes), and *starts it afresh* (empty queue, empty
duplicate filter, no claims) if the last run of that id finished: a
scheduled re-crawl needs nothing but being started again.

Workers talk to Redis through redis-py's asyncio client, on the event loop of
Twisted's asyncio reactor: no worker waits for Redis with its event loop
stopped. ``IMGSCRAPER_MAX_PAGES``, ``max_images`` and Scrapy's ``CLOSESPIDER_*``
limits are counted in Redis: they hold for the crawl as a whole.

A crawl is finished when no page is queued and no worker holds a page.
A worker holds each page it takes (moved atomically from the queue to its
own ``taken`` hash) until the page's links are queued and its images are
done. Workers exit only then, not when their own queue is momentarily
empty. A worker that stops sending heartbeats for
``IMGSCRAPER_REDIS_WORKER_TIMEOUT`` seconds counts as dead: another worker
puts its pages back in the queue, and may take over its image claims.

The components:

* :mod:`~imgscraper.distributed.crawl`: :class:`~imgscraper.distributed.crawl.SharedCrawl`,
  this worker's membership of the crawl in Redis, and the Redis keys;
* :mod:`~imgscraper.distributed.ledger`: :class:`~imgscraper.distributed.ledger.WorkLedger`,
  the pages this worker holds until everything they yielded is through;
* :mod:`~imgscraper.distributed.scheduler`: :class:`~imgscraper.distributed.scheduler.SharedScheduler`,
  scrapy-redis's scheduler with held pages and an end all workers agree on;
* :mod:`~imgscraper.distributed.middleware`:
  :class:`~imgscraper.distributed.middleware.SharedImagesMiddleware`, the spider
  middleware through which each image is passed on by one worker only;
* :mod:`~imgscraper.distributed.leases`: :class:`~imgscraper.distributed.leases.SharedSlotsDownloader`,
  download slots whose limits hold across the workers;
* :mod:`~imgscraper.distributed.closespider`: :class:`~imgscraper.distributed.closespider.SharedCloseSpider`,
  Scrapy's ``CLOSESPIDER_*`` limits for the whole crawl;
* :mod:`~imgscraper.distributed.imagelimit`: :class:`~imgscraper.distributed.imagelimit.SharedImageLimit`,
  ``max_images`` for the whole crawl;
* :mod:`~imgscraper.distributed.nearduplicates`:
  :class:`~imgscraper.distributed.nearduplicates.SharedNearDuplicateClaims`, near-duplicates across the workers;
* :mod:`~imgscraper.distributed.robotstxt`: :class:`~imgscraper.distributed.robotstxt.SharedRobotsTxtMiddleware`,
  each host's robots.txt fetched once for the crawl;
* :mod:`~imgscraper.distributed.workers`: the local workers of ``IMGSCRAPER_WORKERS`` and their lead.
"""
