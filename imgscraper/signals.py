"""imgscraper's own signals, sent with ``crawler.signals.send_catch_log`` as Scrapy's own.

Components that count or report failures listen to these instead of reading log records.
"""

#: An image was not stored: sent by the store pipeline once per image it fails or skips.
#: Arguments: ``url`` (the image URL), ``page`` (the page that named it, or ''), ``status``
#: (``failed`` or ``skipped``), ``reason`` (a slug of :mod:`imgscraper.exceptions`' vocabulary),
#: ``detail`` (what went wrong, for people; may be '').
image_failed = object()

#: A page could not be fetched or read: sent by the spider once per page.
#: Arguments: ``url``, ``reason``, ``detail`` (as for :data:`image_failed`), ``start_page``
#: (True for a start page: the spider logs it as an ERROR, and the crawl fails).
page_failed = object()

#: A host stopped answering: its requests fail at once until it answers a probe. Arguments:
#: ``host`` (``name`` or ``name:port``), ``reason`` (the last failure's).
host_down = object()
