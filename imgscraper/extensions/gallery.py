"""The gallery: ``index.html`` in ``IMAGES_STORE`` to browse what the store holds.

:class:`Gallery` is an extension. At the end of every crawl into a local
store it rewrites ``<IMAGES_STORE>/index.html`` from everything the store
holds (the store's record, :mod:`imgscraper.pipelines.records`, plus any image file the
record does not know, such as ``data:`` URIs, where ``IMGSCRAPER_FILE_PATH`` puts them),
so scheduled runs into one store keep one complete gallery; a crawl that fetched no page and stored no image
(an unreachable start page) leaves the gallery as it was, or writes none. Images are shown as a grid grouped by the
page they were found on (headed by its title), with their alt text, title,
caption, dimensions, size, format and original URL, all from the record; the
page opens from ``file://`` (relative links, no script, no server), uses the
thumbnails when ``IMAGES_THUMBS`` made some, and loads images lazily.

Stores written before the record kept the page context have titles and alt
text in ``<IMAGES_STORE>/.imgscraper/gallery.sqlite3``: they are read from there.

Everything that comes from the web (URLs, titles, alt text) is HTML-escaped,
only ``http(s)`` URLs become links, and a Content-Security-Policy forbids
scripts, so a crafted URL or title cannot inject markup or script.
"""

from __future__ import annotations

import html
import itertools
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Container, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.statscollectors import StatsCollector

from imgscraper.items import ImageContext
from imgscraper.pipelines.inspection import inspect_image
from imgscraper.exceptions import ImageRejected
from imgscraper.pipelines.filepaths import FilePathTemplate, thumbnail_path
from imgscraper.pipelines.records import SQLiteRecord
from imgscraper.extensions.summary import NOT_STARTED, format_bytes
from imgscraper.utils import new_file_mode

__all__ = ["Gallery", "GalleryImage", "GallerySection", "build_gallery", "render_gallery"]

logger = logging.getLogger(__name__)

INDEX = "index.html"
NOTES = ".imgscraper/gallery.sqlite3"
#: Formats browsers do not display: shown as a link (or their thumbnail).
NOT_DISPLAYED = {"TIFF"}
#: Thumbnails are shown at most this wide and high (CSS pixels).
TILE = 220
_LINKABLE = ("http://", "https://")


@dataclass
class GalleryImage(ImageContext):
    """One stored file as found on one page (and shown there: :class:`ImageContext`)."""

    path: str
    url: str
    page: str
    format: str = ""
    width: int | None = None
    height: int | None = None
    size: int = 0
    stored_at: float = 0.0


# -- what earlier versions noted: page titles and alt text ------------------


