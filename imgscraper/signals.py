"""imgscraper's own signals, sent with ``crawler.signals.send_catch_log`` as Scrapy's own.

Components that count or report failures listen to these instead of reading log records.
"""

#: An image was not stored. Arguments: ``url`` (the image URL), ``page`` (the page that named it),
#: ``status`` (``failed`` or ``skipped``), ``reason`` (a slug of :mod:`imgscraper.exceptions`'
#: vocabulary).
image_failed = object()

#: A page could not be fetched or read. Arguments: ``url``, ``reason``.
page_failed = object()
