"""The baseline users have today: a plain spider with Scrapy's ImagesPipeline.

``scrapy runspider bench/stock_spider.py -a url=URL -s IMAGES_STORE=DIR``,
run outside the project so that Scrapy's stock settings apply.
"""

import scrapy


class StockImagesSpider(scrapy.Spider):
    name = "stock_images"
    custom_settings = {
        "ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1},
        "DEPTH_LIMIT": 2,
    }

    def __init__(self, url: str, **kwargs):
        super().__init__(**kwargs)
        self.start_urls = [url]

    def parse(self, response):
        yield {"image_urls": [response.urljoin(src) for src in response.css("img::attr(src)").getall()]}
        for href in response.css("a::attr(href)").getall():
            if href.endswith(".html"):
                yield response.follow(href)
