"""A bare Scrapy spider over a list of pages: the memory floor of a broad crawl in listing mode.

``scrapy runspider bench/bare_pages_spider.py -a urls_file=FILE -O items.jsonl`` requests every
page of the file (one URL a line) and yields one item per image reference that parsel's CSS
selectors find (``src``, ``data-src``, ``srcset``): no pipeline, no record, no deduplication.
"""

from pathlib import Path

import scrapy


class BarePagesSpider(scrapy.Spider):
    name = "bare-pages"
    custom_settings = {"TELNETCONSOLE_ENABLED": False}

    def __init__(self, urls_file: str, **kwargs):
        super().__init__(**kwargs)
        self.urls = Path(urls_file).read_text().split()

    async def start(self):
        for url in self.urls:
            yield scrapy.Request(url)

    def parse(self, response):
        for value in response.css("img::attr(src), img::attr(data-src)").getall():
            yield {"url": response.urljoin(value), "page": response.url}
        for srcset in response.css("img::attr(srcset), source::attr(srcset)").getall():
            for candidate in srcset.split(","):
                if candidate.strip():
                    yield {"url": response.urljoin(candidate.split()[0]), "page": response.url}