def load_notes(store: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Page titles and alt texts by URL that crawls before the record kept them noted (empty when none)."""
    if not (store / NOTES).is_file():
        return {}, {}
    try:
        with closing(sqlite3.connect(f"file:{store / NOTES}?mode=ro", uri=True, timeout=30)) as db:
            return dict(db.execute("SELECT url, title FROM pages")), dict(db.execute("SELECT url, alt FROM alts"))
    except sqlite3.DatabaseError as exc:
        logger.warning("Gallery notes %s are unreadable (%s): titles and alt texts left out", store / NOTES, exc)
        return {}, {}


# -- what the store holds ---------------------------------------------------


def recorded_files(record: sqlite3.Connection) -> Iterator[tuple[str, str, int]]:
    """``(page, path, size)`` of every (URL, file) pair of the store's ``record``."""
    # Rejected images (remembered so re-crawls skip them) have no file.
    for page, path, size in record.execute("SELECT page, path, size FROM images WHERE path != ''"):
        yield page or "", path, size or 0


def recorded_images(record: sqlite3.Connection) -> Iterator[GalleryImage]:
    """Every (URL, file) pair of the store's ``record``, by page (images on no page last), URL and path."""
    present = {row[1] for row in record.execute("PRAGMA table_info(images)")}
    # A record written by an earlier version may lack the context columns.
    names = [field.name for field in fields(GalleryImage)]
    columns = ", ".join(name if name in present else "''" for name in names)
    query = f"SELECT {columns} FROM images WHERE path != '' ORDER BY coalesce(page, '') = '', page, url, path"
    for row in record.execute(query):
        yield GalleryImage(**dict(zip(names, row)))


def unrecorded_images(store: Path, known: Container[str], folder: str = "full") -> Iterator[GalleryImage]:
    """Image files under ``folder`` of the store (where ``IMGSCRAPER_FILE_PATH`` puts them: ``full``
    by default; ``""``, the whole store) that the record does not name; never hidden files,
    thumbnails, nor the gallery itself."""
    for file in sorted(store.joinpath(folder).rglob("*")):
        parts = file.relative_to(store).parts
        rel = "/".join(parts)
        if rel in known or rel == INDEX or parts[0] == "thumbs" or any(p.startswith(".") for p in parts):
            continue
        if not file.is_file():
            continue
        try:
            info = inspect_image(file.read_bytes())
        except (ImageRejected, OSError):
            continue
        stat = file.stat()
        yield GalleryImage(rel, "", "", info.format, info.width, info.height, stat.st_size, stored_at=stat.st_mtime)


def pick_thumb(thumbs: dict[str, Any]) -> str:
    """The ``IMAGES_THUMBS`` name closest to the tile size, or ``""``."""
    sizes = {name: max(size) for name, size in thumbs.items() if isinstance(size, (list, tuple)) and size}
    return min(sizes, key=lambda name: (abs(sizes[name] - TILE), name)) if sizes else ""


@dataclass
class GallerySection:
    """The files found on one page (``""``: on none that the record knows), one figure each."""

    page: str
    title: str
    images: list[GalleryImage]


def build_gallery(store: str | Path, thumbs: dict[str, Any] | None = None, folder: str = "full") -> Path:
    """Write ``index.html`` in ``store`` from everything it holds (the files under ``folder`` that the
    record does not name too); return its path. The record is read page by page, so what is held at
    once is a page's images and each file's path, not every image's record."""
    store = Path(store)
    path = store / SQLiteRecord.FILENAME
    if not path.is_file():
        return _write_gallery(store, None, thumbs or {}, folder)
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as record:
            return _write_gallery(store, record, thumbs or {}, folder)
    except sqlite3.DatabaseError as exc:
        logger.warning("Store record %s is unreadable (%s): the gallery shows the files only", path, exc)
        return _write_gallery(store, None, thumbs or {}, folder)


def _write_gallery(store: Path, record: sqlite3.Connection | None, thumbs: dict[str, Any], folder: str) -> Path:
    titles, alts = load_notes(store)
    # What the header counts: the recorded files still in the store, and the pages that show one.
    sizes: dict[str, int | None] = {}
    pages: set[str] = set()
    for page, path, size in recorded_files(record) if record else ():
        if path not in sizes:
            sizes[path] = size if (store / path).is_file() else None
        if sizes[path] is not None and page:
            pages.add(page)
    unrecorded = list(unrecorded_images(store, sizes.keys(), folder))
    files = {path: size for path, size in sizes.items() if size is not None}
    files.update((image.path, image.size) for image in unrecorded)

    def sections() -> Iterator[GallerySection]:
        for page, images in itertools.groupby(recorded_images(record) if record else (),
                                              key=lambda image: image.page or ""):
            shown = [image for image in images if image.path in files]
            if not page:  # the last group
                shown = sorted(shown + unrecorded, key=lambda image: (image.url, image.path))
                unrecorded.clear()
            figures: dict[str, GalleryImage] = {}
            for image in shown:
                figures.setdefault(image.path, image)  # one figure per file and page
                image.alt = image.alt or alts.get(image.url, "")
            title = next((image.page_title for image in reversed(shown) if image.page_title), titles.get(page, ""))
            if figures:
                yield GallerySection(page, title, list(figures.values()))
        if unrecorded:
            yield GallerySection("", "", sorted(unrecorded, key=lambda image: (image.url, image.path)))

    thumb = pick_thumb(thumbs)
    target = store / INDEX
    fd, tmp_name = tempfile.mkstemp(dir=store, prefix=".tmp-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.writelines(render_gallery(sections(), files=len(files), pages=len(pages),
                                          size=sum(files.values()), thumb=thumb, store=store))
        os.chmod(tmp_name, new_file_mode())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


# -- HTML -------------------------------------------------------------------

_STYLE = f"""
:root {{ color-scheme: light dark; --muted: #777; --tile: {TILE}px; }}
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5rem 2rem; }}
header {{ position: sticky; top: 0; background: Canvas; padding: .8rem 0; border-bottom: 1px solid #8884; z-index: 1; }}
h1 {{ font-size: 1.3rem; margin: 0; }}
h2 {{ font-size: 1.05rem; margin: 1.6rem 0 .2rem; overflow-wrap: anywhere; }}
.muted, figcaption {{ color: var(--muted); }}
.page-url {{ margin: 0 0 .6rem; overflow-wrap: anywhere; font-size: 12px; }}
section {{ content-visibility: auto; contain-intrinsic-size: auto 600px; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(var(--tile), 1fr)); gap: 12px; }}
figure {{ margin: 0; border: 1px solid #8884; border-radius: 6px; padding: 6px; overflow: hidden; }}
.tile {{ display: flex; align-items: center; justify-content: center; height: var(--tile);
  background: repeating-conic-gradient(#8882 0 25%, transparent 0 50%) 50% / 16px 16px; }}
.tile img {{ max-width: 100%; max-height: 100%; width: auto; height: auto; object-fit: contain; }}
.tile .nodisplay {{ padding: 1rem; text-align: center; }}
figcaption {{ font-size: 12px; margin-top: 4px; overflow-wrap: anywhere; }}
figcaption .meta {{ color: CanvasText; }}
figcaption .alt {{ font-style: italic; }}
figcaption .caption {{ color: CanvasText; }}
figcaption a {{ color: inherit; }}
"""

