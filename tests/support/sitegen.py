"""Generate a small, deterministic test web site for the ``images`` spider.

``generate_site(root, base_url=..., unreachable_url=...)`` writes HTML
pages, images (made with Pillow from fixed seeds) and ``robots.txt`` under
``root`` and returns a :class:`Site` saying what a perfect crawler started
at ``base_url`` must find.

Pages (start URL is ``base_url``, which serves ``index.html``)::

    depth 0   /              index.html
    depth 1   /a.html /b.html
    depth 2   /deep/c.html   (linked from a.html)
    depth 3   /deep/d.html   (linked from c.html)

plus links back to ``/`` (cycles) and a link to a page on another site
(``other_url + "other.html"``, or a page on the unreachable host), which
must not be followed.

Every URL below is absolute, exactly as a crawler resolving the reference
against the page (or its ``<base href>``) would produce it. ``data:`` URIs
are keys as written in the HTML.

``serve_site(tmp)`` generates it and serves it on 127.0.0.1 (and the "other site" on
127.0.0.2) until the block ends.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import random
import socket
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlsplit

from PIL import Image, ImageDraw

from tests.support.httpserver import HTTPTestServer, RecordedRequest, RequestLog
from tests.support.images import encode, jpeg, picture, png

__all__ = ["Site", "ImageInfo", "SiteServer", "generate_site", "generate_recorded_site", "serve_site", "sha256",
           "STORED_EXT", "BLANK_GIF"]

#: Extension the store must use for each format.
STORED_EXT = {
    "JPEG": "jpg",
    "PNG": "png",
    "GIF": "gif",
    "WEBP": "webp",
    "BMP": "bmp",
    "ICO": "ico",
    "SVG": "svg",
}

#: The classic 1x1 transparent GIF used as a lazy-loading placeholder.
BLANK_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------
# Site description
# ---------------------------------------------------------------------------


@dataclass
class ImageInfo:
    """One image URL referenced by the site."""

    url: str
    #: How it is referenced first, e.g. ``img-src``, ``srcset-largest``.
    kind: str
    #: ``stored`` (must be downloaded and stored), ``smaller`` (a smaller
    #: srcset candidate: stored only with IMGSCRAPER_SRCSET=all, absent
    #: otherwise), ``skipped``, ``failed``, or ``never`` (on a page that
    #: must not be crawled: must never show up).
    outcome: str
    #: Depth of the shallowest page referencing it (a crawl with
    #: ``depth >= this`` finds it).
    depth: int
    #: Page URLs referencing it.
    pages: set[str] = field(default_factory=set)
    #: Served file (None for data: URIs and URLs with nothing behind them).
    file: Path | None = None
    #: SHA-256 of the bytes served at ``url`` ("" when none).
    sha256: str = ""
    size: int = 0
    #: Pillow format name (``JPEG``, ``PNG``, ...; ``SVG`` for SVG), "" if
    #: not an image.
    format: str = ""
    ext: str = ""
    width: int | None = None
    height: int | None = None
    mode: str = ""
    frames: int = 1
    #: For skipped/failed: a substring the item's ``reason`` must contain
    #: ("" = any non-empty reason).
    reason: str = ""


@dataclass
class Site:
    root: Path
    base_url: str  # start URL, e.g. http://127.0.0.1:PORT/
    unreachable_url: str
    other_url: str | None  # base URL of the "other site" (None if not used)
    other_root: Path | None

    #: Every image URL referenced by any page (crawled or not).
    images: dict[str, ImageInfo]
    #: Page URLs of the start site by depth.
    pages: dict[int, list[str]]
    #: Pages on other sites linked from the start site (must not be fetched).
    external_pages: list[str]

    # The fields below describe a crawl with depth=2 in default mode.
    #: URL -> sha256 of every image that must be stored.
    expected: dict[str, str] = field(default_factory=dict)
    #: depth -> {URL: sha256} of the stored images first found at that depth
    #: (all depths 0..3, default mode).
    by_depth: dict[int, dict[str, str]] = field(default_factory=dict)
    #: URL -> sha256 of the smaller srcset candidates (IMGSCRAPER_SRCSET=all).
    srcset_smaller: dict[str, str] = field(default_factory=dict)
    #: URL -> substring of the reason of images that must be skipped.
    skipped: dict[str, str] = field(default_factory=dict)
    #: URL -> substring of the reason of images that must fail ("" = any).
    failed: dict[str, str] = field(default_factory=dict)
    #: Groups of URLs (all stored, depth <= 2) serving identical bytes.
    aliases: list[list[str]] = field(default_factory=list)

    # -- per-depth views -----------------------------------------------------

    def _select(self, outcome: str, depth: int) -> dict[str, ImageInfo]:
        return {u: i for u, i in self.images.items() if i.outcome == outcome and i.depth <= depth}

    def stored_at(self, depth: int = 2, srcset_all: bool = False) -> dict[str, str]:
        """URL -> sha256 of the images a crawl with ``depth`` must store."""
        out = {u: i.sha256 for u, i in self._select("stored", depth).items()}
        if srcset_all:
            out.update({u: i.sha256 for u, i in self._select("smaller", depth).items()})
        return out

    def smaller_at(self, depth: int = 2) -> dict[str, str]:
        return {u: i.sha256 for u, i in self._select("smaller", depth).items()}

    def skipped_at(self, depth: int = 2) -> dict[str, str]:
        return {u: i.reason for u, i in self._select("skipped", depth).items()}

    def failed_at(self, depth: int = 2) -> dict[str, str]:
        return {u: i.reason for u, i in self._select("failed", depth).items()}

    def discovered_at(self, depth: int = 2, srcset_all: bool = False) -> set[str]:
        """Every image URL that must get exactly one item at ``depth``."""
        return (
            set(self.stored_at(depth, srcset_all))
            | set(self.skipped_at(depth))
            | set(self.failed_at(depth))
        )

    def absent_at(self, depth: int = 2, srcset_all: bool = False) -> set[str]:
        """Image URLs that must NOT get an item at ``depth``."""
        return set(self.images) - self.discovered_at(depth, srcset_all)

    def pages_at(self, depth: int = 2) -> list[str]:
        return [p for d in sorted(self.pages) if d <= depth for p in self.pages[d]]

    def on_host(self, url: str) -> bool:
        """Is ``url`` served by the start site's server?"""
        return urlsplit(url).netloc == urlsplit(self.base_url).netloc

    def request_path(self, url: str) -> str:
        """The request path (with query) a client sends for ``url``."""
        parts = urlsplit(url)
        return (parts.path or "/") + (("?" + parts.query) if parts.query else "")

    def url(self, path: str) -> str:
        return urljoin(self.base_url, path)


