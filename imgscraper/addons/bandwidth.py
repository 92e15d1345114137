"""``IMGSCRAPER_MAX_RATE`` set: responses read at that pace (:mod:`imgscraper.bandwidth`).

:class:`BandwidthLimit` is a Scrapy add-on: it gives ``http`` and ``https`` to
:class:`~imgscraper.bandwidth.PacedHTTP11DownloadHandler` where they have
Scrapy's HTTP/1.1 handler. A scheme given to a handler of your own keeps it,
unpaced, with one ``WARNING``. Unset: nothing changes.
"""

from __future__ import annotations

import contextlib
import logging

from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.settings import Settings
from scrapy.utils.misc import load_object

from imgscraper.bandwidth import PacedHTTP11DownloadHandler, max_rate

__all__ = ["BandwidthLimit"]

logger = logging.getLogger(__name__)

PACED_HANDLER = "imgscraper.bandwidth.PacedHTTP11DownloadHandler"


class BandwidthLimit:
    """Add-on that paces the reading of responses (see the module docstring)."""

    def update_settings(self, settings: Settings) -> None:
        try:
            rate = max_rate(settings)
        except ValueError:
            return  # imgscraper.addons.settingscheck refuses the crawl, in one line
        if not rate:
            return
        handlers = settings.getdict("DOWNLOAD_HANDLERS")
        paced = []
        for scheme, handler in settings.getwithbase("DOWNLOAD_HANDLERS").items():
            if scheme not in ("http", "https") or handler is None:
                continue  # None: the scheme is off (or the crawl refused by the settings check)
            handlercls = None
            with contextlib.suppress(AttributeError, ImportError, NameError, ValueError):
                handlercls = load_object(handler)
            if handlercls in (HTTP11DownloadHandler, PacedHTTP11DownloadHandler):
                handlers[scheme] = PACED_HANDLER
                paced.append(scheme)
            else:
                logger.warning("IMGSCRAPER_MAX_RATE does not pace %s: DOWNLOAD_HANDLERS gives it to %s, not to "
                               "Scrapy's HTTP/1.1 handler", scheme, handler)
        if paced:
            # At the priority of the project's value, which ranks above add-ons.
            settings.set("DOWNLOAD_HANDLERS", handlers, priority=settings.getpriority("DOWNLOAD_HANDLERS") or "addon")
            logger.info("Reading %s responses at %s bytes/s at most (IMGSCRAPER_MAX_RATE)", " and ".join(sorted(paced)),
                        f"{rate:,}")
