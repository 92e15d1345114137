"""Downloader middlewares (``DOWNLOADER_MIDDLEWARES``): what every request and response goes through."""
