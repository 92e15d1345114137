"""Originals: the full-size image a thumbnail URL stands for, by rewrite rules.

CMSs and image CDNs name a rendition of an image by writing its size or its
transformations into the URL of the original: ``photo-300x200.jpg`` for
``photo.jpg``, ``?resize=300,200``, ``/w_300,c_fill/``. Each :class:`Rule` is
data: a regular expression matched against a whole URL and its replacement (a
template of ``re.sub``'s, or a function of the match where query parameters are
taken apart). :data:`RULES` holds the built-in ones, each with what it covers;
:func:`parse_rules` reads the user's (``IMGSCRAPER_ORIGINALS_RULES``), which go
first; :func:`find_original` applies rules in order, each once, to what the ones
before made. A rule that leaves a URL as it was did not apply.

A rewritten URL is a guess: the spider requests it, and the store pipeline
falls back to the URL the page named when the guess fails
(:mod:`imgscraper.pipelines.images`). Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from w3lib.url import url_query_cleaner

from imgscraper.discovery.references import ImageRef
from imgscraper.discovery.urls import is_image_url

__all__ = ["RULES", "Rule", "find_original", "original_ref", "parse_rules"]


@dataclass(frozen=True)
class Rule:
    """Rewrite a URL that ``pattern`` matches whole with ``replacement`` (``re.sub``'s template,
    or a function of the match returning the new URL). ``covers`` says what, in words."""

    name: str
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    covers: str = ""

    def apply(self, url: str) -> str:
        """``url`` rewritten, or as it was when the rule does not match it."""
        return self.pattern.sub(self.replacement, url, count=1)


def find_original(url: str, rules: Sequence[Rule]) -> tuple[str, tuple[str, ...]]:
    """The URL of the original ``url`` is a rendition of, and the names of the rules that
    changed it (none: ``url`` itself). A ``data:`` URI is its own original."""
    applied = []
    if not url.startswith("data:"):
        for rule in rules:
            rewritten = rule.apply(url)
            if rewritten != url:
                url = rewritten
                applied.append(rule.name)
    return url, tuple(applied)


def original_ref(ref: ImageRef, rules: Sequence[Rule] | None) -> tuple[ImageRef, str]:
    """``ref`` for the original of the image it names and the URL the page named, when one of
    ``rules`` applies; else ``ref`` and ``""`` (also for no ``rules``: originals are off)."""
    url, applied = find_original(ref.url, rules or ())
    return (dataclasses.replace(ref, url=url), ref.url) if applied else (ref, "")


def parse_rules(value: Any) -> tuple[Rule, ...]:
    """``IMGSCRAPER_ORIGINALS_RULES``: a JSON object (a dict in ``settings.py``) of regular
    expressions, searched in each image URL, to their replacements (``re.sub``'s: ``\\1`` or
    ``\\g<name>`` for a group), kept in order. Empty: none. Raises ``ValueError("is not ...")``
    or ``ValueError("has ...")`` for a wrong value, a bad expression or a bad group reference."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, Mapping):
        raise ValueError("is not a JSON object of regular expressions to replacements")
    rules = []
    for number, (pattern, replacement) in enumerate(value.items(), 1):
        if not isinstance(replacement, str):
            raise ValueError(f"has a replacement that is not text for {pattern!r}")
        try:
            compiled = re.compile(pattern)
            compiled.sub(replacement, "")  # a group the expression lacks is an error without a match too
        except re.error as exc:
            raise ValueError(f"has a bad rule {pattern!r} -> {replacement!r} ({exc})") from None
        rules.append(Rule(f"rule-{number}", compiled, replacement, f"IMGSCRAPER_ORIGINALS_RULES: {pattern}"))
    return tuple(rules)


# -- the functions some rules replace with ---------------------------------------------------


