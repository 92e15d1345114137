"""imgscraper: a Scrapy project that downloads every image of a site."""

#: The one place the version is written: setup.py and the User-Agent read it.
__version__ = "0.1"
