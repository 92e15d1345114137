"""The item the ``images`` spider yields: one per discovered image, and the context it carries."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgscraper.discovery.references import ImageRef

__all__ = ["CONTEXT_FIELDS", "ImageContext", "ImageItem", "STATUSES"]

#: Values of :attr:`ImageItem.status`.
STATUSES = ("listed", "downloaded", "uptodate", "skipped", "failed")


@dataclass(kw_only=True)
class ImageContext:
    """How a page showed an image, each field empty when it did not say.

    ``alt``, ``title``, ``caption`` and ``srcset_descriptor`` describe the image
    as the page did (:class:`imgscraper.discovery.references.ImageRef`),
    ``page_title`` is the ``<title>`` of the page. The item carries them; the
    store's record (:class:`imgscraper.pipelines.records.ImageRecord`) keeps
    them with the image, and the gallery shows them.
    """

    alt: str = ""
    title: str = ""
    caption: str = ""
    page_title: str = ""
    srcset_descriptor: str = ""


#: The names of the :class:`ImageContext` fields.
CONTEXT_FIELDS = tuple(field.name for field in fields(ImageContext))


@dataclass
class _ImageOnPage:
    url: str
    page: str
    source: str = ""
    original_of: str = ""


# The bases give their fields in reverse order: _ImageOnPage's, then ImageContext's,
# then the item's own. That is the order of an item's fields in a feed.
@dataclass
class ImageItem(ImageContext, _ImageOnPage):
    """An image found on ``page``; the pipeline fills in the rest.

    ``source`` says how the page referenced the image (``img``, ``srcset``,
    ``lazy``, ``css``, ``link-href``...: :attr:`imgscraper.discovery.references.ImageRef.source`);
    ``original_of`` is the URL the page named when ``url`` is its original instead
    (``-a originals=yes``, :mod:`imgscraper.discovery.originals`), else empty;
    the :class:`ImageContext` fields say how it showed it.
    ``path`` is relative to ``IMAGES_STORE`` and empty when nothing was
    stored. ``checksum`` is the SHA-256 of the stored bytes. ``status`` is
    ``listed`` (``-a download=no``), ``downloaded``, ``uptodate``,
    ``skipped`` or ``failed``; ``reason`` says why for the last two (a ``near-duplicate``
    has the ``path`` of the stored image it duplicates). ``phash`` is the image's
    64-bit perceptual hash in hex (``IMGSCRAPER_NEAR_DUPLICATES`` ``mark`` or ``skip``).
    """

    path: str = ""
    checksum: str = ""
    phash: str = ""
    width: int | None = None
    height: int | None = None
    format: str = ""
    size: int | None = None
    status: str = "listed"
    reason: str = ""

    @classmethod
    def from_ref(cls, ref: ImageRef, page: str, page_title: str = "", original_of: str = "") -> ImageItem:
        """The item of the image ``ref`` names, with the context ``page`` (titled ``page_title``) gave it;
        ``original_of``: the URL the page named, when ``ref`` names its original."""
        return cls(
            url=ref.url, page=page, source=ref.source, original_of=original_of, alt=ref.alt, title=ref.title,
            caption=ref.caption, page_title=page_title, srcset_descriptor=ref.srcset_descriptor,
        )