def _parameters(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


#: Photon's and WordPress.com's parameters that resize, crop or filter (developer.wordpress.com/docs/photon/api/).
_PHOTON_PARAMETERS = (
    "w", "h", "resize", "fit", "crop", "zoom", "quality", "strip", "lb", "ulb", "filter", "brightness", "contrast",
    "colorize", "smooth",
)


def _photon_origin(match: re.Match[str]) -> str:
    """``i0.wp.com/example.com/a.jpg?resize=300,200&ssl=1``: the image Photon resized, on its own
    site (``ssl=1``: over https). Left alone without a size parameter: the full size already."""
    parameters = _parameters(match["query"])
    if not parameters.keys() & set(_PHOTON_PARAMETERS):
        return match[0]
    scheme = "https" if parameters.get("ssl") == "1" else "http"
    return f"{scheme}://{match['origin']}"


def _without(names: Sequence[str]) -> Callable[[re.Match[str]], str]:
    """A replacement that drops the query parameters ``names`` from the matched URL."""

    def drop(match: re.Match[str]) -> str:
        return url_query_cleaner(match[0], names, remove=True, unique=False, keep_fragments=True)

    return drop


def _mediawiki_original(match: re.Match[str]) -> str:
    """The file a MediaWiki thumbnail renders, when that file is an image (not a PDF page or a video frame)."""
    return f"{match['base']}/{match['hash']}/{match['file']}" if is_image_url(match["file"]) else match[0]


def _imgix_original(match: re.Match[str]) -> str:
    """An imgix URL without its rendering parameters, unless signed (``s=``: any change breaks the signature)."""
    parameters = _parameters(match["query"])
    on_imgix = (urlsplit(match[0]).hostname or "").endswith(".imgix.net")
    if (on_imgix or "ixlib" in parameters) and "s" not in parameters:
        return match["url"]
    return match[0]


def _squarespace_original(match: re.Match[str]) -> str:
    """A Squarespace image without its ``format=<width>w`` rendition (no ``format``: the original)."""
    if re.fullmatch(r"\d+w", _parameters(match["query"]).get("format", "")):
        return url_query_cleaner(match[0], ["format"], remove=True, unique=False, keep_fragments=True)
    return match[0]


# -- the built-in rules -------------------------------------------------------------------------

# Shared: an image file's extension and what follows it, kept; a query that is dropped.
_IMAGE_EXTENSION = r"\.(?i:jpe?g|png|gif|webp|avif)"
_KEPT_EXTENSION = rf"(?P<rest>{_IMAGE_EXTENSION}(?:[?#].*)?)$"
_DROPPED_QUERY = r"(?:\?[^#]*)?$"
# Jetpack's Photon, WordPress.com, WordPress's uploads.
_PHOTON = re.compile(r"^https?://i[0-3]\.wp\.com/(?P<origin>[^?#]+)\?(?P<query>[^#]*)$")
_WORDPRESS_COM = re.compile(r"^https?://[\w-]+\.files\.wordpress\.com/[^?#]+\?[^#]*$")
_WORDPRESS = re.compile(rf"^(?P<file>https?://[^?#]*/wp-content/uploads/[^?#]*?)-(?:\d+x\d+|scaled)(?:@\d+x)?{_KEPT_EXTENSION}")
# MediaWiki: /thumb/<first hex digit of the name's MD5>/<first two>/<name>/<width>px-<name>[.png].
_MEDIAWIKI_HASH = r"(?P<hash>(?P<h1>[0-9a-f])/(?P=h1)[0-9a-f])"
_MEDIAWIKI_THUMB = r"(?:[\w-]*-)?\d+px-[^/?#]+"
_MEDIAWIKI = re.compile(rf"^(?P<base>https?://[^?#]+)/thumb/{_MEDIAWIKI_HASH}/(?P<file>[^/?#]+)/{_MEDIAWIKI_THUMB}{_DROPPED_QUERY}")
# Blogger and Google user content: a size path segment, or size options after "=".
_BLOGGER_HOSTS = r"\d+\.bp\.blogspot\.com|blogger\.googleusercontent\.com|lh\d+\.(?:googleusercontent|ggpht)\.com"
_GOOGLE_SIZE = r"[swh]\d+(?:-[a-z0-9]+)*"
_BLOGGER = re.compile(rf"^(?P<before>https?://(?:{_BLOGGER_HOSTS})/[^?#]*/){_GOOGLE_SIZE}(?P<file>/[^/?#]+)$")
_GOOGLEUSERCONTENT = re.compile(rf"^(?P<image>https?://(?:blogger|lh\d+)\.googleusercontent\.com/[^?#=]+)={_GOOGLE_SIZE}$")
# Medium: operations (max/800, resize:fit:1400, format:webp) before the image id (1*..., 0*...).
_MEDIUM_OPERATIONS = r"(?:(?:max|fit|c|\d+|[a-z]+:[^/?#]*)/)+"
_MEDIUM = re.compile(rf"^(?P<host>https?://(?:miro|cdn-images-\d)\.medium\.com/)(?P<v2>v2/)?{_MEDIUM_OPERATIONS}"
                     rf"(?P<image>\d(?:\*|%2[aA])[^/?#]+){_DROPPED_QUERY}")
_GUARDIAN = re.compile(rf"^https?://i\.guim\.co\.uk/img/(?P<bucket>media|static|uploads)/(?P<path>[^?#]+){_DROPPED_QUERY}")
#: NYT's renditions (static01.nyt.com), all but superJumbo, the largest one published.
_NYT_RENDITIONS = (
    "articleLarge", "articleInline", "popup", "jumbo", "thumbStandard", "thumbLarge", "thumbWide", "blog\\d+",
    "master\\d+", "mediumThreeByTwo\\d+", "mediumSquare\\d+", "mediumSquareAt3X", "square\\d+", "threeByTwo\\w+",
    "videoSixteenByNine\\w*", "videoLarge", "facebookJumbo", "hpLarge", "hpSmall", "sfSpan", "filmstrip",
    "verticalTwoByThree\\d+", "googleFourByThree", "watch\\d+",
)
_NYT = re.compile(rf"^(?P<name>https?://static\d*\.(?:nyt|nytimes)\.com/images/[^?#]*?)-(?:{'|'.join(_NYT_RENDITIONS)})"
                  rf"(?P<extension>\.(?:jpg|jpeg|png|gif)){_DROPPED_QUERY}")
# Shopify: on its CDN and on shops' own hosts (/cdn/shop/).
_SHOPIFY_FILES = r"https?://(?:cdn\.shopify\.com/s/files/|[^/?#]+/cdn/shop/)"
_SHOPIFY_SIZE = r"_(?:\d+x\d*|x\d+|pico|icon|thumb|small|compact|medium|large|grande)(?:_crop_[a-z]+)?(?:@\d+x)?"
_SHOPIFY = re.compile(rf"^(?P<name>{_SHOPIFY_FILES}[^?#]*?){_SHOPIFY_SIZE}{_KEPT_EXTENSION}")
_SHOPIFY_PARAMETERS = re.compile(rf"^{_SHOPIFY_FILES}[^?#]+\?[^#]*$")
#: Cloudinary's transformation parameters (cloudinary.com/documentation/transformation_reference).
_CLOUDINARY_KEYS = (
    "a", "ac", "af", "ar", "b", "bo", "br", "c", "co", "cs", "d", "dl", "dn", "dpr", "du", "e", "eo", "f", "fl", "fn",
    "fps", "g", "h", "if", "ki", "l", "o", "p", "pg", "q", "r", "so", "sp", "t", "u", "vc", "vs", "w", "x", "y", "z",
)
_CLOUDINARY_STEP = rf"(?:{'|'.join(_CLOUDINARY_KEYS)})_[^/,?#]+"
_CLOUDINARY_UPLOAD = r"https?://res(?:-\d)?\.cloudinary\.com/[^/?#]+/image/upload/"
_CLOUDINARY = re.compile(rf"^(?P<upload>{_CLOUDINARY_UPLOAD})(?:{_CLOUDINARY_STEP}(?:,{_CLOUDINARY_STEP})*/)+(?P<image>[^?#]+)$")
# Squarespace; imgix, which may be on any host.
_SQUARESPACE = re.compile(r"^https?://(?:images\.squarespace-cdn\.com|static\d*\.squarespace\.com)/[^?#]+\?(?P<query>[^#]*)$")
_ANY_QUERY = re.compile(r"^(?P<url>https?://[^?#]+)\?(?P<query>[^#]*)$")

#: The built-in rules, in the order they apply (Photon first: its origin may be a WordPress rendition).
RULES: tuple[Rule, ...] = (
    Rule("photon", _PHOTON, _photon_origin, "Photon (i0-i3.wp.com) sized by resize, fit, w, h: the origin's file"),
    Rule("wordpress-com", _WORDPRESS_COM, _without(_PHOTON_PARAMETERS), "*.files.wordpress.com: no w, h, resize..."),
    Rule("wordpress", _WORDPRESS, r"\g<file>\g<rest>", "wp-content/uploads/: photo-300x200.jpg, photo-scaled.jpg"),
    Rule("mediawiki", _MEDIAWIKI, _mediawiki_original, "MediaWiki, Wikimedia: /thumb/a/a9/Name.jpg/320px-Name.jpg"),
    Rule("blogger", _BLOGGER, r"\g<before>s0\g<file>", "Blogger, Google user content: /s640/, /w400-h300/ -> /s0/"),
    Rule("googleusercontent", _GOOGLEUSERCONTENT, r"\g<image>=s0", "Google user content: =w400-h300, =s640 -> =s0"),
    Rule("medium", _MEDIUM, r"\g<host>\g<v2>\g<image>", "Medium: /max/800/, /v2/resize:fit:1400/format:webp/ dropped"),
    Rule("guardian", _GUARDIAN, r"https://\g<bucket>.guim.co.uk/\g<path>", "i.guim.co.uk/img/media/ -> media.guim.co.uk/"),
    Rule("nyt", _NYT, r"\g<name>-superJumbo\g<extension>", "NYT renditions (-articleLarge, -jumbo...) -> -superJumbo"),
    Rule("shopify", _SHOPIFY, r"\g<name>\g<rest>", "Shopify's _300x300, _x600, _grande... (cdn.shopify.com, /cdn/shop/)"),
    Rule("shopify-parameters", _SHOPIFY_PARAMETERS, _without(("width", "height", "crop")), "Shopify's width, height"),
    Rule("cloudinary", _CLOUDINARY, r"\g<upload>\g<image>", "Cloudinary: /upload/c_fill,w_300/ dropped; not signed URLs"),
    Rule("squarespace", _SQUARESPACE, _squarespace_original, "Squarespace: ?format=500w dropped"),
    Rule("imgix", _ANY_QUERY, _imgix_original, "imgix (*.imgix.net, ixlib=: Unsplash): no parameters; not signed URLs"),
)
