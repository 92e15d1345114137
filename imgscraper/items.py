"""The item the ``images`` spider yields: one per discovered image."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageItem", "STATUSES"]

#: Values of :attr:`ImageItem.status`.
STATUSES = ("listed", "downloaded", "uptodate", "skipped", "failed")


@dataclass
class ImageItem:
    """An image found on ``page``; the pipeline fills in the rest.

    ``path`` is relative to ``IMAGES_STORE`` and empty when nothing was
    stored. ``checksum`` is the SHA-256 of the stored bytes. ``status`` is
    ``listed`` (``-a download=no``), ``downloaded``, ``uptodate``,
    ``skipped`` or ``failed``; ``reason`` says why for the last two (a ``near-duplicate``
    has the ``path`` of the stored image it duplicates). ``phash`` is the image's
    64-bit perceptual hash in hex (``IMGSCRAPER_NEAR_DUPLICATES`` ``mark`` or ``skip``).
    ``source`` says how the page referenced the image (``img``, ``srcset``,
    ``lazy``, ``css``, ``link-href``...: :attr:`imgscraper.discovery.ImageRef.source`).
    ``alt``, ``title``, ``caption`` and ``srcset_descriptor`` describe the image as
    the page did (:class:`imgscraper.discovery.ImageRef`), ``page_title`` is the
    ``<title>`` of ``page``; each is empty when there is none.
    """

    url: str
    page: str
    source: str = ""
    alt: str = ""
    title: str = ""
    caption: str = ""
    page_title: str = ""
    srcset_descriptor: str = ""
    path: str = ""
    checksum: str = ""
    phash: str = ""
    width: int | None = None
    height: int | None = None
    format: str = ""
    size: int | None = None
    status: str = "listed"
    reason: str = ""
