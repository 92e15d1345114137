"""The floor inside Scrapy: its engine and downloader alone over the plain image list.

``scrapy runspider bench/bare_spider.py -a urls=FILE [-a part=K -a parts=N]``
requests every URL of a JSON list (the N-th part of it) and writes each body
to a file: no page to parse, no pipeline, no validation, no record. Run with
imgscraper's transport (Scrapy's HTTP/1.1 handler on the asyncio reactor), it
is what any crawl inside Scrapy's architecture costs at least.
"""

import json
from pathlib import Path

import scrapy


class BareSpider(scrapy.Spider):
    name = "bare"
    custom_settings = {"ROBOTSTXT_OBEY": False, "TELNETCONSOLE_ENABLED": False}

    def __init__(self, urls: str, out: str, part: str = "0", parts: str = "1", **kwargs):
        super().__init__(**kwargs)
        self.urls = json.loads(Path(urls).read_text())[int(part) :: int(parts)]
        self.out = Path(out)
        self.prefix = part

    async def start(self):
        for n, url in enumerate(self.urls):
            yield scrapy.Request(url, cb_kwargs={"name": f"{self.prefix}-{n}"})

    def parse(self, response, name: str):
        (self.out / name).write_bytes(response.body)
