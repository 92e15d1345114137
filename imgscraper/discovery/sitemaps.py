"""Reading sitemaps: the pages a site lists, and the images an image sitemap lists with them.

Scrapy's own sitemap utilities do the parsing (:class:`scrapy.utils.sitemap.Sitemap`,
:func:`scrapy.utils.gz.gunzip`, :func:`scrapy.utils.sitemap.sitemap_urls_from_robots`),
as :class:`scrapy.spiders.SitemapSpider` uses them. ``Sitemap`` keeps one text
per child element of a ``<url>``, so it drops the ``<image:loc>`` inside an
``<image:image>``: :class:`ImageSitemap` reads those from the same tree first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from lxml import etree
from scrapy.http import Response, XmlResponse
from scrapy.utils._compression import _DecompressionMaxSizeExceeded
from scrapy.utils.gz import gunzip, gzip_magic_number
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

__all__ = ["ImageSitemap", "SitemapContents", "read_sitemap", "robots_txt_url", "sitemap_body", "sitemaps_in_robots_txt"]

#: ``<image:image><image:loc>`` under a ``<url>``, whatever prefix the namespace has.
_IMAGE_LOCS = etree.XPath("./*[local-name()='image']/*[local-name()='loc']/text()")


class ImageSitemap(Sitemap):
    """Scrapy's :class:`~scrapy.utils.sitemap.Sitemap` whose ``<url>`` entries carry the
    ``images`` (``<image:loc>`` texts) an image sitemap lists for the page."""

    def _process_sitemap_element(self, elem: etree._Element) -> dict[str, Any] | None:
        images = [text.strip() for text in _IMAGE_LOCS(elem) if text.strip()]
        entry = super()._process_sitemap_element(elem)
        if entry is not None and images:
            entry["images"] = images
        return entry


@dataclass
class SitemapContents:
    """What one sitemap file lists: more sitemaps (an index), or pages, each with the
    image URLs listed for it (absolute, in the order listed)."""

    sitemaps: list[str] = field(default_factory=list)
    pages: dict[str, list[str]] = field(default_factory=dict)


def sitemap_body(response: Response, max_size: int = 0) -> bytes | None:
    """The XML of a sitemap response, gunzipped when it is gzipped (``.xml.gz``), or None
    when it is no sitemap or unzips to more than ``max_size`` bytes (0: no limit).

    As ``SitemapSpider._get_sitemap_body``: a gzip file, an XML response, or a body at a
    ``.xml``/``.xml.gz`` URL (one the HTTP compression middleware already unzipped). The
    gzip magic number is looked at first: servers send ``.xml.gz`` files as XML too.
    """
    if gzip_magic_number(response):
        try:
            return gunzip(response.body, max_size=max_size)
        except (_DecompressionMaxSizeExceeded, OSError, EOFError):
            return None
    if isinstance(response, XmlResponse):
        return response.body
    if response.url.split("?")[0].endswith((".xml", ".xml.gz")):
        return response.body
    return None


def read_sitemap(body: bytes, base_url: str) -> SitemapContents | None:
    """The sitemaps (an index) or pages and images (a ``urlset``) that ``body`` lists,
    relative URLs resolved against ``base_url``; None when it is not a sitemap."""
    try:
        sitemap = ImageSitemap(body)
    except (etree.XMLSyntaxError, StopIteration):
        return None
    contents = SitemapContents()
    if sitemap.type == "sitemapindex":
        contents.sitemaps = [urljoin(base_url, entry["loc"]) for entry in sitemap if entry["loc"]]
    elif sitemap.type == "urlset":
        for entry in sitemap:
            if entry["loc"]:
                images = [urljoin(base_url, image) for image in entry.get("images", ())]
                contents.pages.setdefault(urljoin(base_url, entry["loc"]), []).extend(images)
    else:
        return None
    return contents


def robots_txt_url(url: str) -> str:
    """The robots.txt of the site of ``url``."""
    return urljoin(url, "/robots.txt")


def sitemaps_in_robots_txt(body: bytes, base_url: str) -> list[str]:
    """The ``Sitemap:`` URLs of a robots.txt, once each, in order."""
    return list(dict.fromkeys(sitemap_urls_from_robots(body, base_url=base_url)))