_CSP = "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _link(url: str, text: str | None = None, cls: str = "") -> str:
    """``url`` as a link when it is http(s), else as text; always escaped."""
    label = _e(text if text is not None else url)
    attr = f' class="{cls}"' if cls else ""
    if url.lower().startswith(_LINKABLE):
        return f'<a{attr} href="{_e(url)}" rel="noreferrer noopener">{label}</a>'
    return f"<span{attr}>{label}</span>"


def _short(url: str, limit: int = 160) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def _figure(image: GalleryImage, thumb: str, store: Path | None) -> str:
    src = image.path
    if thumb and image.format != "SVG":
        candidate = thumbnail_path(image.path, thumb)
        if store is None or (store / candidate).is_file():
            src = candidate
    size_attrs = ""
    if image.width and image.height and src == image.path:
        size_attrs = f' width="{int(image.width)}" height="{int(image.height)}"'
    if image.format in NOT_DISPLAYED and src == image.path:
        tile = f'<span class="nodisplay">{_e(image.format)}: browsers do not display it; open the file</span>'
    else:
        title = f' title="{_e(image.title)}"' if image.title else ""
        tile = f'<img src="{_e(quote(src))}"{size_attrs} alt="{_e(image.alt)}"{title} loading="lazy" decoding="async">'
    dims = f"{image.width}×{image.height}" if image.width and image.height else "size unknown"
    meta = f"{dims} · {format_bytes(image.size or 0)} · {_e(image.format or '?')}"
    origin = _link(image.url, _short(image.url), "src") if image.url else '<span class="src">not in the record</span>'
    alt = f'<div class="alt">{_e(image.alt)}</div>' if image.alt else ""
    caption = f'<div class="caption">{_e(image.caption)}</div>' if image.caption else ""
    return (
        f'<figure><a class="tile" href="{_e(quote(image.path))}">{tile}</a>'
        f'<figcaption><div class="meta">{meta}</div>{alt}{caption}<div>{origin}</div></figcaption></figure>\n'
    )


def render_gallery(
    sections: Iterable[GallerySection], *, files: int, pages: int, size: int, thumb: str = "",
    store: Path | None = None,
) -> Iterator[str]:
    """The gallery page, in pieces: headed by what it shows (``files`` files of ``size`` bytes in all,
    from ``pages`` pages), then one section per page, one figure per file (shown by its
    ``IMAGES_THUMBS`` thumbnail ``thumb`` when there is one)."""
    yield (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>Gallery: {files} images</title>\n<style>{_STYLE}</style></head>\n<body>\n"
        f"<header><h1>{files} images from {pages} pages</h1>"
        f'<div class="muted">{format_bytes(size)} in this folder · rebuilt '
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} by imgscraper</div></header>\n"
    )
    for section in sections:
        page, title = section.page, section.title.strip()
        heading = _link(page, title or page) if page else "Images not found on any recorded page"
        yield f"<section><h2>{heading}</h2>"
        if page and title:
            yield f'<p class="page-url">{_link(page, _short(page))}</p>'
        yield f'<p class="muted">{len(section.images)} images</p><div class="grid">\n'
        for image in section.images:
            yield _figure(image, thumb, store)
        yield "</div></section>\n"
    yield "</body></html>\n"


# -- the extension ----------------------------------------------------------


def local_store(settings: Any) -> Path | None:
    """``IMAGES_STORE`` as a local directory, or None for S3, GCS, FTP..."""
    store = str(settings.get("IMAGES_STORE") or "")
    if not store or ("://" in store and not store.startswith("file://")):
        return None
    return Path(store.removeprefix("file://"))


class Gallery:
    """Rebuild ``index.html`` at the end of each crawl (see the module docstring)."""

    def __init__(self, store: Path, thumbs: dict[str, Any], stats: StatsCollector, folder: str = "full"):
        self.store = store
        self.thumbs = thumbs
        self.stats = stats
        self.folder = folder
        self.written: Path | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Gallery:
        settings = crawler.settings
        store = local_store(settings)
        if store is None or not settings.getbool("IMGSCRAPER_GALLERY") or not settings.get("ITEM_PIPELINES"):
            raise NotConfigured
        try:
            folder = FilePathTemplate.parse(settings.get("IMGSCRAPER_FILE_PATH")).folder
        except ValueError:
            folder = "full"  # the settings check reports it
        extension = cls(store, settings.getdict("IMAGES_THUMBS"), crawler.stats, folder)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(extension.engine_stopped, signal=signals.engine_stopped)
        return extension

    def spider_closed(self, reason: str) -> None:
        if reason in NOT_STARTED or not self.crawled_anything():
            return
        try:
            path = build_gallery(self.store, self.thumbs, self.folder)
        except (OSError, sqlite3.Error) as exc:
            logger.warning("Could not write the gallery in %s: %s", self.store, exc)
            return
        self.written = path

    def crawled_anything(self) -> bool:
        """Whether the crawl fetched a page or stored an image: if not, the store is as it was."""
        stats = self.stats.get_stats()
        return bool(stats.get("imgscraper/pages") or stats.get("imgscraper/images/downloaded"))

    def engine_stopped(self) -> None:
        """Name the gallery last, below the summary, where a reader looks."""
        if self.written is not None:
            logger.info("Gallery: %s", self.written.resolve().as_uri())