# ---------------------------------------------------------------------------
# Image making
# ---------------------------------------------------------------------------


def _rng(name: str) -> random.Random:
    return random.Random(zlib.crc32(name.encode("utf-8")))


def make_png_rgba(name: str, size: tuple[int, int]) -> bytes:
    """RGBA PNG: a fully transparent band (alpha 0), a half-transparent one."""
    img = picture(name, size).convert("RGBA")
    w, h = size
    alpha = Image.new("L", size, 255)
    draw = ImageDraw.Draw(alpha)
    draw.rectangle([0, 0, w // 3, h - 1], fill=0)
    draw.rectangle([w // 3 + 1, 0, w // 2, h - 1], fill=128)
    img.putalpha(alpha)
    return encode(img, "PNG")


def make_webp(name: str, size: tuple[int, int]) -> bytes:
    return encode(picture(name, size), "WEBP", quality=80)


def make_bmp(name: str, size: tuple[int, int]) -> bytes:
    return encode(picture(name, size), "BMP")


def make_ico(name: str, size: tuple[int, int]) -> bytes:
    return encode(picture(name, size).convert("RGBA"), "ICO", sizes=[size])


def make_animated_gif(name: str, size: tuple[int, int], frames: int = 3) -> bytes:
    images = [picture(f"{name}#{i}", size).quantize(colors=64) for i in range(frames)]
    return encode(
        images[0], "GIF", save_all=True, append_images=images[1:], duration=100, loop=0, disposal=2
    )


def make_svg(name: str, size: tuple[int, int]) -> bytes:
    rng = _rng(name)
    w, h = size
    c = lambda: "#%02x%02x%02x" % tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">\n'
        f'  <rect width="{w}" height="{h}" fill="{c()}"/>\n'
        f'  <circle cx="{w // 2}" cy="{h // 2}" r="{min(w, h) // 3}" fill="{c()}"/>\n'
        f'  <path d="M0 {h} L{w // 2} 0 L{w} {h} Z" fill="{c()}" fill-opacity="0.5"/>\n'
        f"  <!-- {name} -->\n"
        "</svg>\n"
    ).encode("utf-8")


_MAKERS = {
    "jpeg": jpeg,
    "png": png,
    "png-rgba": make_png_rgba,
    "webp": make_webp,
    "bmp": make_bmp,
    "ico": make_ico,
    "gif-anim": make_animated_gif,
    "svg": make_svg,
}


def _describe(data: bytes) -> dict:
    """format/ext/width/height/mode/frames of image bytes."""
    if data.lstrip().startswith(b"<?xml") or b"<svg" in data[:200]:
        return {"format": "SVG", "ext": "svg", "width": None, "height": None, "mode": "", "frames": 1}
    with Image.open(io.BytesIO(data)) as img:
        fmt = img.format
        return {
            "format": fmt,
            "ext": STORED_EXT[fmt],
            "width": img.width,
            "height": img.height,
            "mode": img.mode,
            "frames": getattr(img, "n_frames", 1),
        }


# ---------------------------------------------------------------------------
# Builder
# ---------------------------------------------------------------------------


class _Builder:
    def __init__(self, root: Path, base_url: str):
        self.root = root
        self.base_url = base_url
        self.images: dict[str, ImageInfo] = {}
        self.blobs: dict[str, bytes] = {}  # absolute URL (no query) -> bytes
        self.paths: dict[str, Path] = {}  # absolute URL (no query) -> file

    def write(self, root: Path, rel: str, data: bytes | str) -> Path:
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def image_file(self, base: str, root: Path, rel: str, kind: str, size, data: bytes | None = None) -> str:
        """Write an image file; return its absolute URL (without query)."""
        if data is None:
            data = _MAKERS[kind](rel, size)
        path = self.write(root, rel, data)
        url = urljoin(base, rel)
        self.blobs[url] = data
        self.paths[url] = path
        return url

    def ref(self, url: str, page: str, depth: int, kind: str, outcome: str = "stored", reason: str = "",
            data: bytes | None = None, file: Path | None = None) -> str:
        """Record that ``page`` (at ``depth``) references image ``url``."""
        info = self.images.get(url)
        if info is None:
            if data is None:
                data = self.blobs.get(url.split("?", 1)[0])
            info = ImageInfo(url=url, kind=kind, outcome=outcome, depth=depth, reason=reason)
            if data is not None:
                info.sha256 = sha256(data)
                info.size = len(data)
                if outcome in ("stored", "smaller", "skipped", "never"):
                    info.__dict__.update(_describe(data))
            if file is None and not url.startswith("data:"):
                file = self.paths.get(url.split("?", 1)[0]) or self._file_for(url)
            info.file = file if (file is not None and file.is_file()) else None
            self.images[url] = info
        else:
            if info.outcome != outcome:
                raise ValueError(f"{url} referenced as {outcome} and {info.outcome}")
            info.depth = min(info.depth, depth)
        info.pages.add(page)
        return url

    def _file_for(self, url: str) -> Path | None:
        parts = urlsplit(url)
        base = urlsplit(self.base_url)
        if parts.netloc != base.netloc:
            return None
        return self.root / parts.path.lstrip("/")


# ---------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------


def _page(title: str, head: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n{head}\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n"
    )


def generate_site(
    root: Path,
    *,
    base_url: str,
    unreachable_url: str,
    other_url: str | None = None,
    other_root: Path | None = None,
) -> Site:
    """Write the site under ``root`` (served at ``base_url``) and describe it.

    ``unreachable_url`` is an image URL nothing answers (e.g.
    ``http://127.0.0.1:9/x.jpg``). ``other_url``/``other_root``: an optional
    second site (another host, e.g. ``http://127.0.0.2:PORT/``) served from
    ``other_root``; it hosts a "CDN" image used by the start site (must be
    stored) and a page linked from the start site (must not be crawled).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if not base_url.endswith("/"):
        base_url += "/"
    if other_url is not None and not other_url.endswith("/"):
        other_url += "/"
    b = _Builder(root, base_url)
    netloc = urlsplit(base_url).netloc
    robots = "User-agent: *\nDisallow:\n"
    b.write(root, "robots.txt", robots)

    U = lambda rel: urljoin(base_url, rel)  # noqa: E731
    index, a_page, b_page = U(""), U("a.html"), U("b.html")
    c_page, d_page = U("deep/c.html"), U("deep/d.html")

    # ---- image files --------------------------------------------------------
    f = lambda rel, kind, size, data=None: b.image_file(base_url, root, rel, kind, size, data)  # noqa: E731
    photo = f("img/photo.jpg", "jpeg", (160, 120))
    photo_copy = f("img/photo-copy.jpg", "jpeg", None, b.blobs[photo])
    shared = f("img/shared.png", "png", (100, 80))
    ss60 = f("img/ss-60.jpg", "jpeg", (60, 45))
    ss120 = f("img/ss-120.jpg", "jpeg", (120, 90))
    ss180 = f("img/ss-180.jpg", "jpeg", (180, 135))
    pic_fallback = f("img/pic-fallback.png", "png-rgba", (120, 90))
    pic400 = f("img/pic-400.webp", "webp", (100, 75))
    pic800 = f("img/pic-800.webp", "webp", (200, 150))
    og = f("img/og.jpg", "jpeg", (200, 105))
    twitter = f("img/twitter.png", "png", (150, 75))
    favicon = f("favicon.ico", "ico", (48, 48))
    preload = f("img/preload.webp", "webp", (90, 60))
    blank = f("img/blank.gif", None, None, BLANK_GIF)
    lazy = f("img/lazy.jpg", "jpeg", (140, 100))
    full_photo = f("img/full/photo.JPG", "jpeg", (200, 150))
    logo = f("img/logo.png", "png", (64, 64))
    ds_small = f("img/ds-small.jpg", "jpeg", (100, 70))
    ds_large = f("img/ds-large.jpg", "jpeg", (180, 126))
    orig = f("img/orig.png", "png", (90, 90))
    noscript = f("img/noscript.jpg", "jpeg", (120, 80))
    bg_plain = f("img/bg-plain.png", "png", (80, 60))
    bg_quoted = f("img/bg-quoted.webp", "webp", (80, 60))
    hero = f("img/hero.jpg", "jpeg", (200, 100))
    protorel = f("img/protorel.png", "png", (70, 70))
    anim = f("img/anim.gif", "gif-anim", (60, 60))
    b.write(root, "img/fake.jpg", _page("Not an image", "", "<p>This is HTML, not a JPEG.</p>"))
    fake = U("img/fake.jpg")
    missing = U("img/missing.png")
    based = f("assets/based.png", "png", (100, 100))
    button = f("assets/button.png", "png", (80, 40))
    svg_href = f("img/svg-href.png", "png", (50, 50))
    svg_xlink = f("img/svg-xlink.jpg", "jpeg", (60, 40))
    poster = f("img/poster.jpg", "jpeg", (160, 90))
    vector = f("img/vector.svg", "svg", (120, 80))
    bitmap = f("img/bitmap.bmp", "bmp", (64, 48))
    c_only = f("deep/c-only.png", "png", (110, 70))
    c1x = f("deep/c-1x.jpg", "jpeg", (80, 60))
    c2x = f("deep/c-2x.jpg", "jpeg", (160, 120))
    d_only = f("deep/d-only.jpg", "jpeg", (100, 100))
    d_bg = f("deep/d-bg.png", "png", (50, 50))

    data_png = png("data-uri", (8, 8))
    data_uri = "data:image/png;base64," + base64.b64encode(data_png).decode("ascii")

    # ---- other site -------------------------------------------------------------
    if other_url is not None and other_root is not None:
        other_root = Path(other_root)
        other_root.mkdir(parents=True, exist_ok=True)
        b.write(other_root, "robots.txt", robots)
        cdn = b.image_file(other_url, other_root, "cdn/ext.png", "png", (90, 70))
        other_only = b.image_file(other_url, other_root, "other-only.png", "png", (70, 90))
        external_page = urljoin(other_url, "other.html")
        b.write(other_root, "other.html", _page(
            "Other site", "", f'<img src="other-only.png" alt="">\n<a href="{base_url}">back</a>'))
    else:
        other_url, other_root, cdn, other_only = None, None, None, None
        external_page = urljoin(unreachable_url, "/other.html")

    # ---- index.html (depth 0) ---------------------------------------------------
    D = 0
    b.ref(photo, index, D, "img-src (relative)")
    b.ref(shared, index, D, "img-src (root-relative, twice on page)")
    b.ref(ss180, index, D, "img-srcset largest (w)")
    b.ref(ss120, index, D, "img-srcset smaller", "smaller")
    b.ref(ss60, index, D, "img-srcset smaller", "smaller")
    b.ref(pic_fallback, index, D, "picture img-src (RGBA PNG)")
    b.ref(pic800, index, D, "picture source-srcset largest")
    b.ref(pic400, index, D, "picture source-srcset smaller", "smaller")
    b.ref(og, index, D, "og:image (absolute)")
    b.ref(twitter, index, D, "twitter:image")
    b.ref(favicon, index, D, "link rel=icon (ICO)")
    b.ref(preload, index, D, "link rel=preload as=image")
    b.ref(blank, index, D, "lazy placeholder src (1x1 GIF)", "skipped", "too-small")
    b.ref(lazy, index, D, "img data-src")
    full_photo_url = full_photo + "?size=full"
    b.ref(full_photo_url, index, D, "a-href to full-size .JPG?size=full")
    logo_v1, logo_v2 = logo + "?v=1", logo + "?v=2"
    b.ref(logo_v1, index, D, "img-src ?v=1 alias")
    b.ref(missing, index, D, "img-src 404", "failed", "404")
    b.ref(data_uri, index, D, "data: URI PNG", data=data_png)
    index_html = _page(
        "Test site",
        f"""<meta property="og:image" content="{og}">
<meta name="twitter:image" content="/img/twitter.png">
<link rel="icon" href="/favicon.ico" type="image/x-icon">
<link rel="preload" as="image" href="img/preload.webp">""",
        f"""<nav><a href="a.html">Page A</a> | <a href="/b.html">Page B</a> | <a href="/">Home</a>
 | <a href="{external_page}">Elsewhere</a></nav>
<img src="img/photo.jpg" alt="photo" width="160" height="120">
<img src="/img/shared.png" alt="shared">
<p>Again: <img src="img/shared.png" alt="shared again"></p>
<img srcset="img/ss-120.jpg 120w, img/ss-180.jpg 180w, img/ss-60.jpg 60w"
     sizes="(max-width: 600px) 60px, 180px" alt="responsive">
<picture>
  <source type="image/webp" srcset="img/pic-400.webp 400w, img/pic-800.webp 800w" sizes="100vw">
  <img src="img/pic-fallback.png" alt="picture fallback">
</picture>
<img class="lazy" src="img/blank.gif" data-src="img/lazy.jpg" alt="lazy">
<p><a href="img/full/photo.JPG?size=full">Full size photo</a></p>
<img src="img/logo.png?v=1" alt="logo">
<img src="img/missing.png" alt="missing">
<img src="{data_uri}" alt="inline">""",
    )
    b.write(root, "index.html", index_html)

    # ---- a.html (depth 1) -------------------------------------------------------
    D = 1
    b.ref(shared, a_page, D, "img-src (also on other pages)")
    b.ref(ds_large, a_page, D, "data-srcset largest")
    b.ref(ds_small, a_page, D, "data-srcset smaller", "smaller")
    b.ref(blank, a_page, D, "lazy placeholder src (1x1 GIF)", "skipped", "too-small")
    b.ref(orig, a_page, D, "img data-original")
    b.ref(noscript, a_page, D, "noscript img")
    b.ref(bg_plain, a_page, D, "style attr url() unquoted")
    b.ref(bg_quoted, a_page, D, "style attr url(&quot;...&quot;)")
    b.ref(hero, a_page, D, "<style> block url()")
    b.ref(protorel, a_page, D, "img-src protocol-relative")
    b.ref(fake, a_page, D, "img-src HTML served as .jpg", "failed", "not-an-image")
    b.ref(anim, a_page, D, "img-src animated GIF")
    a_html = _page(
        "Page A",
        """<style>
  .hero { background: #333 url('/img/hero.jpg') no-repeat center; }
</style>""",
        f"""<nav><a href="/">Home</a> | <a href="deep/c.html">Deeper</a> | <a href="b.html">Page B</a></nav>
<div class="hero">Hero</div>
<img src="/img/shared.png" alt="shared">
<img class="lazy" src="/img/blank.gif" data-srcset="img/ds-small.jpg 100w, img/ds-large.jpg 300w" alt="lazy srcset">
<img class="lazy" src="/img/blank.gif" data-original="img/orig.png" alt="lazy original">
<noscript><img src="img/noscript.jpg" alt="noscript"></noscript>
<div style="width:80px;height:60px;background-image:url(img/bg-plain.png)"></div>
<div style="background: url(&quot;img/bg-quoted.webp&quot;) no-repeat">quoted</div>
<img src="//{netloc}/img/protorel.png" alt="protocol relative">
<img src="img/fake.jpg" alt="fake">
<img src="img/anim.gif" alt="animated">""",
    )
    b.write(root, "a.html", a_html)

    # ---- b.html (depth 1, with <base href>) ------------------------------------
    b.ref(based, b_page, D, "img-src relative to <base href>")
    b.ref(button, b_page, D, "input type=image")
    b.ref(svg_href, b_page, D, "inline svg <image href>")
    b.ref(svg_xlink, b_page, D, "inline svg <image xlink:href>")
    b.ref(poster, b_page, D, "video poster")
    b.ref(vector, b_page, D, "img-src SVG file")
    b.ref(bitmap, b_page, D, "img-src BMP")
    b.ref(logo_v2, b_page, D, "img-src ?v=2 alias")
    b.ref(photo_copy, b_page, D, "img-src same bytes as photo.jpg")
    b.ref(unreachable_url, b_page, D, "img-src on unreachable host", "failed", "")
    cdn_tag = ""
    if cdn is not None:
        b.ref(cdn, b_page, D, "img-src on another host (CDN)")
        cdn_tag = f'<img src="{cdn}" alt="cdn">'
    b_html = _page(
        "Page B",
        f'<base href="{base_url}assets/">',
        f"""<nav><a href="/">Home</a> | <a href="/a.html">Page A</a> | <a href="{external_page}">Elsewhere</a></nav>
<img src="based.png" alt="based">
<form action="/search"><input type="image" src="button.png" alt="Go"></form>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="120" height="60">
  <image href="/img/svg-href.png" width="50" height="50"/>
  <image xlink:href="/img/svg-xlink.jpg" x="60" width="60" height="40"/>
</svg>
<video poster="/img/poster.jpg" width="160" height="90"></video>
<img src="/img/vector.svg" alt="vector">
<img src="/img/bitmap.bmp" alt="bitmap">
<img src="/img/logo.png?v=2" alt="logo">
<img src="/img/photo-copy.jpg" alt="copy">
<img src="{unreachable_url}" alt="unreachable">
{cdn_tag}""",
    )
    b.write(root, "b.html", b_html)

    # ---- deep/c.html (depth 2) ------------------------------------------------
    D = 2
    b.ref(c_only, c_page, D, "img-src (depth 2 only)")
    b.ref(shared, c_page, D, "img-src ../ relative")
    b.ref(c2x, c_page, D, "img-srcset largest (x)")
    b.ref(c1x, c_page, D, "img-srcset smaller (x)", "smaller")
    c_html = _page(
        "Page C",
        "",
        """<nav><a href="../">Home</a> | <a href="d.html">Deeper still</a> | <a href="../a.html">Page A</a></nav>
<img src="c-only.png" alt="c">
<img src="../img/shared.png" alt="shared">
<img srcset="c-1x.jpg 1x, c-2x.jpg 2x" alt="x descriptors">""",
    )
    b.write(root, "deep/c.html", c_html)

    # ---- deep/d.html (depth 3) ------------------------------------------------
    D = 3
    b.ref(d_only, d_page, D, "img-src (depth 3 only)")
    b.ref(d_bg, d_page, D, "style attr url() (depth 3 only)")
    d_html = _page(
        "Page D",
        "",
        """<nav><a href="/">Home</a> | <a href="c.html">Page C</a></nav>
<img src="d-only.jpg" alt="d">
<div style="background:url(d-bg.png)">d</div>""",
    )
    b.write(root, "deep/d.html", d_html)

    if other_only is not None:
        b.ref(other_only, external_page, 99, "img on a page of another site", "never")

    # ---- description -----------------------------------------------------------
    images = b.images
    shas = {}
    for info in images.values():
        if info.outcome in ("stored", "smaller") and info.sha256:
            shas.setdefault(info.sha256, set()).add(info.url)
    site = Site(
        root=root,
        base_url=base_url,
        unreachable_url=unreachable_url,
        other_url=other_url,
        other_root=other_root,
        images=images,
        pages={0: [index], 1: [a_page, b_page], 2: [c_page], 3: [d_page]},
        external_pages=[external_page],
    )
    site.expected = site.stored_at(2)
    site.srcset_smaller = site.smaller_at(2)
    site.skipped = site.skipped_at(2)
    site.failed = site.failed_at(2)
    site.by_depth = {
        d: {u: i.sha256 for u, i in images.items() if i.outcome == "stored" and i.depth == d}
        for d in range(4)
    }
    site.aliases = sorted(
        sorted(urls) for urls in shas.values() if len(urls) > 1 and all(u in site.expected for u in urls)
    )
    # Sanity: only the deliberate aliases share bytes.
    expected_groups = sorted([sorted([logo_v1, logo_v2]), sorted([photo, photo_copy])])
    assert site.aliases == expected_groups, site.aliases
    for info in images.values():
        if info.outcome in ("stored", "smaller"):
            assert info.sha256 and info.format, info
    return site


# ---------------------------------------------------------------------------
# The site on real servers
# ---------------------------------------------------------------------------


@dataclass
class SiteServer:
    url: str  # start URL, http://127.0.0.1:PORT/
    site: Site
    server: HTTPTestServer
    other: HTTPTestServer | None  # the "other site" on 127.0.0.2, if available
    root: Path  # the start site's directory

    @property
    def log(self) -> RequestLog:
        return self.server.log

    @property
    def servers(self) -> list[HTTPTestServer]:
        """Both servers (start site first), for ``run_crawl(servers=...)``."""
        return [self.server] if self.other is None else [self.server, self.other]

    def clear_logs(self) -> None:
        for server in self.servers:
            server.log.clear()

    def all_requests(self) -> list[RecordedRequest]:
        """Requests seen by both servers (start site first)."""
        return [request for server in self.servers for request in server.log.snapshot()]

    def requests_for(self, url: str, requests: list[RecordedRequest] | None = None) -> list[RecordedRequest]:
        """Recorded requests for ``url`` (path and query must match; host
        must be one of our servers)."""
        parts = urlsplit(url)
        servers = {server.netloc: server for server in self.servers}
        if parts.netloc not in servers:
            return []
        target = servers[parts.netloc]
        if requests is None:
            requests = target.log.snapshot()
        else:
            requests = [r for r in requests if r.host == target.netloc]
        want = self.site.request_path(url)
        return [r for r in requests if r.path == want]


def _closed_port() -> int:
    """Port 9 if nothing listens there, else some other closed port."""
    for port in (9, None):
        if port is None:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no closed port found")


@contextlib.contextmanager
def serve_site(tmp: Path, latency: float = 0.0, other_site: bool = True) -> Iterator[SiteServer]:
    """Generate the site under ``tmp`` and serve it until the block ends; the "other site" on
    127.0.0.2 when ``other_site`` and that address can be bound."""
    tmp = Path(tmp)
    root, other_root = tmp / "site", tmp / "other-site"
    root.mkdir(parents=True, exist_ok=True)
    server = HTTPTestServer(root, latency=latency).start()
    other = None
    try:
        if other_site:
            other_root.mkdir(parents=True, exist_ok=True)
            try:
                other = HTTPTestServer(other_root, host="127.0.0.2").start()
            except OSError:
                other = None
        site = generate_site(
            root,
            base_url=server.url,
            unreachable_url=f"http://127.0.0.1:{_closed_port()}/x.jpg",
            other_url=other.url if other else None,
            other_root=other_root if other else None,
        )
        yield SiteServer(url=server.url, site=site, server=server, other=other, root=root)
    finally:
        server.stop()
        if other is not None:
            other.stop()


#: Where the cassettes of tests/spiders/test_images.py were recorded (``python -m
#: tests.support.record_cassettes`` serves the site there).
RECORDED_BASE = "http://127.0.0.1:8719/"
RECORDED_UNREACHABLE = "http://127.0.0.1:9/x.jpg"


def generate_recorded_site(root: Path) -> Site:
    """The site as it was when the cassettes were recorded."""
    return generate_site(root, base_url=RECORDED_BASE, unreachable_url=RECORDED_UNREACHABLE)
