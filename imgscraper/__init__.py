"""imgscraper: a Scrapy project that downloads every image of a site."""
