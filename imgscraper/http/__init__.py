"""HTTP pieces that are not Scrapy components (as :mod:`scrapy.http`): cookies files."""
