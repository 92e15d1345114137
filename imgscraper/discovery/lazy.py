"""Images of lazy-loading scripts: the URLs they keep in ``data-*`` attributes (and a few others) until shown.

Each reader takes one attribute, as the XPath expression next to it selects it
(an lxml "smart string", which knows its name and element), and the srcset mode.
"""

from __future__ import annotations

import re

from lxml import etree
from w3lib.html import strip_html5_whitespace

from imgscraper.discovery.css import css_image_urls
from imgscraper.discovery.scripts import json_strings, load_json
from imgscraper.discovery.srcset import SrcsetCandidate, parse_srcset, pick_srcset_candidates
from imgscraper.discovery.urls import (
    has_whitespace,
    is_image_reference,
    is_image_url,
    is_non_image_file,
    looks_like_url,
)

__all__ = ["DATA_ATTRIBUTES", "OTHER_IMG_ATTRIBUTES", "data_attribute_urls", "other_img_attribute_urls"]

#: Attributes of lazy-loading scripts that hold an image URL.
_LAZY_ATTRIBUTES = frozenset(
    {
        "data-src",
        "data-original",
        "data-lazy-src",
        "data-lazy",
        "data-url",
        "data-hi-res-src",
        "data-full-src",
        "data-zoom-image",
        "data-large_image",
        "data-bg",
        "data-background",
        "data-background-image",
        "data-image",
        "data-echo",
    }
)
#: Words that make a data-* attribute name look like it holds an image.
_IMAGE_WORDS = re.compile("src|img|image|bg|background|original|lazy|thumb|full|zoom")
#: Names of data-* attributes holding a srcset (vanilla-lazyload's ``data-original-set``).
_SRCSET_NAME = re.compile("srcset|-set$")
#: Where a list of URLs splits: lozad's ``data-background-image="a.jpg,b.jpg"``,
#: bLazy's ``data-src="small.jpg|retina.jpg"``. A comma counts only before the start
#: of a URL: image CDNs put commas inside their paths (``/w_200,h_100/``).
_URL_LIST_SEPARATOR = re.compile(r"[\t\n\f\r ]*[|,][\t\n\f\r ]*(?=(?:https?:)?//|\.{0,2}/)")
#: lazysizes' bgset: srcsets separated by "|", each with an optional "[media]" after it.
_BGSET_SET = re.compile(r"(?P<srcset>[^|\[]*)(?:\[[^\]]*\]?)?[^|]*\|?")
#: Elements whose data-* URLs are for videos, frames, scripts and such,
#: unless they name an image file.
_NON_IMAGE_ELEMENTS = frozenset(
    "iframe frame script video audio track embed object link meta".split()
)
_IMAGE_ELEMENTS = frozenset({"img", "amp-img", "amp-anim", "source"})
#: <img> attributes read elsewhere or holding text (``alt="IMG_0042.JPG"`` is a caption).
_IMG_NON_URL_ATTRIBUTES = frozenset({"src", "srcset", "alt", "title", "longdesc", "class", "id", "style"})
#: lazysizes' rias plugin (Shopify themes): ``data-src="photo_{width}x.jpg"`` and
#: ``data-widths="[180, 360, 540]"`` on the same element.
_WIDTH_PLACEHOLDER = "{width}"

#: The ``data-*`` attributes :func:`data_attribute_urls` reads: every image URL has
#: a "/" or a ".", most data-* values have neither.
DATA_ATTRIBUTES = etree.XPath("//@*[starts-with(name(), 'data-')][contains(., '/') or contains(., '.')]")
#: The plain ``<img>`` attributes :func:`other_img_attribute_urls` reads: lazy loaders of old,
#: NitroPack and forum software (Discuz!) use them too: ``<img lazy-src="...">``,
#: ``<img nitro-lazy-src="...">``, ``<img file="..." zoomfile="...">``.
OTHER_IMG_ATTRIBUTES = etree.XPath(
    "//img/@*[not(starts-with(name(), 'data-'))][contains(., '.')]"
    f"[not({' or '.join(f'name() = {name!r}' for name in sorted(_IMG_NON_URL_ATTRIBUTES))})]"
)


def data_attribute_urls(attribute: etree._ElementUnicodeResult, srcset_mode: str) -> list[str | SrcsetCandidate]:
    """Return the image URLs in the value of a ``data-*`` *attribute*."""
    name, tag = attribute.attrname, attribute.getparent().tag
    value = strip_html5_whitespace(attribute)
    if value.startswith(("{", "[")):
        return [
            url for url in json_strings(load_json(value)) if is_image_reference(url)
        ]
    if "bgset" in name:
        return [
            url
            for match in _BGSET_SET.finditer(value)
            for url in pick_srcset_candidates(parse_srcset(match["srcset"]), srcset_mode)
        ]
    if "url(" in value.lower():  # CSS: url(a.jpg), url(b.jpg); background-image: url(c.jpg)
        urls = css_image_urls(value)
    elif _SRCSET_NAME.search(name):
        candidates = [
            c for c in pick_srcset_candidates(parse_srcset(value), srcset_mode) if not is_non_image_file(c.url)
        ]
        if not any(_WIDTH_PLACEHOLDER in c.url for c in candidates):
            return candidates
        urls = [c.url for c in candidates]
    else:
        urls = [
            url
            for url in _URL_LIST_SEPARATOR.split(value)
            if is_image_reference(url) or (_names_image_attribute(tag, name) and looks_like_url(url))
        ]
    urls = [url for url in urls if not is_non_image_file(url)]
    if any(_WIDTH_PLACEHOLDER in url for url in urls):
        return _fill_width(urls, attribute.getparent().get("data-widths"), srcset_mode)
    return urls


def other_img_attribute_urls(attribute: etree._ElementUnicodeResult, srcset_mode: str) -> list[str | SrcsetCandidate]:
    """Return the image file URL an ``<img>`` attribute other than ``src``,
    ``srcset`` and ``data-*`` holds, if any (the srcset's, if its name says so)."""
    if attribute.attrname.startswith(("on", "aria-")):
        return []
    if "srcset" in attribute.attrname:  # NitroPack's nitro-lazy-srcset
        return pick_srcset_candidates(parse_srcset(attribute), srcset_mode)
    value = strip_html5_whitespace(attribute)
    return [value] if is_image_url(value) and not has_whitespace(value) else []


def _fill_width(urls: list[str], widths_value: str | None, srcset_mode: str) -> list[str]:
    """*urls* with their ``{width}`` replaced by the largest of the element's ``data-widths``
    (each of them for ``"all"``); a URL left with the placeholder cannot be fetched."""
    widths = load_json(widths_value or "")
    widths = sorted({w for w in widths if isinstance(w, int) and w > 0}) if isinstance(widths, list) else []
    if srcset_mode == "largest":
        widths = widths[-1:]
    filled = []
    for url in urls:
        filled += [url.replace(_WIDTH_PLACEHOLDER, str(w)) for w in widths] if _WIDTH_PLACEHOLDER in url else [url]
    return filled


def _names_image_attribute(tag: str, name: str) -> bool:
    """Tell whether the ``data-*`` attribute *name* of a *tag* element is
    likely to hold an image URL. ``data-url`` counts on images only: on
    other elements it is mostly a share or navigation link.
    """
    if tag in _NON_IMAGE_ELEMENTS:
        return False
    if name == "data-url":
        return tag in _IMAGE_ELEMENTS
    return name in _LAZY_ATTRIBUTES or bool(_IMAGE_WORDS.search(name, len("data-")))
