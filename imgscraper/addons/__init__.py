"""Scrapy add-ons (``ADDONS``): the settings check, the shared crawl, the User-Agent."""
