"""What discovery finds: :class:`ImageRef`, an image a page or style sheet references."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageRef"]


@dataclass(frozen=True)
class ImageRef:
    """An image referenced by a page.

    ``url`` is absolute (``http``/``https``, without fragment) or a
    ``data:image/...`` URI. ``source`` says how the page referenced it:
    ``img`` (``<img src>``, ``<picture><source src>``, ``<object data>``,
    ``<embed src>``), ``srcset``, ``lazy`` (a ``data-*`` attribute),
    ``noscript`` (anything inside ``<noscript>``), ``link-href`` (an
    ``<a href>`` or ``<area href>`` to an image file), ``css`` (``url()`` in
    a ``style`` attribute or ``<style>``, or a ``background`` attribute),
    ``meta`` (``<meta>`` such as ``og:image``, or JSON-LD), ``link``
    (``<link>`` icons, ``image_src`` and image preloads), ``input``
    (``<input type=image>``), ``svg`` (SVG ``<image>`` and ``<use>``),
    ``poster`` (``<video poster>``) or ``start`` (the spider's: a start URL
    that is an image).

    The context, whitespace-collapsed and empty when there is none: ``alt``
    and ``title`` of the referencing element (for a ``<picture><source>``,
    of the picture's ``<img>``; for an ``<a href>`` to an image, the alt text
    of the ``<img>`` inside the link), ``caption`` (the ``<figcaption>`` of
    the enclosing ``<figure>``) and ``srcset_descriptor``, the descriptor of
    the ``srcset`` candidate chosen (``800w``, ``2x``; ``1x`` when it had
    none).
    """

    url: str
    source: str
    alt: str = ""
    title: str = ""
    caption: str = ""
    srcset_descriptor: str = ""
